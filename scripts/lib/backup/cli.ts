/**
 * What every backup command shares around its work: the config with secrets
 * registered for redaction, the lock, the log file, the alert on failure, and
 * progress (a bar in a terminal, plain timestamped lines otherwise: cron).
 */
import * as p from "@clack/prompts";
import { loadConfig, type Config } from "../config";
import { ToolkitError } from "../errors";
import { redact, registerSecret } from "../redact";
import { logLine } from "../ui";
import { alertPayload, fireAlert, type AlertTargets } from "./alert";
import type { BackupProgress } from "./common";
import { acquireLock } from "./lock";
import { backupLogger, backupLogPath } from "./log";

export function loadBackupConfig(): Config {
  const cfg = loadConfig();
  for (const v of Object.values(cfg.secrets ?? {})) registerSecret(v);
  if (!cfg.secrets?.POSTGRES_PASSWORD) {
    throw new ToolkitError(
      "NO_SECRETS",
      `${cfg.secretsFile} has no POSTGRES_PASSWORD`,
      "bring the stack up first: `make dev-up`",
    );
  }
  return cfg;
}

const fancy = () => Boolean(process.stdout.isTTY) && process.env.CI !== "true";

export interface CommandContext {
  progress: BackupProgress;
  log: (message: string) => void;
}

export interface CommandOptions {
  /** fire BACKUP_ALERT_URL / BACKUP_ALERT_COMMAND on failure (backup and verify: yes; interactive restores: no) */
  alert?: Partial<AlertTargets> | false;
  /** JSON output wanted: keep stdout clean (progress goes to the log only) */
  silent?: boolean;
}

export async function withBackupCommand<T>(
  cfg: Config,
  command: string,
  opts: CommandOptions,
  fn: (ctx: CommandContext) => Promise<T>,
): Promise<T> {
  const log = backupLogger(cfg, command);
  const bar = !opts.silent && fancy() ? p.progress({ max: 100, style: "heavy" }) : undefined;
  let shown = 0;
  let started = false;
  const progress: BackupProgress = (step, message, fraction) => {
    const line = `${step.padEnd(9)} ${message}`;
    log(line);
    if (opts.silent) return;
    if (bar) {
      if (!started) {
        bar.start(redact(line));
        started = true;
      }
      const target = fraction === undefined ? shown : Math.round(Math.min(1, fraction) * 100);
      if (target > shown) {
        bar.advance(target - shown, redact(line));
        shown = target;
      } else bar.message(redact(line));
    } else logLine(line);
  };
  log(`start (stack ${cfg.stack}, pid ${process.pid})`);
  try {
    const lock = acquireLock(cfg, command);
    try {
      const result = await fn({ progress, log });
      if (bar && started) bar.stop(`${command} done`);
      log("done");
      return result;
    } finally {
      lock.release();
    }
  } catch (e) {
    if (bar && started) bar.error(`${command} failed`);
    const err = e instanceof ToolkitError ? e : new ToolkitError("INTERNAL", (e as Error)?.message ?? String(e));
    log(`FAILED [${err.code}] ${err.message}${err.detail ? ` | ${err.detail.replace(/\n/g, " | ")}` : ""}`);
    if (opts.alert !== false) {
      const targets = {
        url: opts.alert?.url ?? cfg.backup.alertUrl,
        command: opts.alert?.command ?? cfg.backup.alertCommand,
      };
      for (const l of await fireAlert(
        targets,
        alertPayload(cfg, command, err.code, err.message, err.fix, backupLogPath(cfg)),
      )) {
        log(l);
        process.stderr.write(`${redact(l)}\n`);
      }
    }
    throw e;
  }
}
