#!/usr/bin/env bun
/** make migrate-saas: move a Supabase cloud project into one database of the cluster, verified table by table. */
import { existsSync, readFileSync, statSync } from "node:fs";
import * as p from "@clack/prompts";
import { parse as parseDotenv } from "dotenv";
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { envFlag, parseFlags } from "./lib/flags";
import { migrateSaas } from "./lib/migrate/migrate";
import { planMigration } from "./lib/migrate/plan";
import type { MigrationPlan, MigrationReport } from "./lib/migrate/types";
import { ensureSecrets } from "./lib/secrets";
import { formatBytes, intro, isInteractive, note, outro, progressReporter, table } from "./lib/ui";

const USAGE = `usage: make migrate-saas SOURCE_ENV=<0600 file with SOURCE_DB_URL=...> TARGET_DB=<db> [PLAN=1] [REPLACE=1] [ACCEPT_LEFT_OUT=1] [TRUST_SOURCE_CODE=1]
       make migrate-saas TARGET_DB=<db>          (in a terminal: asks for the URL, hidden)
       bun scripts/migrate-saas.ts --target-db <db> [--plan] [--replace] [--json] [--env-file <file>] [--accept-left-out]
                                   [--trust-source-code]
                                   [--source-ca <file>] [--insecure-source-tls] [--storage]

Moves a Supabase project (custom roles, schema incl. RLS policies and triggers
on auth.users, data incl. auth.users/identities and storage metadata,
sequences) into TARGET_DB in one transaction, then compares every table's row
count and checksum, the sequences and the object counts, source vs target.

  SOURCE_DB_URL   from a file only you can read (--env-file / SOURCE_ENV=<file>, mode 0600,
                  a line SOURCE_DB_URL=postgresql://...), a hidden prompt in a terminal,
                  or the environment. Never on a command line (make's included): the
                  password would show in the process list. It is never printed.
  --source-ca     CA file the source's certificate must chain to (env SOURCE_SSLROOTCERT;
                  default: the system's CAs). The source is always verified
                  (sslmode=verify-full) unless --insecure-source-tls
                  (env SOURCE_TLS_INSECURE=1), for a local or test source only.
  --accept-left-out  migrate without what PLAN lists as left out (objects that need a
                  schema left behind, tables the source login cannot read); the report
                  names each (env ACCEPT_LEFT_OUT=1). Without it they are blockers.
  --trust-source-code  run the source's own code that the load evaluates as the target's
                  superuser (functions of generated columns, CHECK and domain constraints,
                  indexes, materialized views; functions in untrusted languages); PLAN
                  names each (env TRUST_SOURCE_CODE=1). Without it they are blockers.
  --target-db     an existing, empty database of the cluster (env TARGET_DB)
  --plan          dry run: what would move, sizes, blockers; changes nothing (env PLAN=1)
  --replace       target not empty: back it up (pg_dump -Fc into
                  <state>/backups/pre-migrate/, 0600), then replace it (env REPLACE=1);
                  asks first in a terminal (--yes, YES=1 skips)
  --json          print the report as JSON
  --storage       copy storage files via the Storage API: refused with a clear error (not supported yet)

Exit status: 0 migrated and verified; 1 error, blocker or any mismatch; 130 Ctrl-C.`;

async function sourceUrl(envFile?: string): Promise<string> {
  if (envFile) {
    if (!existsSync(envFile))
      throw new ToolkitError(
        "NO_ENV_FILE",
        `${envFile} does not exist`,
        "pass a file holding a line SOURCE_DB_URL=postgresql://...",
      );
    const mode = statSync(envFile).mode & 0o777;
    if (mode & 0o077)
      throw new ToolkitError(
        "ENV_FILE_OPEN",
        `${envFile} holds a password but is readable by others (mode ${mode.toString(8).padStart(4, "0")})`,
        `chmod 600 ${envFile}`,
      );
    const v = parseDotenv(readFileSync(envFile)).SOURCE_DB_URL;
    if (!v)
      throw new ToolkitError(
        "MISSING_SOURCE_URL",
        `${envFile} has no SOURCE_DB_URL line`,
        "add SOURCE_DB_URL=postgresql://... to it",
      );
    return v;
  }
  if (process.env.SOURCE_DB_URL) return process.env.SOURCE_DB_URL;
  if (!isInteractive()) {
    throw new ToolkitError(
      "MISSING_SOURCE_URL",
      "SOURCE_DB_URL is required without a terminal",
      "write SOURCE_DB_URL=postgresql://... into a file, chmod 600 it, and pass SOURCE_ENV=<file> (make) or --env-file <file>",
    );
  }
  const v = await p.password({
    message: "Source database URL (Supabase: Project → Connect → Session pooler)",
    mask: "*",
    validate: (x) => (x && /^postgres(ql)?:\/\//.test(x) ? undefined : "must start with postgresql://"),
  });
  if (p.isCancel(v)) throw new ToolkitError("CANCELLED", "cancelled", undefined);
  return v;
}

async function targetDb(flag: string | undefined, databases: string[]): Promise<string> {
  const v = flag ?? process.env.TARGET_DB;
  if (v) return v;
  if (!isInteractive())
    throw new ToolkitError(
      "MISSING_TARGET_DB",
      "TARGET_DB is required without a terminal",
      `pass TARGET_DB=<db> (one of ${databases.join(", ")})`,
    );
  const pick = await p.select({ message: "Target database", options: databases.map((d) => ({ value: d, label: d })) });
  if (p.isCancel(pick)) throw new ToolkitError("CANCELLED", "cancelled", undefined);
  return pick as string;
}

function planLines(plan: MigrationPlan): string {
  const lines = [
    `source       ${plan.source.url}  (PostgreSQL ${plan.source.version})`,
    `target       ${plan.target.database} at ${plan.target.address}  (PostgreSQL ${plan.target.version}, ${plan.target.empty ? "empty" : `${plan.target.contents.length} objects`})`,
    `schemas      ${plan.schemas.migrated.join(", ")}`,
    `left behind  ${plan.schemas.excluded.join(", ") || "-"}  (managed by Supabase)`,
    `source TLS   ${plan.sourceTls}`,
    `tables       ${plan.tables.length}, ${formatBytes(plan.totalBytes)} on disk`,
    `large objs   ${plan.largeObjects.count} (${formatBytes(plan.largeObjects.bytes)})`,
    `publications ${plan.publications.join("; ") || "-"}`,
    `roles        create ${plan.roles.create.join(", ") || "-"}; already there ${plan.roles.existing.join(", ") || "-"}; Supabase's, not recreated: ${plan.roles.reservedSkipped.length}`,
    `extensions   ${plan.extensions.create.join(", ") || "-"}${plan.extensions.skipped.length ? `; skipped ${plan.extensions.skipped.join(", ")}` : ""}`,
    `storage      ${plan.storage ? `${plan.storage.buckets} buckets, ${plan.storage.objects} objects (${formatBytes(plan.storage.bytes)}): metadata moves, ${plan.storage.copied} files copied` : "-"}`,
    `disk         ${formatBytes(plan.disk.freeBytes)} free at ${plan.disk.path}, ~${formatBytes(plan.disk.needBytes)} needed`,
  ];
  for (const l of plan.leftOut) lines.push(`left out     ${l.object}: ${l.reason}`);
  for (const w of plan.warnings) lines.push(`warning      ${w}`);
  for (const b of plan.blockers) lines.push(`BLOCKER      ${b}`);
  return lines.join("\n");
}

function verificationTable(r: MigrationReport): string {
  const rows = [["table", "source rows", "target rows", "checksum", ""]];
  for (const t of r.verification.tables) {
    rows.push([
      t.table,
      String(t.sourceRows),
      String(t.targetRows ?? "-"),
      t.targetChecksum === t.sourceChecksum ? "match" : "DIFFERS",
      t.ok ? "ok" : "MISMATCH",
    ]);
  }
  const objs = r.verification.objects
    .map((o) => `${o.object} ${o.source}/${o.target}${o.ok ? "" : " MISMATCH"}`)
    .join(", ");
  const seqs = r.verification.sequences.filter((s) => !s.ok).length;
  const defs = r.verification.definitions.filter((d) => !d.ok).length;
  return `${table(rows)}\n\nsequences: ${r.verification.sequences.length - seqs}/${r.verification.sequences.length} match\ndefinitions, publications, large objects: ${r.verification.definitions.length - defs}/${r.verification.definitions.length} match\nobjects (source/target): ${objs}`;
}

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    {
      targetDb: "string",
      plan: "boolean",
      replace: "boolean",
      yes: "boolean",
      json: "boolean",
      envFile: "string",
      storage: "boolean",
      acceptLeftOut: "boolean",
      trustSourceCode: "boolean",
      sourceCa: "string",
      insecureSourceTls: "boolean",
    },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  if (flags.storage) {
    // Refuse rather than half-do it: nobody should believe their files moved.
    throw new ToolkitError(
      "STORAGE_COPY_UNSUPPORTED",
      "--storage (copying storage files through the Storage API) is not supported yet",
      "run without --storage: bucket and object metadata still move, and the report counts the files left to copy (e.g. with rclone against both Storage S3 endpoints)",
    );
  }
  let cfg = loadConfig();
  await openRuntime(cfg, "migrate-saas");
  ensureSecrets(cfg.secretsFile); // registers the cluster's secrets for redaction
  cfg = loadConfig(cfg.stack);
  const url = await sourceUrl(flags.envFile ?? (process.env.SOURCE_ENV || undefined));
  const db = await targetDb(flags.targetDb, cfg.databases);
  const opts = {
    sourceUrl: url,
    targetDb: db,
    plan: flags.plan || envFlag("PLAN"),
    replace: flags.replace || envFlag("REPLACE"),
    storage: flags.storage,
    acceptLeftOut: flags.acceptLeftOut || envFlag("ACCEPT_LEFT_OUT"),
    trustSourceCode: flags.trustSourceCode || envFlag("TRUST_SOURCE_CODE"),
    insecureTls: flags.insecureSourceTls || envFlag("SOURCE_TLS_INSECURE"),
    caFile: flags.sourceCa ?? (process.env.SOURCE_SSLROOTCERT || undefined),
  };
  if (opts.insecureTls)
    console.error(
      "WARNING: --insecure-source-tls: the source's TLS certificate is NOT verified (the password and data can be read or changed on the way). Use this only for a local or test source.",
    );
  if (envFlag("YES")) flags.yes = true;

  if (opts.plan) {
    const plan = await planMigration(cfg, opts);
    if (flags.json) console.log(JSON.stringify({ plan }, null, 2));
    else note(planLines(plan), `migrate-saas plan (dry run, nothing changed)`);
    return plan.blockers.length ? 1 : 0;
  }

  if (opts.replace && isInteractive() && !flags.yes && !flags.json) {
    const ok = await p.confirm({
      message: `Replace everything in ${db}? (a backup is taken first)`,
      initialValue: false,
    });
    if (p.isCancel(ok) || !ok)
      throw new ToolkitError("CANCELLED", "not replacing: nothing changed", "pass --yes to skip this question");
  }
  if (!flags.json) intro(`migrate-saas: into ${db} (stack ${cfg.stack})`);
  const progress = progressReporter();
  if (!flags.json) progress.start("pre-checks");
  let report: MigrationReport;
  try {
    report = await migrateSaas(cfg, opts, flags.json ? () => {} : progress.step);
  } catch (err) {
    if (!flags.json) progress.fail("migration failed");
    throw err;
  }
  if (flags.json) {
    console.log(JSON.stringify(report, null, 2));
    return report.ok ? 0 : 1;
  }
  if (report.alreadyMigrated) {
    progress.stop("nothing to do");
    note(
      `${db} already holds a verified migration from ${report.plan.source.url} (${report.alreadyMigrated.at}).\nreport: ${report.alreadyMigrated.reportFile}\nTo migrate again from scratch: REPLACE=1 (backs the target up first).`,
      "already migrated",
    );
    outro("nothing changed");
    return 0;
  }
  progress.stop(`done in ${(report.ms / 1000).toFixed(1)} s`);
  note(planLines(report.plan), "what moved");
  note(verificationTable(report), report.ok ? "verification: every table matches" : "verification FAILED");
  const extra = [`report       ${report.reportFile}`];
  if (report.backup) extra.push(`backup       ${report.backup}`);
  if (report.rolePasswordsFile)
    extra.push(
      `passwords    new passwords for ${report.rolePasswords.join(", ")} in ${report.rolePasswordsFile} (0600)`,
    );
  for (const r of report.reassigned)
    extra.push(
      `reassigned   ${r.role} (not on this cluster): ${r.owned} objects now owned by the migrating superuser, ${r.grants} grants dropped`,
    );
  for (const l of report.plan.leftOut) extra.push(`LEFT OUT     ${l.object}: ${l.reason}`);
  for (const m of report.verification.mismatches) extra.push(`MISMATCH     ${m}`);
  note(extra.join("\n"), "files");
  outro(
    report.ok
      ? `migrated and verified: ${report.verification.tables.length} tables`
      : `migration finished with ${report.verification.mismatches.length} mismatches`,
  );
  return report.ok ? 0 : 1;
});
