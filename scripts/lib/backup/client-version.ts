/**
 * The host's pg_dump against the server it dumps. pg_dump, pg_restore and the scratch instance a
 * backup is verified in run on this host; with the docker runtime the server is the image's, which
 * may be a later point release. A later server can store what the older client dumps but cannot
 * restore (issue 21's run: 15.20 marks every column with the attribute option `pg_attver`; 15.18's
 * pg_dump wrote `ALTER COLUMN ... SET (pg_attver=...)` and its server refused it), so an older
 * client is refused before anything is dumped.
 */
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { pgBin } from "./common";

/** "15.18" out of "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" or "15.20 (Debian ...)"; [major, minor]. */
export function parsePgVersion(text: string): [number, number] | undefined {
  const m = /(?:^|\s)(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Pure: the refusal's message when the client is older than the server, else undefined. */
export function clientTooOld(client: string, server: string): string | undefined {
  const c = parsePgVersion(client);
  const s = parsePgVersion(server);
  if (!c || !s || c[0] > s[0] || (c[0] === s[0] && c[1] >= s[1])) return undefined;
  return `pg_dump here is PostgreSQL ${c.join(".")}, the server ${s.join(".")}: an older client's dump may not restore`;
}

export async function checkDumpClient(cfg: Config, serverVersion: string): Promise<void> {
  const bin = pgBin(cfg, "pg_dump");
  const r = await run([bin, "--version"], { timeoutMs: 30_000 });
  const problem = clientTooOld(r.stdout, serverVersion);
  if (problem)
    throw new ToolkitError(
      "PG_CLIENT_TOO_OLD",
      `${problem} (${bin})`,
      `install the server's point release of the client on this host (apt-get install postgresql-client-${parsePgVersion(serverVersion)![0]}), or run a server no newer than it (make images-local pins the local image to the host's version)`,
    );
}
