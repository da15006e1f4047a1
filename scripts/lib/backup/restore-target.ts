/**
 * The database a restore builds before anything is swapped: the name checks
 * (never one of the cluster's own databases), the temporary
 * `<target>_restoring` database and its OID marker (a later run drops only a
 * leftover of its own), and its creation, from the manifest's recorded
 * properties or, for older backups, from the dump's own database-level SQL
 * re-targeted at the new name. A failed step drops what it half-made.
 * restore.ts loads, checks and swaps it in.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { connect, quoteIdent } from "../pg";
import { pgBin } from "./common";
import { applyAclAndComment, applySettings, createDatabaseSql, type DatabaseProps } from "./dbprops";

export const DB_NAME_RE = /^[a-z][a-z0-9_]{1,62}$/;

/** The cluster's own databases: Patroni and the toolkit connect to postgres; CREATE DATABASE copies template1. */
export const CLUSTER_DATABASES = ["postgres", "template0", "template1"];

export function checkDbName(name: string, flag: string): void {
  if (!DB_NAME_RE.test(name))
    throw new ToolkitError(
      "BAD_NAME",
      `${flag}=${JSON.stringify(name)} is not a valid database name`,
      "use lowercase letters, digits and underscores, starting with a letter",
    );
  if (CLUSTER_DATABASES.includes(name)) {
    throw new ToolkitError(
      "BAD_NAME",
      `${flag}=${JSON.stringify(name)} is one of the cluster's own databases (${CLUSTER_DATABASES.join(", ")}): a restore never replaces it`,
      "restore an app or environment database (DB=<name>), or beside it with TO=<new name>; nothing was changed",
    );
  }
}

/** How pg_dump writes a database name (it quotes only when it must). */
const dumpIdent = (name: string) => (/^[a-z_][a-z0-9_]*$/.test(name) ? name : quoteIdent(name));

/**
 * Pure: the database-level statements of a `pg_restore --create` script
 * (CREATE DATABASE with its encoding/locale, owner, ALTER DATABASE ... SET,
 * grants, comment), re-targeted at another database name.
 */
export function retargetDatabaseSql(sql: string, from: string, to: string): string {
  const src = dumpIdent(from).replace(/[.*+?^${}()|[\]\\"]/g, "\\$&");
  const re = new RegExp(`DATABASE ${src}(?=[ ;])`, "g");
  return sql
    .split("\n")
    .filter(
      (l) => !l.startsWith("\\connect") && !/^\s*(SET|SELECT pg_catalog\.set_config)\b/.test(l) && !l.startsWith("--"),
    )
    .filter((l) => /\bDATABASE\b/.test(l))
    .map((l) => l.replace(re, `DATABASE ${quoteIdent(to)}`))
    .join("\n");
}

/** The database-level SQL from a directory dump (the dump's DATABASE / DATABASE PROPERTIES / ACL entries). */
export async function databaseSql(cfg: Config, dumpDir: string, from: string, to: string): Promise<string> {
  const list = (await run([pgBin(cfg, "pg_restore"), "-l", dumpDir], { timeoutMs: 120_000 })).stdout;
  const entries = list.split("\n").filter((l) => !l.startsWith(";") && /\bDATABASE\b/.test(l));
  const tmp = mkdtempSync(join(tmpdir(), "pgplatform-restore-"));
  try {
    const lf = join(tmp, "list");
    writeFileSync(lf, entries.join("\n") + "\n", { mode: 0o600 });
    const sql = (
      await run([pgBin(cfg, "pg_restore"), "--create", "-f", "-", "-L", lf, dumpDir], { timeoutMs: 120_000 })
    ).stdout;
    return retargetDatabaseSql(sql, from, to);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export const clip = (name: string, suffix: string) => name.slice(0, 63 - suffix.length) + suffix;

/**
 * A restore records the OID of the temporary database it creates, so that a
 * later run drops only a leftover of its own, never a database someone else
 * made under that name.
 */
export const tmpMarker = (cfg: Config, tmp: string) => join(cfg.stateDir, "restoring", `${tmp}.oid`);
const dbOid = async (c: pg.Client, name: string): Promise<string | undefined> =>
  (await c.query("SELECT oid::text AS oid FROM pg_database WHERE datname = $1", [name])).rows[0]?.oid;

export async function markTmp(cfg: Config, c: pg.Client, tmp: string): Promise<void> {
  mkdirSync(join(cfg.stateDir, "restoring"), { recursive: true, mode: 0o700 });
  writeFileSync(tmpMarker(cfg, tmp), `${await dbOid(c, tmp)}\n`, { mode: 0o600 });
}

/** Drop a temporary database left by an interrupted restore; refuse, naming it, when no restore made it. */
export async function dropLeftoverTmp(cfg: Config, c: pg.Client, tmp: string, target: string): Promise<void> {
  const oid = await dbOid(c, tmp);
  if (oid === undefined) return;
  let recorded = "";
  try {
    recorded = readFileSync(tmpMarker(cfg, tmp), "utf8").trim();
  } catch {}
  if (recorded !== oid) {
    throw new ToolkitError(
      "RESTORE_NAME_TAKEN",
      `database ${tmp} exists and was not left by a restore: restoring ${target} builds it under that name first`,
      `rename or drop ${tmp} yourself, or restore with another TO=<name>; nothing was changed`,
    );
  }
  await c.query(`DROP DATABASE ${quoteIdent(tmp)} WITH (FORCE)`);
}

export async function databaseExists(c: pg.Client, name: string): Promise<boolean> {
  return (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 1;
}

export async function targetExists(cfg: Config, name: string): Promise<boolean> {
  const c = await connect(cfg);
  try {
    return await databaseExists(c, name);
  } finally {
    await c.end().catch(() => {});
  }
}

/** The database with its recorded owner, encoding, locale, connection limit, settings, ACL and comment. */
export async function createFromProps(c: pg.Client, db: string, p: DatabaseProps): Promise<void> {
  await c.query(createDatabaseSql(db, p));
  await applySettings(c, db, p);
  // pg_restore emits a database's ACL and comment only with --create, which cannot
  // target another name: they come from the manifest, exactly, as the owner granted them.
  await applyAclAndComment(c, db, p);
}

/** Run a step on the live cluster; on failure drop the half-made database and say what the server said. */
export async function stepOrFail(c: pg.Client, tmp: string, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(tmp)} WITH (FORCE)`).catch(() => {});
    const pe = e as { message: string; detail?: string; hint?: string };
    const fix = /role .* does not exist/.test(pe.message)
      ? "nothing was replaced; the backup's owner, ACL or settings name a role this cluster does not have: create it (its definition is in the backup's globals.sql), then restore again"
      : "nothing was replaced";
    throw new ToolkitError(
      "RESTORE_FAILED",
      `${what} ${tmp} failed: ${pe.message}`,
      fix,
      [pe.detail && `DETAIL: ${pe.detail}`, pe.hint && `HINT: ${pe.hint}`].filter(Boolean).join("\n") || undefined,
    );
  }
}
