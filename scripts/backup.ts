#!/usr/bin/env bun
/** make backup: what cron runs nightly. Logical + physical backup, verified by restore, then retention. */
import { runMain, ToolkitError } from "./lib/errors";
import type { RunOptions } from "./lib/exec";
import { openRuntime } from "./lib/runtimes/index";
import { parseFlags } from "./lib/flags";
import { loadBackupConfig, withBackupCommand } from "./lib/backup/cli";
import { runBackup } from "./lib/backup/run";
import { offsiteLine } from "./lib/backup/offsite-run";
import { backupLogPath } from "./lib/backup/log";
import { formatBytes, logLine, note } from "./lib/ui";

const USAGE = `usage: make backup [STACK=dev] [ARGS=...]
       bun scripts/backup.ts [--db a,b] [--no-verify] [--logical-only] [--type full|diff]
                             [--alert-url URL] [--alert-command CMD] [--json]

Dumps every registered database (pg_dump -Fd, from a healthy replica) and the
roles into BACKUP_DIR/<UTC stamp>/ with a manifest, takes a pgBackRest
backup (full every BACKUP_FULL_EVERY_DAYS days, differential otherwise),
proves both by restoring into a scratch instance and running pgbackrest
verify, then applies retention. Safe under cron (env -i PATH=/usr/bin:/bin):
a lock refuses overlapping runs, lines go to <state>/logs/backup.log, and any
failure exits 1 and fires BACKUP_ALERT_URL / BACKUP_ALERT_COMMAND.`;

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    {
      db: "string",
      noVerify: "boolean",
      logicalOnly: "boolean",
      type: "string",
      alertUrl: "string",
      alertCommand: "string",
      json: "boolean",
    },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  if (flags.type && !["full", "diff"].includes(flags.type))
    throw new ToolkitError("BAD_FLAG", `--type must be full or diff (got ${flags.type})`, USAGE);
  const cfg = loadBackupConfig();
  const rt = await openRuntime(cfg, "backup");
  // the docker runtime runs pgBackRest in the leader's container; natively it runs here
  const pgbackrest = rt.pgbackrest && ((_c: unknown, args: string[], o?: RunOptions) => rt.pgbackrest!(args, o));
  const databases = flags.db
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const report = await withBackupCommand(
    cfg,
    "backup",
    { alert: { url: flags.alertUrl, command: flags.alertCommand }, silent: flags.json },
    ({ progress }) =>
      runBackup(
        cfg,
        {
          databases,
          verify: !flags.noVerify,
          physical: !flags.logicalOnly,
          physicalType: flags.type as "full" | "diff" | undefined,
          pgbackrest,
        },
        progress,
      ),
  );
  // Loud at every run, on stderr so cron mails it: an encrypted backup without its passphrase is no backup.
  if (report.offsite?.warning) process.stderr.write(`\n${report.offsite.warning}\n\n`);
  if (flags.json) return void console.log(JSON.stringify(report, null, 2));
  const m = report.manifest;
  const dumpBytes = m.files.reduce((a, f) => a + f.size, 0);
  const lines = [
    `backup       ${m.id}  (${m.status})`,
    `folder       ${report.dir}`,
    `source       ${m.source?.member} (${m.source?.role}), WAL ${m.walPosition}`,
    `databases    ${m.databases.map((d) => `${d.name} (${d.tables.length} tables)`).join(", ")}`,
    `logical      ${formatBytes(dumpBytes)} in ${m.files.length} files, ${(report.ms.dump / 1000).toFixed(1)} s`,
  ];
  if (report.physical)
    lines.push(
      `physical     ${report.physical.type} ${report.physical.label}, ${formatBytes(report.physical.repoSize)} in repo, ${(report.ms.physical / 1000).toFixed(1)} s; ${report.physical.note}`,
    );
  lines.push(
    report.verification
      ? `verified     ${report.verification.ok ? "yes" : "NO"} (restore + row counts + content checksums + database properties + sha256${report.physical ? " + pgbackrest verify" : ""}), ${(report.ms.verify / 1000).toFixed(1)} s`
      : "verified     no (--no-verify: not marked good)",
  );
  if (report.retention)
    lines.push(
      `retention    kept ${report.retention.keep.length}, deleted ${report.retention.delete.length ? report.retention.delete.join(", ") : "none"}`,
    );
  if (report.offsite) lines.push(offsiteLine(report.offsite));
  lines.push(`log          ${backupLogPath(cfg)}`);
  note(lines.join("\n"), "backup");
  logLine(`backup ${m.id} done in ${(report.ms.total / 1000).toFixed(1)} s`);
});
