/**
 * make migrate-saas: move a Supabase (cloud) project into one database of the
 * cluster and prove nothing was lost.
 *
 *   1. Pre-checks before touching the target: source reachable, target exists
 *      and is empty (or --replace, which backs it up first), versions, disk,
 *      extensions, roles policies need.
 *   2. One exported snapshot on the source: schema, data and the source-side
 *      checksums all see the same instant.
 *   3. One transaction on the target (BEGIN in the prelude; COMMIT is sent by us
 *      only after pg_dump exited 0, so if this process dies mid-stream psql hits
 *      end of input inside the transaction and the server rolls back): custom roles,
 *      extensions, schema, data (session_replication_role = replica), then
 *      indexes/constraints/triggers/policies. Any error rolls everything back,
 *      so a failed run leaves the target as it was and can simply be re-run.
 *   4. Verification: per-table row count and checksum, sequences, object
 *      counts, source vs target; the report says ok only if all match.
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
  availableExtensions, CHECKSUM_SETTINGS, fingerprintTable, probeHashMode, type HashMode, listExtensions, listMemberships, listRoles, listSchemas, listTables,
  objectCounts, policyRoles, sequenceStates, serverVersion, storageSummary, tableKey, targetContents,
  type ObjectCounts, type SequenceState, type StorageSummary, type TableFingerprint, type TableInfo,
} from "./catalog";
import { dumpIntoPsql } from "./pipe";
import {
  createRoleSql, customRoles, dumpPattern, EXCLUDED_TABLE_DATA, extensionSql, filterSchemaSql, membershipSql, planExtensions,
  planRoles, selectSchemas,
} from "./select";
import { connectSource, parseSourceUrl, protectSource, sourceEnv, sourceError, type SourceConn } from "./source";
import { compareMigration, formatBytes, type Verification } from "./verify";

export type Progress = (stage: string, message: string) => void;

export interface MigrateOptions {
  sourceUrl: string;
  targetDb: string;
  plan?: boolean;
  replace?: boolean;
  /** copy storage files through the Storage API (not implemented yet: reported) */
  storage?: boolean;
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
  droppedStatements: string[];
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

/** pg_dump 17 writes settings a PG 15 server does not know. */
const newerSetting = (line: string) => /^SET transaction_timeout = /.test(line);

interface Session {
  src: SourceConn;
  source: pg.Client;
  target: pg.Client;
  snapshot: string;
}

async function openSource(url: string): Promise<{ src: SourceConn; source: pg.Client; snapshot: string }> {
  const src = parseSourceUrl(url);
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
  const tables = await listTables(source, schemas.migrated);
  const totalBytes = tables.reduce((a, t) => a + t.bytes, 0);

  const targetRoleNames = new Set((await listRoles(target)).map((r) => r.name));
  const sourceRoles = await listRoles(source);
  const roles = planRoles(sourceRoles, targetRoleNames);
  const willExist = new Set([...targetRoleNames, ...roles.create.map((r) => r.name)]);
  const missingPolicyRoles = (await policyRoles(source, schemas.migrated)).filter((r) => !willExist.has(r) && r !== "public");
  if (missingPolicyRoles.length) blockers.push(`policies are granted to roles the target does not have: ${missingPolicyRoles.join(", ")} (create them on the cluster first)`);

  const extensions = planExtensions(await listExtensions(source), await availableExtensions(target));
  if (extensions.blocked.length) blockers.push(`extensions the cluster cannot provide: ${extensions.blocked.join(", ")} (install their packages on every member)`);
  if (extensions.skipped.length) warnings.push(`Supabase platform extensions not available here are skipped: ${extensions.skipped.join(", ")}`);

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
    disk: { path: diskPath, freeBytes, needBytes },
    blockers,
    warnings,
  };
  if (opts.storage) warnings.push("--storage is not implemented yet: storage files are not copied");
  return { plan, ctx: { bin, roles, extensions, willExist, sourceRoles } };
}

interface PlanContext {
  bin: { dir: string; major: number } | undefined;
  roles: ReturnType<typeof planRoles>;
  extensions: ReturnType<typeof planExtensions>;
  willExist: Set<string>;
  sourceRoles: Awaited<ReturnType<typeof listRoles>>;
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
  const { src, source, snapshot } = await openSource(opts.sourceUrl);
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
  return [
    ...ext.rows.map((r) => `DROP EXTENSION IF EXISTS ${quoteIdent(r.extname)} CASCADE;`),
    ...ns.rows.map((r) => `DROP SCHEMA IF EXISTS ${quoteIdent(r.nspname)} CASCADE;`),
    "DROP SCHEMA public CASCADE;",
    "CREATE SCHEMA public AUTHORIZATION pg_database_owner;",
    "GRANT USAGE ON SCHEMA public TO PUBLIC;",
    "COMMENT ON SCHEMA public IS 'standard public schema';",
  ];
}

/** Source side, in the snapshot transaction: also decides each table's hash mode for the target. */
async function sourceFingerprints(c: pg.Client, tables: TableInfo[], modes: Map<string, HashMode>): Promise<Record<string, TableFingerprint>> {
  const out: Record<string, TableFingerprint> = {};
  for (const t of tables) {
    const mode = await probeHashMode(c, t);
    modes.set(tableKey(t), mode);
    out[tableKey(t)] = await fingerprintTable(c, t, mode);
  }
  return out;
}

/** Checksum the target on a few connections at once: the scans are independent. */
async function targetFingerprints(cfg: Config, db: string, tables: TableInfo[], modes: Map<string, HashMode>, parallel = 2): Promise<Record<string, TableFingerprint>> {
  const queue = [...tables].sort((a, b) => b.bytes - a.bytes);
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
      if (prev && (await missingTables(s.target, prev.plan.tables)) === 0) return { ...prev, alreadyMigrated: { reportFile: prev.reportFile, at: prev.startedAt } };
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
    try {
      let backup: string | undefined;
      if (opts.replace && !plan.target.empty) {
        progress("backup", `backing up ${opts.targetDb} before replacing it`);
        backup = await backupTarget(cfg, opts.targetDb, bin.dir);
        progress("backup", backup);
      }
      timings.backup = lap();

      // Schema, from the same snapshot as the data.
      const env = sourceEnv(s.src);
      const schemaArgs = [join(bin.dir, "pg_dump"), "--snapshot", s.snapshot, "--schema-only", "--no-publications", "--no-subscriptions", ...plan.schemas.migrated.flatMap((n) => ["-n", dumpPattern(n)])];
      progress("schema", "dumping the schema");
      const [pre, post] = (await Promise.all(["pre-data", "post-data"].map((sec) => run([...schemaArgs, `--section=${sec}`], { env, timeoutMs: 600_000 })))).map((r) => r.stdout) as [string, string];
      const roleExists = (r: string) => ctx.willExist.has(r);
      const preF = filterSchemaSql(pre, roleExists);
      const postF = filterSchemaSql(post, roleExists);

      // Roles: generated passwords for login roles (the platform never reveals the old ones).
      const passwords: Record<string, string> = {};
      for (const r of ctx.roles.create) if (r.login) registerSecret((passwords[r.name] = generateSecret(24)));
      const custom = new Set(customRoles(ctx.sourceRoles).map((r) => r.name));
      const roleSql = [
        ...ctx.roles.create.map((r) => createRoleSql(r, passwords[r.name])),
        ...membershipSql(await listMemberships(s.source), custom, ctx.willExist),
      ];
      const prelude = [
        "\\set ON_ERROR_STOP on",
        "SET client_min_messages = warning;",
        "BEGIN;",
        ...(opts.replace && !plan.target.empty ? await replaceSql(s.target) : []),
        ...roleSql,
        ...extensionSql(ctx.extensions),
        preF.sql,
        // Supabase's documented restore: no triggers or FK checks fire while rows are copied.
        "SET session_replication_role = replica;",
        "",
      ].join("\n");
      const postlude = ["SET session_replication_role = DEFAULT;", postF.sql, "COMMIT;", ""].join("\n");
      const preludeFile = join(workDir, "10-prelude.sql");
      writeFileSync(preludeFile, prelude, { mode: 0o600 });

      timings.schema = lap();
      // Data: streamed, checksummed on the source in parallel (same snapshot).
      const dumpCmd = [
        join(bin.dir, "pg_dump"), "--snapshot", s.snapshot, "--data-only", "--no-publications", "--no-subscriptions",
        ...plan.schemas.migrated.flatMap((n) => ["-n", dumpPattern(n)]),
        ...EXCLUDED_TABLE_DATA.flatMap((t) => ["--exclude-table-data", t]),
      ];
      const loadCmd = [
        join(bin.dir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
        "-h", tgt.host, "-p", String(tgt.port), "-U", "postgres", "-d", opts.targetDb,
        "-f", preludeFile, "-f", "-",
      ];
      progress("data", `streaming ${formatBytes(plan.totalBytes)} (on disk) in one transaction`);
      let lastTable = "";
      const modes = new Map<string, HashMode>();
      const [piped, sourcePrints] = await Promise.all([
        dumpIntoPsql({
          dump: { cmd: dumpCmd, env },
          load: { cmd: loadCmd, env: { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, PGCONNECT_TIMEOUT: "10", PGAPPNAME: "pgplatform-migrate" } },
          dropLine: newerSetting,
          trailer: postlude,
          onProgress: (table, bytes) => {
            if (table && table !== lastTable) {
              lastTable = table;
              progress("data", `${table}  (${formatBytes(bytes)} streamed)`);
            } else progress("data", `${formatBytes(bytes)} streamed`);
          },
        }),
        sourceFingerprints(s.source, plan.tables, modes),
      ]);
      progress("data", `committed: ${formatBytes(piped.bytes)} in ${(piped.ms / 1000).toFixed(1)} s (${formatBytes((piped.bytes / piped.ms) * 1000)}/s)`);

      timings.data = lap();
      // Verification.
      progress("verify", `checksumming ${plan.tables.length} tables on the target`);
      const sourceSeq: Record<string, SequenceState> = await sequenceStates(s.source, plan.schemas.migrated);
      const sourceCounts: ObjectCounts = await objectCounts(s.source, plan.schemas.migrated);
      const targetPrints = await targetFingerprints(cfg, opts.targetDb, plan.tables, modes);
      const targetSeq = await sequenceStates(s.target, plan.schemas.migrated);
      const targetCounts = await objectCounts(s.target, plan.schemas.migrated);
      const verification = compareMigration(
        { tables: sourcePrints, sequences: sourceSeq, counts: sourceCounts },
        { tables: targetPrints, sequences: targetSeq, counts: targetCounts },
      );
      progress("verify", verification.ok ? `all ${verification.tables.length} tables, ${verification.sequences.length} sequences and object counts match` : `${verification.mismatches.length} mismatches`);

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
        droppedStatements: [...preF.dropped, ...postF.dropped],
        verification,
        reportFile,
      };
      mkdirSync(cfg.reportsDir, { recursive: true });
      writeFileSync(reportFile, redact(JSON.stringify(report, null, 2)) + "\n", { mode: 0o600 });
      return report;
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  });
}
