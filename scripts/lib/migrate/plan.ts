/**
 * Step 1 of migrate-saas: the pre-checks, read from both sides inside one
 * source snapshot (the session: session.ts), before the target is touched
 * (PLAN=1 stops here).
 */
import { existsSync, readdirSync, readFileSync, statfsSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { rwTarget } from "../pg";
import { formatBytes } from "../ui";
import {
  availableExtensions,
  listExtensions,
  listMemberships,
  listRoles,
  listSchemas,
  listTables,
  policyRoles,
  serverVersion,
  storageSummary,
  tableKey,
  targetContents,
} from "./catalog";
import { largeObjects, listPublications, unreadableLargeObjects } from "./definitions";
import { dependentsOf, leftBehindDependencies, type LeftBehindDependency, unreadableRelations } from "./dependencies";
import { sourceCodeRunByLoad, unqualifiedCalls } from "./source-code";
import { planExtensions, planRoles, privilegedGrants, selectSchemas, type Membership } from "./select";
import { type Session, withSession } from "./session";
import type { LeftOut, MigrateOptions, MigrationPlan, MigrationReport } from "./types";

/** The newest verified report of a migration from this source into this database, if any. */
export function previousMigration(
  reportsDir: string,
  targetDb: string,
  sourceDisplay: string,
): MigrationReport | undefined {
  if (!existsSync(reportsDir)) return undefined;
  const files = readdirSync(reportsDir)
    .filter((f) => f.startsWith(`migrate-saas-${targetDb}-`) && f.endsWith(".json"))
    .sort()
    .reverse();
  for (const f of files) {
    try {
      const r = JSON.parse(readFileSync(join(reportsDir, f), "utf8")) as MigrationReport;
      if (r.ok && r.plan?.source?.url === sourceDisplay && r.plan?.target?.database === targetDb && !r.alreadyMigrated)
        return r;
    } catch {}
  }
  return undefined;
}

/** The newest pg_dump/psql on this machine that can read the source (pg_dump refuses newer servers). */
export function pickClientBin(cfg: Config, sourceMajor: number): { dir: string; major: number } | undefined {
  const base = "/usr/lib/postgresql";
  const dirs = existsSync(base)
    ? readdirSync(base)
        .map(Number)
        .filter((n) => Number.isInteger(n) && existsSync(join(base, String(n), "bin", "pg_dump")))
    : [];
  const own = Number(cfg.pgBinDir.match(/postgresql\/(\d+)\//)?.[1] ?? 0);
  const candidates = [...new Set([...dirs, own])].filter((n) => n >= sourceMajor).sort((a, b) => a - b);
  const major = candidates.includes(own) ? own : candidates[0];
  if (!major) return undefined;
  return { dir: major === own ? cfg.pgBinDir : join(base, String(major), "bin"), major };
}

export async function buildPlan(
  cfg: Config,
  s: Session,
  opts: MigrateOptions,
): Promise<{ plan: MigrationPlan; ctx: PlanContext }> {
  const { source, target, src } = s;
  const blockers: string[] = [];
  const warnings: string[] = [];
  const [sv, tv] = [await serverVersion(source), await serverVersion(target)];
  const sourceMajor = Math.floor(sv.num / 10000);
  const targetMajor = Math.floor(tv.num / 10000);
  if (sourceMajor > targetMajor)
    warnings.push(
      `the source runs PostgreSQL ${sv.text}, newer than the target's ${tv.text}: features newer than ${targetMajor} will fail to restore (the transaction then rolls back)`,
    );
  const bin = pickClientBin(cfg, sourceMajor);
  if (!bin)
    blockers.push(
      `no pg_dump ${sourceMajor}+ on this machine (pg_dump cannot read a newer server): install postgresql-client-${sourceMajor}`,
    );

  const schemas = selectSchemas(await listSchemas(source));
  const allTables = await listTables(source, schemas.migrated);

  const targetRoles = await listRoles(target);
  const targetRoleNames = new Set(targetRoles.map((r) => r.name));
  const sourceRoles = await listRoles(source);
  const roles = planRoles(sourceRoles, targetRoleNames);
  const willExist = new Set([...targetRoleNames, ...roles.create.map((r) => r.name)]);
  const missingPolicyRoles = (await policyRoles(source, schemas.migrated)).filter(
    (r) => !willExist.has(r) && r !== "public",
  );
  if (missingPolicyRoles.length)
    blockers.push(
      `policies are granted to roles the target does not have: ${missingPolicyRoles.join(", ")} (create them on the cluster first)`,
    );

  // What the source's roles would be handed beyond their database: refused, or left out when accepted.
  const privileged = privilegedGrants(await listMemberships(source), roles.create, targetRoles);
  for (const g of privileged) {
    if (opts.acceptLeftOut)
      warnings.push(
        `left out (accepted): ${g.grant ? `GRANT ${g.grant.role} TO ${g.grant.member}` : `CREATEROLE of ${g.role}`}: ${g.reason}`,
      );
    else
      blockers.push(
        `${g.reason}; grant it on the cluster by hand if you mean it, or pass --accept-left-out (ACCEPT_LEFT_OUT=1) to migrate without it`,
      );
  }

  const extensions = planExtensions(await listExtensions(source), await availableExtensions(target));
  if (extensions.blocked.length)
    blockers.push(
      `extensions the cluster cannot provide: ${extensions.blocked.join(", ")} (install their packages on every member)`,
    );
  if (extensions.skipped.length)
    warnings.push(`Supabase platform extensions not available here are skipped: ${extensions.skipped.join(", ")}`);

  // What cannot be carried, found before anything runs: objects that need something left behind,
  // and relations the source login cannot read (pg_dump would die on them mid-run).
  const unreadable = await unreadableRelations(source, schemas.migrated);
  const needsLeftBehind = await leftBehindDependencies(
    source,
    schemas.migrated,
    extensions.create.map((e) => e.name),
  );
  const needsUnreadable = await dependentsOf(
    source,
    unreadable.map((u) => u.oid),
  );
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
    else
      blockers.push(
        `${l.object}: ${l.reason}; make it migratable on the source, or pass --accept-left-out (ACCEPT_LEFT_OUT=1) to migrate without it`,
      );
  }
  for (const u of await unqualifiedCalls(source, schemas.migrated)) {
    blockers.push(
      `${u.object} calls ${u.fn}, whose body calls ${u.calls.join(", ")} without a schema: pg_dump restores with an empty search_path, so it cannot be created; on the source, qualify the call (e.g. public.${u.calls[0]}(...)) or ALTER FUNCTION ${u.fn} SET search_path = public`,
    );
  }
  // Kinds pg_restore is told to leave out: say so instead of dropping them silently.
  const labels = Number(
    (
      await source.query(
        "SELECT count(*) AS n FROM pg_seclabels WHERE objnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY($1))",
        [schemas.migrated],
      )
    ).rows[0].n,
  );
  // Code of the source the load would run as the target's superuser: named up front, refused unless the operator trusts it.
  const sourceCode = await sourceCodeRunByLoad(source, schemas.migrated);
  for (const x of sourceCode) {
    const line = x.restored
      ? `${x.object}: ${x.why}`
      : `${x.object} would run ${x.runs} as the target's superuser during the load: ${x.why}`;
    if (opts.trustSourceCode) warnings.push(`trusted (--trust-source-code): ${line}`);
    else
      blockers.push(
        `${line}; read that code on the source, then pass --trust-source-code (TRUST_SOURCE_CODE=1) to run it, or change it on the source (an IMMUTABLE SQL function with a parsed body, BEGIN ATOMIC or RETURN, calling only built-in functions, is trusted)`,
      );
  }
  if (labels)
    warnings.push(
      `${labels} security label(s) (e.g. pgsodium column encryption) on migrated objects are not carried: their label providers are Supabase's`,
    );
  if (src.insecureTls)
    warnings.push(
      `INSECURE: the source's TLS certificate is NOT verified (--insecure-source-tls, sslmode=${src.sslmode}): use this only for a local or test source`,
    );
  const los = await largeObjects(source);
  const hiddenLos = await unreadableLargeObjects(source);
  if (hiddenLos.length)
    blockers.push(
      `the source login cannot read ${hiddenLos.length} large object(s) (e.g. ${hiddenLos.slice(0, 3).join(", ")}): migrate as their owner or a superuser, or grant SELECT on them`,
    );
  const publications = await listPublications(source, schemas.migrated);

  const contents = await targetContents(target);
  const empty = contents.length === 0;
  const environment = cfg.databases.includes(opts.targetDb);
  if (!environment)
    warnings.push(
      `${opts.targetDb} is not one of the environment databases in ${cfg.file} (${cfg.databases.join(", ")})`,
    );
  if (!empty && !opts.replace)
    blockers.push(
      `target ${opts.targetDb} is not empty (${contents.length} objects, e.g. ${contents.slice(0, 3).join(", ")}): pass --replace (REPLACE=1) to back it up and replace it`,
    );

  const storage = await storageSummary(source);
  if (storage && storage.objects > 0 && !opts.storage) {
    warnings.push(
      `${storage.objects} storage objects (${formatBytes(storage.bytes)}) keep their metadata but their files are not copied: they live in Supabase's object store, outside Postgres`,
    );
  }

  // Every member keeps a full copy; on a one-box cluster they share one disk. Indexes are rebuilt: allow 20 %.
  const diskPath = cfg.memberRoot;
  let freeBytes = 0;
  try {
    const st = statfsSync(existsSync(diskPath) ? diskPath : cfg.rootDir);
    freeBytes = Number(st.bavail) * Number(st.bsize);
  } catch {}
  const targetBytes =
    opts.replace && !empty
      ? Number((await target.query("SELECT pg_database_size(current_database()) AS b")).rows[0].b)
      : 0;
  const needBytes = Math.ceil(totalBytes * cfg.members.length * 1.2 + targetBytes);
  if (freeBytes && freeBytes < needBytes)
    blockers.push(
      `not enough disk at ${diskPath}: ${formatBytes(freeBytes)} free, about ${formatBytes(needBytes)} needed (${cfg.members.length} members${targetBytes ? " + backup" : ""})`,
    );

  const plan: MigrationPlan = {
    source: { url: src.display, version: sv.text, pgDump: bin ? `${bin.dir}/pg_dump` : "-" },
    target: {
      database: opts.targetDb,
      address: `${rwTarget(cfg).host}:${rwTarget(cfg).port}`,
      version: tv.text,
      empty,
      contents: contents.slice(0, 20),
      environment,
    },
    schemas,
    tables,
    totalBytes,
    roles: {
      create: roles.create.map((r) => r.name),
      existing: roles.existing,
      reservedSkipped: roles.reservedSkipped,
    },
    extensions: {
      create: extensions.create.map((e) => `${e.name} (${e.schema})`),
      skipped: extensions.skipped,
      blocked: extensions.blocked,
    },
    storage: storage
      ? {
          ...storage,
          copied: 0,
          note: opts.storage
            ? "--storage is not implemented yet: files were not copied"
            : "files not copied (pass --storage with the Storage API URLs and service keys)",
        }
      : null,
    largeObjects: { count: los.length, bytes: los.reduce((a, l) => a + l.bytes, 0) },
    publications: publications.map(
      (p) =>
        `${p.name}: ${p.allTables ? "all tables" : [...p.tables, ...p.schemas.map((x) => `tables in schema ${x}`)].join(", ")}`,
    ),
    leftOut,
    sourceCode: sourceCode.map(({ object, runs, why }) => ({ object, runs, why })),
    sourceTls: src.insecureTls
      ? `NOT VERIFIED (sslmode=${src.sslmode}, --insecure-source-tls)`
      : `verified (sslmode=${src.sslmode}, CA ${src.sslrootcert})`,
    disk: { path: diskPath, freeBytes, needBytes },
    blockers,
    warnings,
  };
  if (opts.storage) warnings.push("--storage is not implemented yet: storage files are not copied");
  const placeholders = sourceRoles.map((r) => r.name).filter((r) => !willExist.has(r) && !r.startsWith("pg_"));
  if (opts.acceptLeftOut)
    for (const r of roles.create) if (privileged.some((g) => g.role === r.name)) r.createrole = false;
  return {
    plan,
    ctx: {
      bin,
      roles,
      extensions,
      privilegedGrants: privileged.flatMap((g) => (g.grant ? [g.grant] : [])),
      willExist,
      sourceRoles,
      placeholders,
      unreadable,
      leftOutObjects: [...needsLeftBehind, ...needsUnreadable],
      publications,
    },
  };
}

export interface PlanContext {
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
