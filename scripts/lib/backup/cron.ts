/**
 * The crontab line for `make backup`: absolute paths only (cron's PATH is
 * /usr/bin:/bin and its cwd is $HOME), the stack named explicitly, output
 * appended to a log next to backup.log. Installing is idempotent: a line
 * tagged with the stack replaces the previous one.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run, which } from "../exec";
import { writeIfChanged } from "../render";

const shq = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** What cron runs: the nightly backup, or the off-site restore drill (issue 17). */
export interface CronJob {
  name: "backup" | "drill";
  script: string;
  schedule: (cfg: Config) => string;
}
export const BACKUP_JOB: CronJob = { name: "backup", script: "backup.ts", schedule: (cfg) => cfg.backup.schedule };
export const DRILL_JOB: CronJob = {
  name: "drill",
  script: "backup-drill.ts",
  schedule: (cfg) => cfg.backup.offsite.drillSchedule,
};

export const cronTag = (cfg: Config, job = BACKUP_JOB) => `# pgplatform ${job.name} ${cfg.stack}`;

/** Pure: the command cron runs (without the schedule). */
export function cronCommand(cfg: Config, bunPath: string, job = BACKUP_JOB): string {
  const log = join(cfg.logsDir, `${job.name}-cron.log`);
  return `cd ${shq(cfg.rootDir)} && STACK=${shq(cfg.stack)} ${shq(bunPath)} ${shq(join(cfg.rootDir, "scripts", job.script))} >> ${shq(log)} 2>&1`;
}

/** Pure: a user-crontab line (crontab -e format), tagged so re-installs replace it. */
export const cronLine = (cfg: Config, bunPath: string, job = BACKUP_JOB) =>
  `${job.schedule(cfg)} ${cronCommand(cfg, bunPath, job)} ${cronTag(cfg, job)}`;

/** Pure: /etc/cron.d file (system format: with a user field). */
export function cronDFile(cfg: Config, bunPath: string, user: string, job = BACKUP_JOB): string {
  return [
    `${cronTag(cfg, job)}: written by scripts/backup-cron.ts (make ${job.name === "backup" ? "backup-cron" : "backup-drill-cron"} INSTALL=1)`,
    "SHELL=/bin/sh",
    "PATH=/usr/bin:/bin",
    `${job.schedule(cfg)} ${user} ${cronCommand(cfg, bunPath, job)}`,
    "",
  ].join("\n");
}

/** Pure: replace our tagged line in an existing crontab (or append it). */
export function mergeCrontab(existing: string, line: string, tag: string): string {
  const kept = existing.split("\n").filter((l) => l.trim() !== "" && !l.endsWith(tag));
  return [...kept, line].join("\n") + "\n";
}

export interface CronInstall {
  where: string;
  changed: boolean;
}

export async function installCron(cfg: Config, bunPath: string, job = BACKUP_JOB): Promise<CronInstall> {
  const root = process.getuid?.() === 0;
  if (root && existsSync("/etc/cron.d")) {
    const path = `/etc/cron.d/pgplatform-${job.name}-${cfg.stack}`;
    return { where: path, changed: writeIfChanged(path, cronDFile(cfg, bunPath, "root", job), { mode: 0o644 }) };
  }
  if (await which("crontab")) {
    const cur = await run(["crontab", "-l"], { nothrow: true });
    const existing = cur.code === 0 ? cur.stdout : "";
    const next = mergeCrontab(existing, cronLine(cfg, bunPath, job), cronTag(cfg, job));
    if (next === existing) return { where: "crontab -l", changed: false };
    await run(["crontab", "-"], { input: next });
    return { where: "crontab -l", changed: true };
  }
  throw new ToolkitError(
    "NO_CRON",
    "no cron on this machine (neither /etc/cron.d nor crontab)",
    "install it (Debian/Ubuntu: apt-get install cron) and re-run `make backup-cron INSTALL=1`",
  );
}

export const readIfExists = (p: string) => (existsSync(p) ? readFileSync(p, "utf8") : "");
