/**
 * Step 4 of migrate-saas: what goes through the one transaction on the target,
 * and the psql commands at both ends of it. loadCommand() is the single psql
 * session on the target that the loader (pipe.ts) feeds; readCommand() is the
 * psql that reads one table's COPY out of the run's source snapshot, with
 * pg_dump's own output settings. feedLoad() writes, in order: our prelude
 * (BEGIN, roles, extensions), pg_restore's pre-data script, each table's data
 * (our COPY statements, session_replication_role = replica), large-object
 * contents in chunks, sequence values, and last the postlude that ends with
 * COMMIT, sent only after every table was read in full.
 */
import { join } from "node:path";
import type pg from "pg";
import type { Cmd } from "../exec";
import { type TableInfo, tableKey } from "./catalog";
import type { SequenceState } from "./fingerprint";
import type { Loader } from "./pipe";
import { copyStatements, LO_CHUNK, qn, type serial, sqlLiteral } from "./steps";

/** psql on the target database, reading the transaction's script from stdin; stops at the first error. */
export const loadCommand = (binDir: string, tgt: { host: string; port: number }, db: string): Cmd => [
  join(binDir, "psql"),
  "-X",
  "-q",
  "-v",
  "ON_ERROR_STOP=1",
  "-h",
  tgt.host,
  "-p",
  String(tgt.port),
  "-U",
  "postgres",
  "-d",
  db,
  "-f",
  "-",
];

/** psql on the source running `sql` (a COPY ... TO STDOUT) inside the exported snapshot. */
export const readCommand = (binDir: string, snapshot: string, sql: string): Cmd => [
  join(binDir, "psql"),
  "-X",
  "-q",
  "-v",
  "ON_ERROR_STOP=1",
  // pg_dump's own output settings: dates, intervals and floats in forms every server reads back exactly,
  // reg* values schema-qualified, and an error rather than rows silently hidden by row-level security.
  "-c",
  "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; SET statement_timeout = 0; SET search_path = ''; SET row_security = off",
  "-c",
  "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
  "-c",
  `SET TRANSACTION SNAPSHOT ${sqlLiteral(snapshot)}`,
  "-c",
  sql,
];

export interface LoadParts {
  prelude: string;
  pre: string;
  postlude: string;
  /** tables whose data is copied, and each one's columns */
  tables: TableInfo[];
  columns: Map<string, string[]>;
  /** how readCommand() reaches the source */
  binDir: string;
  snapshot: string;
  readEnv: Record<string, string>;
  los: { oid: number; bytes: number }[];
  sequences: Record<string, SequenceState>;
}

/** Feed the loader in order; `exclusive` shares the source connection with the fingerprints read meanwhile. */
export async function feedLoad(
  ld: Loader,
  source: pg.Client,
  exclusive: ReturnType<typeof serial>,
  p: LoadParts,
): Promise<{ bytes: number; ms: number; psqlOutput: string }> {
  await ld.write(p.prelude);
  await ld.write(p.pre);
  await ld.write("\nSET session_replication_role = replica;\nRESET search_path;\nSET client_encoding = 'UTF8';\n");
  for (const t of p.tables) {
    const c = copyStatements(t, p.columns.get(tableKey(t)) ?? []);
    await ld.copy(tableKey(t), c.into, { cmd: readCommand(p.binDir, p.snapshot, c.out), env: p.readEnv });
  }
  for (const lo of p.los) {
    for (let off = 0; off < lo.bytes; off += LO_CHUNK) {
      const r = await exclusive(() =>
        source.query("SELECT encode(lo_get($1::oid, $2::bigint, $3::int), 'hex') AS h", [lo.oid, off, LO_CHUNK]),
      );
      await ld.write(`SELECT pg_catalog.lo_put(${lo.oid}, ${off}, '\\x${r.rows[0].h}'::bytea);\n`);
    }
  }
  for (const st of Object.values(p.sequences)) {
    if (st.lastValue === null || !/^-?\d+$/.test(st.lastValue) || !st.schema || !st.name) continue;
    await ld.write(
      `SELECT pg_catalog.setval(${sqlLiteral(qn({ schema: st.schema, name: st.name }))}, ${st.lastValue}, ${st.isCalled});\n`,
    );
  }
  return ld.finish(p.postlude);
}
