/**
 * make migrate-saas: move a Supabase (cloud) project into one database of the
 * cluster and prove nothing was lost.
 *
 *   1. Pre-checks before touching the target: source reachable, target exists
 *      and is empty (or --replace, which backs it up first), versions, disk,
 *      extensions, roles policies need.
 *      PLAN also names every object that needs something left behind (a
 *      trigger calling supabase_functions.http_request()) and every table the
 *      source login cannot read: the run refuses unless --accept-left-out.
 *   2. One exported snapshot on the source: schema, data and the source-side
 *      checksums all see the same instant.
 *   3. The schema is a pg_dump archive (-Fc), selected through its table of
 *      contents (toc.ts), never by editing SQL text; roles the target lacks
 *      exist as placeholders only inside the transaction (select.ts).
 *   4. One transaction on the target (BEGIN first; COMMIT is sent by us only
 *      after every table was read in full, so if this process dies mid-stream
 *      psql hits end of input inside the transaction and the server rolls
 *      back): custom roles, extensions, schema, data (our own COPY per table,
 *      session_replication_role = replica), large objects, sequences, then
 *      indexes/constraints/triggers/policies, publications, materialized view
 *      refreshes. Any error rolls everything back, so a failed run leaves the
 *      target as it was and can simply be re-run.
 *   5. Verification: per-table row count and checksum, sequences, object
 *      counts, every definition (function bodies, views, policies, triggers,
 *      constraints, indexes, defaults, enums), publication membership and
 *      large-object contents, source vs target; ok only if all match.
 *
 * Returns data; never prints or exits.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { connect, quoteIdent, rwTarget } from "../pg";
import { redact, registerSecret } from "../redact";
import { generateSecret } from "../secrets";
import {
  availableExtensions, CHECKSUM_SETTINGS, copyColumns, databaseState, definitions, sourceCodeRunByLoad, dependentsOf, fingerprintTable, hashColumns, largeObjects, leftBehindDependencies,
  listExtensions, listMemberships, listPublications, listRoles, listSchemas, listTables, matviewRefreshOrder, objectCounts, policyRoles,
  probeHashMode, publicationMembers, roleFootprint, schemaOwners, sequenceStates, serverVersion, storageSummary, tableKey, targetContents,
  unqualifiedCalls, unreadableLargeObjects, unreadableRelations, type ChecksumTarget, type HashColumn, type HashMode, type LeftBehindDependency, type ObjectCounts, type SequenceState,
  type StorageSummary, type TableFingerprint, type TableInfo,
} from "./catalog";
import { startLoader } from "./pipe";
import {
  createRoleSql, customRoles, dumpPattern, EXCLUDED_TABLE_DATA, extensionSql, membershipSql, placeholderSql, planExtensions, planRoles,
  publicationSql, privilegedGrants, selectSchemas, type Membership,
} from "./select";
import { connectSource, parseSourceUrl, protectSource, sourceEnv, sourceError, type SourceConn } from "./source";
import { parseToc, selectToc, tocListFile } from "./toc";
import { compareMigration, formatBytes, type Verification } from "./verify";

export type Progress = (stage: string, message: string) => void;

export interface MigrateOptions {
  sourceUrl: string;
  targetDb: string;
  plan?: boolean;
  replace?: boolean;
  /** copy storage files through the Storage API (not implemented yet: reported) */
  storage?: boolean;
  /** migrate without what PLAN names as left out (objects needing what stays behind, tables the login cannot read) */
  acceptLeftOut?: boolean;
  /** allow an unverified source connection (local/test sources only) */
  insecureTls?: boolean;
  /** CA file for verifying the source's certificate */
  caFile?: string;
  /** run the source's own code (functions of generated columns, CHECK and domain constraints, indexes, matviews) as the target's superuser */
  trustSourceCode?: boolean;
}

/** Something PLAN found that cannot be carried: the run refuses unless --accept-left-out, then leaves it out and reports it. */
export interface LeftOut {
  object: string;
  /** why: what it needs that stays behind, or why it cannot be read */
  reason: string;
}

export interface MigrationPlan {
  source: { url: string; version: string; pgDump: string };
  target: { database: string; address: string; version: string; empty: boolean; contents: string[]; environment: boolean };
  schemas: { migrated: string[]; excluded: string[] };
  tables: TableInfo[];
  totalBytes: number;
  roles: { create: string[]; existing: string[]; reservedSkipped: string[] };
  extensions: { create: string[]; skipped: string[]; blocked: string[] };
  storage: (StorageSummary & { copied: number; note: string }) | null;
  largeObjects: { count: number; bytes: number };
  publications: string[];
  /** objects and tables that cannot be carried (blockers unless --accept-left-out) */
  leftOut: LeftOut[];
  /** source code the load would run as the target's superuser (blockers unless --trust-source-code) */
  sourceCode: { object: string; runs: string; why: string }[];
  /** how the source connection is protected */
  sourceTls: string;
  disk: { path: string; freeBytes: number; needBytes: number };
  blockers: string[];
  warnings: string[];
}

export interface MigrationReport {
  ok: boolean;
  plan: MigrationPlan;
  startedAt: string;
  ms: number;
  bytesStreamed: number;
  /** wall-clock ms per phase: pre-checks, backup, schema dump, data (restore + source checksums), target verification */
  timings: { plan: number; backup: number; schema: number; data: number; verify: number };
  backup?: string;
  rolePasswordsFile?: string;
  rolesCreated: string[];
  /** login roles that got a generated password (in rolePasswordsFile) */
  rolePasswords: string[];
  /** Supabase's roles the target lacks: what they owned went to the migrating superuser, their grants were dropped */
  reassigned: { role: string; owned: number; grants: number }[];
  /** archive entries left out with the objects PLAN named (their comments, grants, dependants) */
  cascadedEntries: number;
  verification: Verification;
  reportFile: string;
  /** set when the target already holds a verified migration from this source: nothing was changed */
  alreadyMigrated?: { reportFile: string; at: string };
}

/** The newest verified report of a migration from this source into this database, if any. */
export function previousMigration(reportsDir: string, targetDb: string, sourceDisplay: string): MigrationReport | undefined {
  if (!existsSync(reportsDir)) return undefined;
  const files = readdirSync(reportsDir).filter((f) => f.startsWith(`migrate-saas-${targetDb}-`) && f.endsWith(".json")).sort().reverse();
  for (const f of files) {
    try {
      const r = JSON.parse(readFileSync(join(reportsDir, f), "utf8")) as MigrationReport;
      if (r.ok && r.plan?.source?.url === sourceDisplay && r.plan?.target?.database === targetDb && !r.alreadyMigrated) return r;
    } catch {}
  }
  return undefined;
}

const FORBIDDEN_TARGETS = new Set(["postgres", "template0", "template1"]);

/** The newest pg_dump/psql on this machine that can read the source (pg_dump refuses newer servers). */
export function pickClientBin(cfg: Config, sourceMajor: number): { dir: string; major: number } | undefined {
  const base = "/usr/lib/postgresql";
  const dirs = existsSync(base)
    ? readdirSync(base).map(Number).filter((n) => Number.isInteger(n) && existsSync(join(base, String(n), "bin", "pg_dump")))
    : [];
  const own = Number(cfg.pgBinDir.match(/postgresql\/(\d+)\//)?.[1] ?? 0);
  const candidates = [...new Set([...dirs, own])].filter((n) => n >= sourceMajor).sort((a, b) => a - b);
  const major = candidates.includes(own) ? own : candidates[0];
  if (!major) return undefined;
  return { dir: major === own ? cfg.pgBinDir : join(base, String(major), "bin"), major };
}

interface Session {
  src: SourceConn;
  source: pg.Client;
  target: pg.Client;
  snapshot: string;
}

async function openSource(url: string, opts: MigrateOptions): Promise<{ src: SourceConn; source: pg.Client; snapshot: string }> {
  const src = parseSourceUrl(url, { insecureTls: opts.insecureTls, caFile: opts.caFile });
  protectSource(src, url);
  const source = await connectSource(src);
  try {
    for (const s of CHECKSUM_SETTINGS) await source.query(s);
    await source.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const snapshot = (await source.query("SELECT pg_export_snapshot() AS s")).rows[0].s as string;
    return { src, source, snapshot };
  } catch (err) {
    await source.end().catch(() => {});
    throw err instanceof ToolkitError ? err : sourceError(src, err);
  }
}

async function openTarget(cfg: Config, database: string): Promise<pg.Client> {
  const t = rwTarget(cfg);
  try {
    return await connect(cfg, { database });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code === "3D000") {
      throw new ToolkitError("TARGET_MISSING", `target database ${database} does not exist on the cluster`, `use one of the environment databases (${cfg.databases.join(", ")}) or create it first (make new-app / make dev-up)`);
    }
    throw new ToolkitError("CLUSTER_UNREACHABLE", `cannot reach the cluster at ${t.host}:${t.port}: ${redact(e.message ?? String(err))}`, "run `make dev-up` (or `make status` to see what is down)");
  }
}

async function buildPlan(cfg: Config, s: Session, opts: MigrateOptions): Promise<{ plan: MigrationPlan; ctx: PlanContext }> {
  const { source, target, src } = s;
  const blockers: string[] = [];
  const warnings: string[] = [];
  const [sv, tv] = [await serverVersion(source), await serverVersion(target)];
  const sourceMajor = Math.floor(sv.num / 10000);
  const targetMajor = Math.floor(tv.num / 10000);
  if (sourceMajor > targetMajor) warnings.push(`the source runs PostgreSQL ${sv.text}, newer than the target's ${tv.text}: features newer than ${targetMajor} will fail to restore (the transaction then rolls back)`);
  const bin = pickClientBin(cfg, sourceMajor);
  if (!bin) blockers.push(`no pg_dump ${sourceMajor}+ on this machine (pg_dump cannot read a newer server): install postgresql-client-${sourceMajor}`);

  const schemas = selectSchemas(await listSchemas(source));
  const allTables = await listTables(source, schemas.migrated);

  const targetRoles = await listRoles(target);
  const targetRoleNames = new Set(targetRoles.map((r) => r.name));
  const sourceRoles = await listRoles(source);
  const roles = planRoles(sourceRoles, targetRoleNames);
  const willExist = new Set([...targetRoleNames, ...roles.create.map((r) => r.name)]);
  const missingPolicyRoles = (await policyRoles(source, schemas.migrated)).filter((r) => !willExist.has(r) && r !== "public");
  if (missingPolicyRoles.length) blockers.push(`policies are granted to roles the target does not have: ${missingPolicyRoles.join(", ")} (create them on the cluster first)`);

  // What the source's roles would be handed beyond their database: refused, or left out when accepted.
  const privileged = privilegedGrants(await listMemberships(source), roles.create, targetRoles);
  for (const g of privileged) {
    if (opts.acceptLeftOut) warnings.push(`left out (accepted): ${g.grant ? `GRANT ${g.grant.role} TO ${g.grant.member}` : `CREATEROLE of ${g.role}`}: ${g.reason}`);
    else blockers.push(`${g.reason}; grant it on the cluster by hand if you mean it, or pass --accept-left-out (ACCEPT_LEFT_OUT=1) to migrate without it`);
  }

  const extensions = planExtensions(await listExtensions(source), await availableExtensions(target));
  if (extensions.blocked.length) blockers.push(`extensions the cluster cannot provide: ${extensions.blocked.join(", ")} (install their packages on every member)`);
  if (extensions.skipped.length) warnings.push(`Supabase platform extensions not available here are skipped: ${extensions.skipped.join(", ")}`);

  // What cannot be carried, found before anything runs: objects that need something left behind,
  // and relations the source login cannot read (pg_dump would die on them mid-run).
  const unreadable = await unreadableRelations(source, schemas.migrated);
  const needsLeftBehind = await leftBehindDependencies(source, schemas.migrated, extensions.create.map((e) => e.name));
  const needsUnreadable = await dependentsOf(source, unreadable.map((u) => u.oid));
  const leftOut: LeftOut[] = [
    ...unreadable.map((u) => ({ object: `${u.kind} ${u.schema}.${u.name}`, reason: u.reason })),
    ...needsLeftBehind.map((d) => ({ object: d.object, reason: `needs ${d.needs}, which is not migrated` })),
    ...needsUnreadable.map((d) => ({ object: d.object, reason: `needs ${d.needs}, which cannot be read` })),
  ];
  const unreadableKeys = new Set(unreadable.map((u) => `${u.schema}.${u.name}`));
  const tables = allTables.filter((t) => !unreadableKeys.has(tableKey(t)));
  const totalBytes = tables.reduce((a, t) => a + t.bytes, 0);
  for (const l of leftOut) {
    if (opts.acceptLeftOut) warnings.push(`left out (accepted): ${l.object}: ${l.reason}`);
    else blockers.push(`${l.object}: ${l.reason}; make it migratable on the source, or pass --accept-left-out (ACCEPT_LEFT_OUT=1) to migrate without it`);
  }
  for (const u of await unqualifiedCalls(source, schemas.migrated)) {
    blockers.push(`${u.object} calls ${u.fn}, whose body calls ${u.calls.join(", ")} without a schema: pg_dump restores with an empty search_path, so it cannot be created; on the source, qualify the call (e.g. public.${u.calls[0]}(...)) or ALTER FUNCTION ${u.fn} SET search_path = public`);
  }
  // Kinds pg_restore is told to leave out: say so instead of dropping them silently.
  const labels = Number((await source.query("SELECT count(*) AS n FROM pg_seclabels WHERE objnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY($1))", [schemas.migrated])).rows[0].n);
  // Code of the source the load would run as the target's superuser: named up front, refused unless the operator trusts it.
  const sourceCode = await sourceCodeRunByLoad(source, schemas.migrated);
  for (const x of sourceCode) {
    const line = x.restored ? `${x.object}: ${x.why}` : `${x.object} would run ${x.runs} as the target's superuser during the load: ${x.why}`;
    if (opts.trustSourceCode) warnings.push(`trusted (--trust-source-code): ${line}`);
    else blockers.push(`${line}; read that code on the source, then pass --trust-source-code (TRUST_SOURCE_CODE=1) to run it, or change it on the source (an IMMUTABLE SQL function with a parsed body, BEGIN ATOMIC or RETURN, calling only built-in functions, is trusted)`);
  }
  if (labels) warnings.push(`${labels} security label(s) (e.g. pgsodium column encryption) on migrated objects are not carried: their label providers are Supabase's`);
  if (src.insecureTls) warnings.push(`INSECURE: the source's TLS certificate is NOT verified (--insecure-source-tls, sslmode=${src.sslmode}): use this only for a local or test source`);
  const los = await largeObjects(source);
  const hiddenLos = await unreadableLargeObjects(source);
  if (hiddenLos.length) blockers.push(`the source login cannot read ${hiddenLos.length} large object(s) (e.g. ${hiddenLos.slice(0, 3).join(", ")}): migrate as their owner or a superuser, or grant SELECT on them`);
  const publications = await listPublications(source, schemas.migrated);

  const contents = await targetContents(target);
  const empty = contents.length === 0;
  const environment = cfg.databases.includes(opts.targetDb);
  if (!environment) warnings.push(`${opts.targetDb} is not one of the environment databases in ${cfg.file} (${cfg.databases.join(", ")})`);
  if (!empty && !opts.replace) blockers.push(`target ${opts.targetDb} is not empty (${contents.length} objects, e.g. ${contents.slice(0, 3).join(", ")}): pass --replace (REPLACE=1) to back it up and replace it`);

  const storage = await storageSummary(source);
  if (storage && storage.objects > 0 && !opts.storage) {
    warnings.push(`${storage.objects} storage objects (${formatBytes(storage.bytes)}) keep their metadata but their files are not copied: they live in Supabase's object store, outside Postgres`);
  }

  // Every member keeps a full copy; on a one-box cluster they share one disk. Indexes are rebuilt: allow 20 %.
  const diskPath = cfg.memberRoot;
  let freeBytes = 0;
  try {
    const st = statfsSync(existsSync(diskPath) ? diskPath : cfg.rootDir);
    freeBytes = Number(st.bavail) * Number(st.bsize);
  } catch {}
  const targetBytes = opts.replace && !empty ? Number((await target.query("SELECT pg_database_size(current_database()) AS b")).rows[0].b) : 0;
  const needBytes = Math.ceil(totalBytes * cfg.members.length * 1.2 + targetBytes);
  if (freeBytes && freeBytes < needBytes) blockers.push(`not enough disk at ${diskPath}: ${formatBytes(freeBytes)} free, about ${formatBytes(needBytes)} needed (${cfg.members.length} members${targetBytes ? " + backup" : ""})`);

  const plan: MigrationPlan = {
    source: { url: src.display, version: sv.text, pgDump: bin ? `${bin.dir}/pg_dump` : "-" },
    target: { database: opts.targetDb, address: `${rwTarget(cfg).host}:${rwTarget(cfg).port}`, version: tv.text, empty, contents: contents.slice(0, 20), environment },
    schemas,
    tables,
    totalBytes,
    roles: { create: roles.create.map((r) => r.name), existing: roles.existing, reservedSkipped: roles.reservedSkipped },
    extensions: { create: extensions.create.map((e) => `${e.name} (${e.schema})`), skipped: extensions.skipped, blocked: extensions.blocked },
    storage: storage ? { ...storage, copied: 0, note: opts.storage ? "--storage is not implemented yet: files were not copied" : "files not copied (pass --storage with the Storage API URLs and service keys)" } : null,
    largeObjects: { count: los.length, bytes: los.reduce((a, l) => a + l.bytes, 0) },
    publications: publications.map((p) => `${p.name}: ${p.allTables ? "all tables" : [...p.tables, ...p.schemas.map((x) => `tables in schema ${x}`)].join(", ")}`),
    leftOut,
    sourceCode: sourceCode.map(({ object, runs, why }) => ({ object, runs, why })),
    sourceTls: src.insecureTls ? `NOT VERIFIED (sslmode=${src.sslmode}, --insecure-source-tls)` : `verified (sslmode=${src.sslmode}, CA ${src.sslrootcert})`,
    disk: { path: diskPath, freeBytes, needBytes },
    blockers,
    warnings,
  };
  if (opts.storage) warnings.push("--storage is not implemented yet: storage files are not copied");
  const placeholders = sourceRoles.map((r) => r.name).filter((r) => !willExist.has(r) && !r.startsWith("pg_"));
  if (opts.acceptLeftOut) for (const r of roles.create) if (privileged.some((g) => g.role === r.name)) r.createrole = false;
  return { plan, ctx: { bin, roles, extensions, privilegedGrants: privileged.flatMap((g) => (g.grant ? [g.grant] : [])), willExist, sourceRoles, placeholders, unreadable, leftOutObjects: [...needsLeftBehind, ...needsUnreadable], publications } };
}

interface PlanContext {
  /** memberships left out: they would hand a migrated role superuser or server access */
  privilegedGrants: Membership[];
  bin: { dir: string; major: number } | undefined;
  roles: ReturnType<typeof planRoles>;
  extensions: ReturnType<typeof planExtensions>;
  willExist: Set<string>;
  sourceRoles: Awaited<ReturnType<typeof listRoles>>;
  /** source roles the target will not have: placeholders inside the restore transaction */
  placeholders: string[];
  unreadable: Awaited<ReturnType<typeof unreadableRelations>>;
  leftOutObjects: LeftBehindDependency[];
  publications: Awaited<ReturnType<typeof listPublications>>;
}

/** Plan only (PLAN=1): reads both sides, changes nothing. */
export async function planMigration(cfg: Config, opts: MigrateOptions): Promise<MigrationPlan> {
  return withSession(cfg, opts, async (s) => (await buildPlan(cfg, s, opts)).plan);
}

async function withSession<T>(cfg: Config, opts: MigrateOptions, fn: (s: Session) => Promise<T>): Promise<T> {
  if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(opts.targetDb) || FORBIDDEN_TARGETS.has(opts.targetDb)) {
    throw new ToolkitError("BAD_TARGET_DB", `TARGET_DB=${JSON.stringify(opts.targetDb)} cannot be a migration target`, `use one of the environment databases: ${cfg.databases.join(", ")}`);
  }
  if (!cfg.secrets.POSTGRES_PASSWORD) throw new ToolkitError("NO_SECRETS", `${cfg.secretsFile} does not exist yet`, "run `make dev-up` first");
  const { src, source, snapshot } = await openSource(opts.sourceUrl, opts);
  let target: pg.Client | undefined;
  try {
    target = await openTarget(cfg, opts.targetDb);
    // One migration per target at a time; the lock lives as long as this session.
    const locked = (await target.query("SELECT pg_try_advisory_lock(hashtext('pgplatform:migrate-saas:' || current_database())) AS ok")).rows[0].ok;
    if (!locked) throw new ToolkitError("MIGRATE_LOCKED", `another migrate-saas into ${opts.targetDb} is running`, "wait for it to finish (a failed run leaves nothing behind), then run again");
    return await fn({ src, source, target, snapshot });
  } catch (err) {
    if (err instanceof ToolkitError) throw err;
    // A pg error from the source (we only query it inside fn) must not leak the password.
    throw new ToolkitError("MIGRATE_FAILED", redact((err as Error).message ?? String(err)), "see the message above; nothing was committed to the target");
  } finally {
    await source.end().catch(() => {});
    await target?.end().catch(() => {});
  }
}

const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");

/** pg_dump -Fc of the target before --replace touches it: <stateDir>/backups/pre-migrate/<db>-<time>.dump, 0600. */
async function backupTarget(cfg: Config, db: string, binDir: string): Promise<string> {
  const dir = join(cfg.stateDir, "backups", "pre-migrate");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = join(dir, `${db}-${stamp()}.dump`);
  writeFileSync(file, "", { mode: 0o600 }); // pg_dump truncates it and keeps the mode
  const t = rwTarget(cfg);
  await run([join(binDir, "pg_dump"), "-Fc", "-h", t.host, "-p", String(t.port), "-U", "postgres", "-d", db, "-f", file], {
    env: { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, PGCONNECT_TIMEOUT: "10" },
    timeoutMs: 3_600_000,
  });
  return file;
}

async function missingTables(c: pg.Client, tables: TableInfo[]): Promise<number> {
  const r = await c.query(
    `SELECT count(*)::int AS n FROM unnest($1::text[], $2::text[]) AS t(s, n) WHERE NOT EXISTS (SELECT 1 FROM pg_tables p WHERE p.schemaname = t.s AND p.tablename = t.n)`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return r.rows[0].n;
}

/** --replace: empty the target inside the restore transaction, so a failure also undoes this. */
async function replaceSql(target: pg.Client): Promise<string[]> {
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
const serial = () => {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const r = tail.then(fn);
    tail = r.catch(() => {});
    return r;
  };
};

/** Source side, in the snapshot transaction: also decides each table's hash mode for the target. */
async function sourceFingerprints(c: pg.Client, tables: ChecksumTarget[], modes: Map<string, HashMode>, exclusive: ReturnType<typeof serial>): Promise<Record<string, TableFingerprint>> {
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
async function targetFingerprints(cfg: Config, db: string, tables: ChecksumTarget[], modes: Map<string, HashMode>, parallel = 2): Promise<Record<string, TableFingerprint>> {
  const queue = [...tables];
  const out: Record<string, TableFingerprint> = {};
  await Promise.all(
    Array.from({ length: Math.min(parallel, queue.length) }, async () => {
      const c = await connect(cfg, { database: db });
      try {
        for (const s of CHECKSUM_SETTINGS) await c.query(s);
        for (let t = queue.shift(); t; t = queue.shift()) out[tableKey(t)] = await fingerprintTable(c, t, modes.get(tableKey(t)));
      } finally {
        await c.end().catch(() => {});
      }
    }),
  );
  return out;
}

const qn = (t: { schema: string; name: string }) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
const sqlLiteral = (v: string) => `'${v.replace(/'/g, "''")}'`;

/**
 * Our own COPY for one table, both ends built from catalog names: the source
 * side reads ONLY the table (inheritance children are tables of their own) or,
 * for a partition root, the whole tree; the target side loads plain tables
 * WITH (FREEZE) (legal: each was created in this transaction; frozen rows need
 * no rewrite on first read), partition roots without (COPY FREEZE refuses them)
 * and routes their rows itself.
 */
export function copyStatements(t: { schema: string; name: string; kind: TableInfo["kind"] }, columns: string[]): { out: string; into: string } {
  const cols = columns.map(quoteIdent).join(", ");
  const select = columns.length ? cols : "";
  return {
    out: `COPY (SELECT ${select} FROM ${t.kind === "partitioned" ? "" : "ONLY "}${qn(t)}) TO STDOUT`,
    into: `COPY ${qn(t)}${columns.length ? ` (${cols})` : ""} FROM stdin${t.kind === "table" ? " WITH (FREEZE)" : ""};`,
  };
}

const LO_CHUNK = 1024 * 1024;

export async function migrateSaas(cfg: Config, opts: MigrateOptions, progress: Progress = () => {}): Promise<MigrationReport> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  return withSession(cfg, opts, async (s) => {
    progress("source", `connected to ${s.src.display}; snapshot ${s.snapshot}`);
    const { plan, ctx } = await buildPlan(cfg, s, opts);
    const timings = { plan: Date.now() - t0, backup: 0, schema: 0, data: 0, verify: 0 };
    let mark = Date.now();
    const lap = () => { const n = Date.now(); const d = n - mark; mark = n; return d; };
    progress("plan", `${plan.tables.length} tables (${formatBytes(plan.totalBytes)}) in ${plan.schemas.migrated.join(", ")}; ${plan.roles.create.length} roles to create`);
    if (!plan.target.empty && !opts.replace) {
      // Re-running is safe: a target that already holds a verified migration from this source is left alone.
      const prev = previousMigration(cfg.reportsDir, opts.targetDb, s.src.display);
      if (prev && (await missingTables(s.target, prev.plan.tables.filter((t) => (t.kind ?? "table") !== "matview"))) === 0) return { ...prev, alreadyMigrated: { reportFile: prev.reportFile, at: prev.startedAt } };
    }
    if (plan.blockers.length) {
      const notEmpty = plan.blockers.find((b) => b.startsWith("target ") && b.includes("is not empty"));
      if (notEmpty && plan.blockers.length === 1) {
        throw new ToolkitError("TARGET_NOT_EMPTY", notEmpty.split(":")[0]!, "pass --replace (make migrate-saas ... REPLACE=1): it backs the target up, then replaces it in the same transaction as the restore");
      }
      throw new ToolkitError("MIGRATE_BLOCKED", `cannot migrate: ${plan.blockers.length} blocker(s)`, "resolve them (run with PLAN=1 to see the full plan) and run again", plan.blockers.join("\n"));
    }
    const bin = ctx.bin!;
    const tgt = rwTarget(cfg);
    const workDir = join(cfg.stateDir, "migrate", `run-${process.pid}-${Date.now()}`);
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
    let loader: ReturnType<typeof startLoader> | undefined;
    try {
      let backup: string | undefined;
      if (opts.replace && !plan.target.empty) {
        progress("backup", `backing up ${opts.targetDb} before replacing it`);
        backup = await backupTarget(cfg, opts.targetDb, bin.dir);
        progress("backup", backup);
      }
      timings.backup = lap();

      // Schema (and large-object metadata), from the same snapshot as the data, as an archive: no table data in it.
      const env = sourceEnv(s.src);
      const archive = join(workDir, "schema.dump");
      progress("schema", "dumping the schema");
      await run([
        join(bin.dir, "pg_dump"), "--snapshot", s.snapshot, "-Fc", "-b", "--no-publications", "--no-subscriptions", "--exclude-table-data", "*.*",
        ...plan.schemas.migrated.flatMap((n) => ["-n", dumpPattern(n)]),
        ...ctx.unreadable.flatMap((u) => ["--exclude-table", `${dumpPattern(u.schema)}.${dumpPattern(u.name)}`]),
        "-f", archive,
      ], { env, timeoutMs: 600_000 });
      const toc = parseToc((await run([join(bin.dir, "pg_restore"), "-l", "-v", archive], { timeoutMs: 120_000 })).stdout);
      const unknown = toc.filter((e) => e.desc === "?");
      if (unknown.length) throw new ToolkitError("UNKNOWN_ARCHIVE_ENTRY", `the schema archive holds entries of a kind this toolkit does not know: ${unknown.map((e) => e.line).join("; ")}`, "report it; nothing was changed");
      // --replace drops every schema but public (and the system's) in the same transaction, before the restore.
      const replacing = !!opts.replace && !plan.target.empty;
      const targetSchemas = new Set((await s.target.query("SELECT nspname FROM pg_namespace")).rows.map((r) => r.nspname as string)
        .filter((n) => !replacing || n === "public" || n === "pg_catalog" || n === "information_schema" || n.startsWith("pg_")));
      const owners = await schemaOwners(s.source, plan.schemas.migrated);
      const existingSchemaOids = new Set(Object.entries(owners).filter(([n]) => targetSchemas.has(n)).map(([, o]) => o.oid));
      const leaveOut = new Set(ctx.leftOutObjects.map((o) => `${o.classid}/${o.objid}`));
      const selection = selectToc(toc, {
        // Table data is streamed by us; large-object contents too (pg_restore's BLOBS section commits on its own);
        // extensions are created by extensionSql(); materialized views are refreshed and sequences set from the catalog.
        skipDescs: new Set(["TABLE DATA", "BLOBS", "BLOB DATA", "LARGE OBJECTS", "SEQUENCE SET", "MATERIALIZED VIEW DATA", "EXTENSION", "DATABASE", "DATABASE PROPERTIES",
          "SECURITY LABEL", "EVENT TRIGGER", "SUBSCRIPTION", "PUBLICATION", "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA"]),
        leaveOut: (classid, objid) => leaveOut.has(`${classid}/${objid}`),
        replaced: (classid, objid) => classid === 2615 && existingSchemaOids.has(objid),
      });
      const listFile = join(workDir, "restore.list");
      writeFileSync(listFile, tocListFile(selection.keep), { mode: 0o600 });
      const restoreArgs = [join(bin.dir, "pg_restore"), "-L", listFile, "--no-security-labels", "--no-tablespaces", "-f", "-"];
      const [pre, post] = (await Promise.all(["pre-data", "post-data"].map(async (sec) => (await run([...restoreArgs, `--section=${sec}`, archive], { timeoutMs: 600_000 })).stdout))) as [string, string];

      // Roles: generated passwords for login roles (the platform never reveals the old ones).
      const passwords: Record<string, string> = {};
      for (const r of ctx.roles.create) if (r.login) registerSecret((passwords[r.name] = generateSecret(24)));
      const custom = new Set(customRoles(ctx.sourceRoles).map((r) => r.name));
      const holders = placeholderSql(ctx.placeholders);
      const footprint = await roleFootprint(s.source, ctx.placeholders, plan.schemas.migrated);
      const dbBefore = await databaseState(s.target, opts.targetDb);
      // Login roles this run creates belong to this database: they may connect to it, and to nothing else.
      const connectFor = ctx.roles.create.filter((r) => r.login).map((r) => r.name);
      const prelude = [
        "\\set ON_ERROR_STOP on",
        "SET client_min_messages = warning;",
        "BEGIN;",
        ...(opts.replace && !plan.target.empty ? await replaceSql(s.target) : []),
        ...holders.create,
        ...ctx.roles.create.map((r) => createRoleSql(r, passwords[r.name])),
        ...membershipSql(await listMemberships(s.source), custom, ctx.willExist, ctx.privilegedGrants),
        ...connectFor.map((r) => `GRANT CONNECT ON DATABASE ${quoteIdent(opts.targetDb)} TO ${quoteIdent(r)};`),
        ...extensionSql(ctx.extensions),
        // Schemas the target already has (public) keep their entry out of the script; their owner comes from the source.
        ...Object.entries(owners).filter(([n]) => targetSchemas.has(n)).map(([n, o]) => `ALTER SCHEMA ${quoteIdent(n)} OWNER TO ${quoteIdent(o.owner)};`),
        "",
      ].join("\n");
      const matviews = await matviewRefreshOrder(s.source, plan.schemas.migrated);
      const targetPubs = new Set(replacing ? [] : (await s.target.query("SELECT pubname FROM pg_publication")).rows.map((r) => r.pubname as string));
      const sourceSeq: Record<string, SequenceState> = await sequenceStates(s.source, plan.schemas.migrated);
      const postlude = [
        "SET session_replication_role = DEFAULT;",
        post,
        ...publicationSql(ctx.publications, targetPubs, (r) => ctx.willExist.has(r)),
        // A generated column or materialized view may call a function unqualified, as the source's sessions did.
        "RESET search_path;",
        ...matviews.map((m) => `REFRESH MATERIALIZED VIEW ${qn(m)};`),
        ...holders.release,
        "COMMIT;",
        "",
      ].join("\n");

      timings.schema = lap();
      const loadCmd = [
        join(bin.dir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
        "-h", tgt.host, "-p", String(tgt.port), "-U", "postgres", "-d", opts.targetDb, "-f", "-",
      ];
      progress("data", `streaming ${formatBytes(plan.totalBytes)} (on disk) in one transaction`);
      let lastTable = "";
      loader = startLoader({ cmd: loadCmd, env: { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, PGCONNECT_TIMEOUT: "10", PGAPPNAME: "pgplatform-migrate" } }, (table, bytes) => {
        if (table && table !== lastTable) {
          lastTable = table;
          progress("data", `${table}  (${formatBytes(bytes)} streamed)`);
        } else progress("data", `${formatBytes(bytes)} streamed`);
      });
      const ld = loader;
      const hashCols = await hashColumns(s.source, plan.tables);
      const checked: ChecksumTarget[] = plan.tables.map((t) => ({ ...t, columns: hashCols.get(tableKey(t)) ?? ([] as HashColumn[]) }));
      const loaded = plan.tables.filter((t) => t.kind !== "matview" && !EXCLUDED_TABLE_DATA.includes(tableKey(t)));
      const cols = await copyColumns(s.source, loaded);
      const readCmd = (sql: string) => [
        join(bin.dir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
        // pg_dump's own output settings: dates, intervals and floats in forms every server reads back exactly,
        // reg* values schema-qualified, and an error rather than rows silently hidden by row-level security.
        "-c", "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; SET statement_timeout = 0; SET search_path = ''; SET row_security = off",
        "-c", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "-c", `SET TRANSACTION SNAPSHOT ${sqlLiteral(s.snapshot)}`, "-c", sql,
      ];
      // Both ends speak UTF8 whatever this machine's locale (pg_restore's script set the source's encoding before).
      const readEnv = { ...env, PGCLIENTENCODING: "UTF8" };
      const los = await largeObjects(s.source);
      const modes = new Map<string, HashMode>();
      const exclusive = serial();
      const feed = (async () => {
        await ld.write(prelude);
        await ld.write(pre);
        await ld.write("\nSET session_replication_role = replica;\nRESET search_path;\nSET client_encoding = 'UTF8';\n");
        for (const t of loaded) {
          const c = copyStatements(t, cols.get(tableKey(t)) ?? []);
          await ld.copy(tableKey(t), c.into, { cmd: readCmd(c.out), env: readEnv });
        }
        for (const lo of los) {
          for (let off = 0; off < lo.bytes; off += LO_CHUNK) {
            const r = await exclusive(() => s.source.query("SELECT encode(lo_get($1::oid, $2::bigint, $3::int), 'hex') AS h", [lo.oid, off, LO_CHUNK]));
            await ld.write(`SELECT pg_catalog.lo_put(${lo.oid}, ${off}, '\\x${r.rows[0].h}'::bytea);\n`);
          }
        }
        for (const st of Object.values(sourceSeq)) {
          if (st.lastValue === null || !/^-?\d+$/.test(st.lastValue) || !st.schema || !st.name) continue;
          await ld.write(`SELECT pg_catalog.setval(${sqlLiteral(qn({ schema: st.schema, name: st.name }))}, ${st.lastValue}, ${st.isCalled});\n`);
        }
        return ld.finish(postlude);
      })();
      const [piped, sourcePrints] = await Promise.all([feed, sourceFingerprints(s.source, checked, modes, exclusive)]);
      loader = undefined;
      progress("data", `committed: ${formatBytes(piped.bytes)} in ${(piped.ms / 1000).toFixed(1)} s (${formatBytes((piped.bytes / piped.ms) * 1000)}/s)`);

      timings.data = lap();
      // Verification.
      progress("verify", `checksumming ${plan.tables.length} tables on the target`);
      const unreadableOids = ctx.unreadable.map((u) => u.oid);
      const sourceCounts: ObjectCounts = await objectCounts(s.source, plan.schemas.migrated, unreadableOids);
      const sourceDefs = await definitions(s.source, plan.schemas.migrated, unreadableOids);
      const sourcePubs = await publicationMembers(s.source, plan.schemas.migrated);
      const loMap = (rows: { oid: number; owner: string; md5: string }[], owner: (r: string) => string) =>
        Object.fromEntries(rows.map((l) => [`large object ${l.oid}`, `md5 ${l.md5} owner ${owner(l.owner)}`]));
      const targetPrints = await targetFingerprints(cfg, opts.targetDb, checked, modes);
      for (const q of CHECKSUM_SETTINGS) await s.target.query(q);
      const targetSeq = await sequenceStates(s.target, plan.schemas.migrated);
      const targetCounts = await objectCounts(s.target, plan.schemas.migrated);
      const targetDefs = await definitions(s.target, plan.schemas.migrated);
      const targetPubsNow = await publicationMembers(s.target, plan.schemas.migrated);
      const superuser = (await s.target.query("SELECT current_user AS u")).rows[0].u as string;
      const targetLos = await largeObjects(s.target);
      // The database itself comes back as it was: owner, CONNECT confinement (plus the roles created above), settings, limit, comment.
      const dbAfter = await databaseState(s.target, opts.targetDb);
      const dbWant = { ...dbBefore };
      const aclKey = `database ${opts.targetDb}: acl`;
      if (connectFor.length) {
        dbWant[aclKey] = [...(dbBefore[aclKey] ? dbBefore[aclKey]!.split(",") : []), ...connectFor.map((r) => `${r}=CONNECT`)].sort().join(",");
        dbAfter[aclKey] = dbAfter[aclKey]!.split(",").sort().join(",");
      }
      const leftOutCounts: Partial<ObjectCounts> = {};
      for (const o of ctx.leftOutObjects) if (o.kind) leftOutCounts[o.kind] = (leftOutCounts[o.kind] ?? 0) + 1;
      const verification = compareMigration(
        { tables: sourcePrints, sequences: sourceSeq, counts: sourceCounts, definitions: { ...sourceDefs, ...dbWant }, publications: sourcePubs, largeObjects: loMap(los, (r) => (ctx.willExist.has(r) ? r : superuser)) },
        { tables: targetPrints, sequences: targetSeq, counts: targetCounts, definitions: { ...targetDefs, ...dbAfter }, publications: targetPubsNow, largeObjects: loMap(targetLos, (r) => r) },
        { leftOut: new Set(ctx.leftOutObjects.map((o) => o.object)), leftOutCounts },
      );
      progress("verify", verification.ok ? `all ${verification.tables.length} tables, ${verification.sequences.length} sequences, ${verification.definitions.length} definitions and object counts match` : `${verification.mismatches.length} mismatches`);

      timings.verify = lap();
      let rolePasswordsFile: string | undefined;
      if (Object.keys(passwords).length) {
        const dir = join(cfg.stateDir, "migrate");
        rolePasswordsFile = join(dir, `role-passwords-${opts.targetDb}-${stamp()}.env`);
        const body = "# Generated by make migrate-saas: the platform does not reveal role passwords. Keep private (0600).\n" +
          Object.entries(passwords).map(([r, p]) => `${r}=${p}`).join("\n") + "\n";
        writeFileSync(`${rolePasswordsFile}.tmp`, body, { mode: 0o600 });
        renameSync(`${rolePasswordsFile}.tmp`, rolePasswordsFile);
      }

      const reportFile = join(cfg.reportsDir, `migrate-saas-${opts.targetDb}-${stamp()}.json`);
      const report: MigrationReport = {
        ok: verification.ok,
        plan,
        startedAt,
        ms: Date.now() - t0,
        bytesStreamed: piped.bytes,
        timings,
        backup,
        rolePasswordsFile,
        rolesCreated: ctx.roles.create.map((r) => r.name),
        rolePasswords: Object.keys(passwords),
        reassigned: Object.entries(footprint).map(([role, f]) => ({ role, owned: f.owns, grants: f.grants })),
        cascadedEntries: selection.cascaded.length,
        verification,
        reportFile,
      };
      mkdirSync(cfg.reportsDir, { recursive: true });
      writeFileSync(reportFile, redact(JSON.stringify(report, null, 2)) + "\n", { mode: 0o600 });
      return report;
    } finally {
      await loader?.abort();
      rmSync(workDir, { recursive: true, force: true });
    }
  });
}
