/**
 * The patroni image's Postgres pinned to this host's client tools (make images-local).
 * The toolkit's pg_dump, pg_restore and the scratch instance a backup is verified in run on
 * the host; a server of a later point release than them stores what they cannot restore
 * (15.20 marks every column with the attribute option `pg_attver`, which 15.18's pg_dump
 * dumps and its server refuses: issue 21's run). So the image installs the host's version
 * of postgresql-15 when the host has it, and a re-run rebuilds an image that differs.
 */
import { run } from "./exec";

/** Debian's version of the host's postgresql-client-15 (e.g. "15.18-0+deb12u1"); undefined when not installed. */
export async function hostPgVersion(): Promise<string | undefined> {
  const r = await run(["dpkg-query", "-W", "-f=${Status}|${Version}", "postgresql-client-15"], { nothrow: true });
  const [status, version] = r.stdout.split("|");
  return r.code === 0 && status?.endsWith(" installed") && version ? version : undefined;
}

/** `--build-arg`s for an image: PG_VERSION for patroni when the host has a client to match. */
export async function buildArgs(name: string): Promise<string[]> {
  if (name !== "patroni") return [];
  const v = await hostPgVersion();
  return v ? ["--build-arg", `PG_VERSION=${v}`] : [];
}

/** The argv that prints the image's postgresql-15 version (run inside it, no network). */
export const IMAGE_PG_VERSION = ["dpkg-query", "-W", "-f=${Version}", "postgresql-15"];
