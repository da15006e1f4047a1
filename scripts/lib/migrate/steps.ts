/**
 * The pieces the run is made of: the pre-replace backup, the replace
 * statements, the source and target fingerprints, and the COPY statements.
 */
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import type { Config } from "../config";
import { run } from "../exec";
import { connect, quoteIdent, rwTarget } from "../pg";
import { type TableInfo, tableKey } from "./catalog";
import {
  CHECKSUM_SETTINGS,
  type ChecksumTarget,
  fingerprintTable,
  type HashMode,
  probeHashMode,
  type TableFingerprint,
} from "./fingerprint";

export const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");

/** pg_dump -Fc of the target before --replace touches it: <stateDir>/backups/pre-migrate/<db>-<time>.dump, 0600. */
export async function backupTarget(cfg: Config, db: string, binDir: string): Promise<string> {
  const dir = join(cfg.stateDir, "backups", "pre-migrate");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = join(dir, `${db}-${stamp()}.dump`);
  writeFileSync(file, "", { mode: 0o600 }); // pg_dump truncates it and keeps the mode
  const t = rwTarget(cfg);
  await run(
    [join(binDir, "pg_dump"), "-Fc", "-h", t.host, "-p", String(t.port), "-U", "postgres", "-d", db, "-f", file],
    {
      env: { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, PGCONNECT_TIMEOUT: "10" },
      timeoutMs: 3_600_000,
    },
  );
  return file;
}

export async function missingTables(c: pg.Client, tables: TableInfo[]): Promise<number> {
  const r = await c.query(
    `SELECT count(*)::int AS n FROM unnest($1::text[], $2::text[]) AS t(s, n) WHERE NOT EXISTS (SELECT 1 FROM pg_tables p WHERE p.schemaname = t.s AND p.tablename = t.n)`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return r.rows[0].n;
}

/** --replace: empty the target inside the restore transaction, so a failure also undoes this. */
export async function replaceSql(target: pg.Client): Promise<string[]> {
  const ext = await target.query("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'");
  const ns = await target.query(
    `SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog','information_schema','public') AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%'`,
  );
  const pubs = await target.query("SELECT pubname FROM pg_publication");
  return [
    // Large objects and publications live outside any schema: dropping the schemas leaves them behind.
    "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata;",
    ...pubs.rows.map((r) => `DROP PUBLICATION IF EXISTS ${quoteIdent(r.pubname)};`),
    ...ext.rows.map((r) => `DROP EXTENSION IF EXISTS ${quoteIdent(r.extname)} CASCADE;`),
    ...ns.rows.map((r) => `DROP SCHEMA IF EXISTS ${quoteIdent(r.nspname)} CASCADE;`),
    "DROP SCHEMA public CASCADE;",
    "CREATE SCHEMA public AUTHORIZATION pg_database_owner;",
    "GRANT USAGE ON SCHEMA public TO PUBLIC;",
    "COMMENT ON SCHEMA public IS 'standard public schema';",
  ];
}

/**
 * One caller at a time on the source's snapshot session: a hash probe runs
 * inside a savepoint, and a query slipped in between a failed probe and its
 * ROLLBACK TO would fail on the aborted transaction.
 */
export const serial = () => {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const r = tail.then(fn);
    tail = r.catch(() => {});
    return r;
  };
};

/** Source side, in the snapshot transaction: also decides each table's hash mode for the target. */
export async function sourceFingerprints(
  c: pg.Client,
  tables: ChecksumTarget[],
  modes: Map<string, HashMode>,
  exclusive: ReturnType<typeof serial>,
): Promise<Record<string, TableFingerprint>> {
  const out: Record<string, TableFingerprint> = {};
  for (const t of tables) {
    await exclusive(async () => {
      const mode = await probeHashMode(c, t);
      modes.set(tableKey(t), mode);
      out[tableKey(t)] = await fingerprintTable(c, t, mode);
    });
  }
  return out;
}

/** Checksum the target on a few connections at once: the scans are independent. */
export async function targetFingerprints(
  cfg: Config,
  db: string,
  tables: ChecksumTarget[],
  modes: Map<string, HashMode>,
  parallel = 2,
): Promise<Record<string, TableFingerprint>> {
  const queue = [...tables];
  const out: Record<string, TableFingerprint> = {};
  await Promise.all(
    Array.from({ length: Math.min(parallel, queue.length) }, async () => {
      const c = await connect(cfg, { database: db });
      try {
        for (const s of CHECKSUM_SETTINGS) await c.query(s);
        for (let t = queue.shift(); t; t = queue.shift())
          out[tableKey(t)] = await fingerprintTable(c, t, modes.get(tableKey(t)));
      } finally {
        await c.end().catch(() => {});
      }
    }),
  );
  return out;
}

export const qn = (t: { schema: string; name: string }) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
export const sqlLiteral = (v: string) => `'${v.replace(/'/g, "''")}'`;

/**
 * Our own COPY for one table, both ends built from catalog names: the source
 * side reads ONLY the table (inheritance children are tables of their own) or,
 * for a partition root, the whole tree; the target side loads plain tables
 * WITH (FREEZE) (legal: each was created in this transaction; frozen rows need
 * no rewrite on first read), partition roots without (COPY FREEZE refuses them)
 * and routes their rows itself.
 */
export function copyStatements(
  t: { schema: string; name: string; kind: TableInfo["kind"] },
  columns: string[],
): { out: string; into: string } {
  const cols = columns.map(quoteIdent).join(", ");
  const select = columns.length ? cols : "";
  return {
    out: `COPY (SELECT ${select} FROM ${t.kind === "partitioned" ? "" : "ONLY "}${qn(t)}) TO STDOUT`,
    into: `COPY ${qn(t)}${columns.length ? ` (${cols})` : ""} FROM stdin${t.kind === "table" ? " WITH (FREEZE)" : ""};`,
  };
}

export const LO_CHUNK = 1024 * 1024;
