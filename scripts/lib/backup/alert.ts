/**
 * A failed backup is never silent: besides the non-zero exit and the log
 * line, BACKUP_ALERT_URL gets a JSON POST and BACKUP_ALERT_COMMAND runs with
 * the message on stdin (argv split on spaces, no shell; details also in
 * BACKUP_* environment variables).
 */
import { hostname } from "node:os";
import type { Config } from "../config";
import { run } from "../exec";
import { redact } from "../redact";

export interface AlertTargets {
  url: string;
  command: string;
}

export interface AlertPayload {
  event: "backup_failed";
  stack: string;
  cluster: string;
  host: string;
  command: string;
  code: string;
  message: string;
  fix?: string;
  at: string;
  log: string;
}

export function alertPayload(
  cfg: Config,
  command: string,
  code: string,
  message: string,
  fix: string | undefined,
  log: string,
): AlertPayload {
  return {
    event: "backup_failed",
    stack: cfg.stack,
    cluster: cfg.clusterName,
    host: hostname(),
    command,
    code,
    message: redact(message),
    fix: fix && redact(fix),
    at: new Date().toISOString(),
    log,
  };
}

/** Pure: the alert command as argv (no shell, so nothing in it is interpreted). */
export const alertArgv = (command: string) => command.trim().split(/\s+/).filter(Boolean);

/** Fire every configured target; returns one line per target saying what happened (never throws). */
export async function fireAlert(targets: AlertTargets, p: AlertPayload): Promise<string[]> {
  const out: string[] = [];
  const text = `pgplatform ${p.command} FAILED on ${p.host} (stack ${p.stack}): [${p.code}] ${p.message}${p.fix ? `\nfix: ${p.fix}` : ""}\nlog: ${p.log}\n`;
  if (targets.url) {
    try {
      const res = await fetch(targets.url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(p),
        signal: AbortSignal.timeout(15_000),
      });
      out.push(`alert POST ${redact(targets.url)}: HTTP ${res.status}`);
    } catch (e) {
      out.push(`alert POST ${redact(targets.url)} failed: ${(e as Error).message}`);
    }
  }
  if (targets.command) {
    const argv = alertArgv(targets.command);
    try {
      const r = await run(argv, {
        input: text,
        nothrow: true,
        timeoutMs: 60_000,
        env: { BACKUP_STACK: p.stack, BACKUP_ERROR_CODE: p.code, BACKUP_ERROR: p.message, BACKUP_LOG: p.log },
      });
      out.push(`alert command ${argv[0]}: exit ${r.code}`);
    } catch (e) {
      out.push(`alert command ${argv[0]} failed: ${(e as Error).message}`);
    }
  }
  if (!targets.url && !targets.command)
    out.push(
      "no BACKUP_ALERT_URL or BACKUP_ALERT_COMMAND configured: only the exit code and the log report this failure",
    );
  return out;
}
