/**
 * Every backup command appends plain, timestamped, redacted lines to
 * <logs>/backup.log, whatever the terminal shows: cron runs leave a trail.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { redact } from "../redact";

export const backupLogPath = (cfg: Config) => join(cfg.logsDir, "backup.log");

export function backupLogger(cfg: Config, command: string) {
  const path = backupLogPath(cfg);
  mkdirSync(cfg.logsDir, { recursive: true });
  return (message: string) => {
    try {
      appendFileSync(path, `${new Date().toISOString()} [${command} ${process.pid}] ${redact(message)}\n`, {
        mode: 0o600,
      });
    } catch {
      // A full disk must not hide the real error; the terminal/cron mail still gets it.
    }
  };
}
