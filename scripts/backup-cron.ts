#!/usr/bin/env bun
/** make backup-cron [INSTALL=1]: print (and install) the crontab line for the nightly backup. */
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { envFlag, parseFlags } from "./lib/flags";
import { BACKUP_JOB, cronLine, DRILL_JOB, installCron } from "./lib/backup/cron";
import { logLine } from "./lib/ui";

const USAGE = `usage: make backup-cron [INSTALL=1]      make backup-drill-cron [INSTALL=1]
       bun scripts/backup-cron.ts [--install] [--drill]

Prints the crontab line that runs make backup on BACKUP_SCHEDULE (absolute
paths, so cron's bare environment works). With INSTALL=1 it installs it:
/etc/cron.d/pgplatform-backup-<stack> as root, else the user's crontab;
re-running replaces the line rather than adding another. --drill: the same
for make backup-drill on BACKUP_OFFSITE_DRILL_SCHEDULE.`;

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { install: "boolean", drill: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  await openRuntime(cfg, "backup-cron");
  // The bun running us now: cron's PATH will not find one under node_modules.
  const job = flags.drill ? DRILL_JOB : BACKUP_JOB;
  const line = cronLine(cfg, process.execPath, job);
  console.log(line);
  if (flags.install || envFlag("INSTALL")) {
    const r = await installCron(cfg, process.execPath, job);
    logLine(r.changed ? `installed in ${r.where}` : `already installed in ${r.where}: nothing changed`);
  }
});
