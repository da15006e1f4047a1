/**
 * make migrate-saas: move a Supabase (cloud) project into one database of the
 * cluster and prove nothing was lost.
 *
 *   1. Pre-checks (plan.ts) before touching the target: source reachable, target exists
 *      and is empty (or --replace, which backs it up first), versions, disk,
 *      extensions, roles policies need.
 *      PLAN also names every object that needs something left behind (a
 *      trigger calling supabase_functions.http_request()) and every table the
 *      source login cannot read: the run refuses unless --accept-left-out.
 *   2. One exported snapshot on the source (session.ts): schema, data and the source-side
 *      checksums all see the same instant.
 *   3. The schema is a pg_dump archive (-Fc), selected through its table of
 *      contents (schema-dump.ts, toc.ts), never by editing SQL text; roles the target lacks
 *      exist as placeholders only inside the transaction (select.ts).
 *   4. One transaction on the target (load.ts; BEGIN first; COMMIT is sent by us only
 *      after every table was read in full, so if this process dies mid-stream
 *      psql hits end of input inside the transaction and the server rolls
 *      back): custom roles, extensions, schema, data (our own COPY per table,
 *      session_replication_role = replica), large objects, sequences, then
 *      indexes/constraints/triggers/policies, publications, materialized view
 *      refreshes. Any error rolls everything back, so a failed run leaves the
 *      target as it was and can simply be re-run.
 *   5. Verification (verify-load.ts): per-table row count and checksum, sequences, object
 *      counts, every definition (function bodies, views, policies, triggers,
 *      constraints, indexes, defaults, enums), publication membership and
 *      large-object contents, source vs target; ok only if all match.
 *
 * Returns data; never prints or exits.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { quoteIdent, rwTarget } from "../pg";
import { redact, registerSecret } from "../redact";
import { generateSecret } from "../secrets";
import { formatBytes } from "../ui";
import { databaseState, listMemberships, schemaOwners, tableKey } from "./catalog";
import { largeObjects } from "./definitions";
import { copyColumns, matviewRefreshOrder, roleFootprint } from "./dependencies";
import {
  type ChecksumTarget,
  type HashColumn,
  hashColumns,
  type HashMode,
  type SequenceState,
  sequenceStates,
} from "./fingerprint";
import { feedLoad, loadCommand } from "./load";
import { startLoader } from "./pipe";
import { buildPlan, previousMigration } from "./plan";
import { dumpSchema, restoreScripts } from "./schema-dump";
import {
  createRoleSql,
  customRoles,
  EXCLUDED_TABLE_DATA,
  extensionSql,
  membershipSql,
  placeholderSql,
  publicationSql,
} from "./select";
import { withSession } from "./session";
import { sourceEnv } from "./source";
import { backupTarget, missingTables, qn, replaceSql, serial, sourceFingerprints, stamp } from "./steps";
import type { MigrateOptions, MigrationReport, Progress } from "./types";
import { verifyLoad } from "./verify-load";

export async function migrateSaas(
  cfg: Config,
  opts: MigrateOptions,
  progress: Progress = () => {},
): Promise<MigrationReport> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  return withSession(cfg, opts, async (s) => {
    progress("source", `connected to ${s.src.display}; snapshot ${s.snapshot}`);
    const { plan, ctx } = await buildPlan(cfg, s, opts);
    const timings = { plan: Date.now() - t0, backup: 0, schema: 0, data: 0, verify: 0 };
    let mark = Date.now();
    const lap = () => {
      const n = Date.now();
      const d = n - mark;
      mark = n;
      return d;
    };
    progress(
      "plan",
      `${plan.tables.length} tables (${formatBytes(plan.totalBytes)}) in ${plan.schemas.migrated.join(", ")}; ${plan.roles.create.length} roles to create`,
    );
    if (!plan.target.empty && !opts.replace) {
      // Re-running is safe: a target that already holds a verified migration from this source is left alone.
      const prev = previousMigration(cfg.reportsDir, opts.targetDb, s.src.display);
      if (
        prev &&
        (await missingTables(
          s.target,
          prev.plan.tables.filter((t) => (t.kind ?? "table") !== "matview"),
        )) === 0
      )
        return { ...prev, alreadyMigrated: { reportFile: prev.reportFile, at: prev.startedAt } };
    }
    if (plan.blockers.length) {
      const notEmpty = plan.blockers.find((b) => b.startsWith("target ") && b.includes("is not empty"));
      if (notEmpty && plan.blockers.length === 1) {
        throw new ToolkitError(
          "TARGET_NOT_EMPTY",
          notEmpty.split(":")[0]!,
          "pass --replace (make migrate-saas ... REPLACE=1): it backs the target up, then replaces it in the same transaction as the restore",
        );
      }
      throw new ToolkitError(
        "MIGRATE_BLOCKED",
        `cannot migrate: ${plan.blockers.length} blocker(s)`,
        "resolve them (run with PLAN=1 to see the full plan) and run again",
        plan.blockers.join("\n"),
      );
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
      const toc = await dumpSchema(bin.dir, s.snapshot, env, plan.schemas.migrated, ctx.unreadable, archive);
      // --replace drops every schema but public (and the system's) in the same transaction, before the restore.
      const replacing = !!opts.replace && !plan.target.empty;
      const targetSchemas = new Set(
        (await s.target.query("SELECT nspname FROM pg_namespace")).rows
          .map((r) => r.nspname as string)
          .filter(
            (n) =>
              !replacing || n === "public" || n === "pg_catalog" || n === "information_schema" || n.startsWith("pg_"),
          ),
      );
      const owners = await schemaOwners(s.source, plan.schemas.migrated);
      const existingSchemaOids = new Set(
        Object.entries(owners)
          .filter(([n]) => targetSchemas.has(n))
          .map(([, o]) => o.oid),
      );
      const leaveOut = new Set(ctx.leftOutObjects.map((o) => `${o.classid}/${o.objid}`));
      const { pre, post, selection } = await restoreScripts(bin.dir, archive, toc, join(workDir, "restore.list"), {
        leaveOut: (classid, objid) => leaveOut.has(`${classid}/${objid}`),
        replaced: (classid, objid) => classid === 2615 && existingSchemaOids.has(objid),
      });

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
        ...Object.entries(owners)
          .filter(([n]) => targetSchemas.has(n))
          .map(([n, o]) => `ALTER SCHEMA ${quoteIdent(n)} OWNER TO ${quoteIdent(o.owner)};`),
        "",
      ].join("\n");
      const matviews = await matviewRefreshOrder(s.source, plan.schemas.migrated);
      const targetPubs = new Set(
        replacing
          ? []
          : (await s.target.query("SELECT pubname FROM pg_publication")).rows.map((r) => r.pubname as string),
      );
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
      progress("data", `streaming ${formatBytes(plan.totalBytes)} (on disk) in one transaction`);
      let lastTable = "";
      loader = startLoader(
        {
          cmd: loadCommand(bin.dir, tgt, opts.targetDb),
          env: { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, PGCONNECT_TIMEOUT: "10", PGAPPNAME: "pgplatform-migrate" },
        },
        (table, bytes) => {
          if (table && table !== lastTable) {
            lastTable = table;
            progress("data", `${table}  (${formatBytes(bytes)} streamed)`);
          } else progress("data", `${formatBytes(bytes)} streamed`);
        },
      );
      const ld = loader;
      const hashCols = await hashColumns(s.source, plan.tables);
      const checked: ChecksumTarget[] = plan.tables.map((t) => ({
        ...t,
        columns: hashCols.get(tableKey(t)) ?? ([] as HashColumn[]),
      }));
      const loaded = plan.tables.filter((t) => t.kind !== "matview" && !EXCLUDED_TABLE_DATA.includes(tableKey(t)));
      const cols = await copyColumns(s.source, loaded);
      // Both ends speak UTF8 whatever this machine's locale (pg_restore's script set the source's encoding before).
      const readEnv = { ...env, PGCLIENTENCODING: "UTF8" };
      const los = await largeObjects(s.source);
      const modes = new Map<string, HashMode>();
      const exclusive = serial();
      const feed = feedLoad(ld, s.source, exclusive, {
        prelude,
        pre,
        postlude,
        tables: loaded,
        columns: cols,
        binDir: bin.dir,
        snapshot: s.snapshot,
        readEnv,
        los,
        sequences: sourceSeq,
      });
      const [piped, sourcePrints] = await Promise.all([feed, sourceFingerprints(s.source, checked, modes, exclusive)]);
      loader = undefined;
      progress(
        "data",
        `committed: ${formatBytes(piped.bytes)} in ${(piped.ms / 1000).toFixed(1)} s (${formatBytes((piped.bytes / piped.ms) * 1000)}/s)`,
      );

      timings.data = lap();
      // Verification.
      progress("verify", `checksumming ${plan.tables.length} tables on the target`);
      const verification = await verifyLoad(cfg, s, opts.targetDb, plan.schemas.migrated, ctx, {
        checked,
        modes,
        sourcePrints,
        sourceSeq,
        los,
        dbBefore,
        connectFor,
      });
      progress(
        "verify",
        verification.ok
          ? `all ${verification.tables.length} tables, ${verification.sequences.length} sequences, ${verification.definitions.length} definitions and object counts match`
          : `${verification.mismatches.length} mismatches`,
      );

      timings.verify = lap();
      let rolePasswordsFile: string | undefined;
      if (Object.keys(passwords).length) {
        const dir = join(cfg.stateDir, "migrate");
        rolePasswordsFile = join(dir, `role-passwords-${opts.targetDb}-${stamp()}.env`);
        const body =
          "# Generated by make migrate-saas: the platform does not reveal role passwords. Keep private (0600).\n" +
          Object.entries(passwords)
            .map(([r, p]) => `${r}=${p}`)
            .join("\n") +
          "\n";
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
