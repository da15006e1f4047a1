#!/usr/bin/env bun
/** make backup-drill: an end-to-end restore from the off-site copy into a scratch instance, timed. */
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { loadBackupConfig, withBackupCommand } from "./lib/backup/cli";
import { drillReportPath, runDrill } from "./lib/backup/offsite-drill";
import { openRuntime } from "./lib/runtimes/index";
import { note } from "./lib/ui";

const USAGE = `usage: make backup-drill [STACK=dev]
       bun scripts/backup-drill.ts [--json]

Restores the cluster from the OFF-SITE repository alone (its own pgBackRest
config: the local repository is not configured there) into a new scratch
instance up to a second ago, checks every registered database came back,
downloads the newest off-site logical backup and checks it against its
manifest, then removes the instance. The time taken is appended to
<state>/reports/backup-drill.jsonl and the monitoring textfile; a failure
exits 1 and fires BACKUP_ALERT_URL / BACKUP_ALERT_COMMAND.
Schedule it with make backup-drill-cron [INSTALL=1].`;

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { json: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadBackupConfig();
  await openRuntime(cfg, "backup-drill");
  const r = await withBackupCommand(cfg, "backup-drill", { silent: flags.json }, ({ progress }) =>
    runDrill(cfg, progress),
  );
  if (flags.json) return void console.log(JSON.stringify(r, null, 2));
  note(
    [
      `restored     off-site backup set ${r.pitr.backupSet ?? "?"} + WAL to ${r.at}, timeline ${r.pitr.timeline ?? "?"}`,
      `databases    ${r.pitr.databases.map((d) => d.name).join(", ")}`,
      `logical      ${r.logical ? `${r.logical.id} downloaded, every file matched its manifest (${(r.logical.ms / 1000).toFixed(1)} s)` : "none off-site yet"}`,
      `took         ${(r.ms / 1000).toFixed(1)} s end to end (PITR ${(r.pitr.ms / 1000).toFixed(1)} s)`,
      `recorded     ${drillReportPath(cfg)}`,
    ].join("\n"),
    "backup-drill",
  );
});
