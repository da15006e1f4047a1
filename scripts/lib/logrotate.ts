/**
 * Log rotation for every component of a native stack, by the toolkit: copy, then truncate
 * (logrotate's copytruncate). Every component writes its log through a file descriptor opened
 * with O_APPEND (procs.ts hands one to etcd, Patroni and the Postgres it starts, HAProxy,
 * pgbouncer, the exporters; nginx opens its own logs in append mode too), so after a truncate
 * each next write lands at the start of the emptied file, nothing has to be signalled or
 * restarted, and the caps hold for all of them the same way. A line written between the copy and
 * the truncate is lost: the known cost of copytruncate, bounded by one check interval's writes.
 *
 * Why not each program's own rotation: Patroni's (log.dir, file_size, file_num) moves only
 * Patroni's lines (Postgres' stderr still goes to the descriptor Patroni got), Postgres'
 * logging collector rotates by size only into a new file name (no count cap without a time
 * pattern) and adds a process per member, and etcd, HAProxy, pgbouncer and the exporters write
 * to stderr with no rotation of their own.
 *
 * The rotator runs beside the stack (process `log-rotator`, started by dev-up), checking every
 * 10 s; `make logs-rotate` runs one pass.
 */
import { copyFileSync, existsSync, readdirSync, renameSync, rmSync, statSync, truncateSync, chmodSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config";
import type { ProcSpec } from "./procs";

export const ROTATE_CHECK_SECONDS = 10;

/** The live logs: <logs dir>/*.log (rotated copies are <name>.log.<n>). */
export const stackLogs = (cfg: Pick<Config, "logsDir">): string[] =>
  existsSync(cfg.logsDir)
    ? readdirSync(cfg.logsDir)
        .filter((f) => f.endsWith(".log"))
        .sort()
        .map((f) => join(cfg.logsDir, f))
    : [];

/**
 * One file: when bigger than maxBytes, shift <file>.1 .. <file>.<keep-1> up by one (the oldest
 * goes), copy the file to <file>.1 with its mode, and truncate it. True when it rotated.
 */
export function rotateFile(file: string, maxBytes: number, keep: number): boolean {
  let st;
  try {
    st = statSync(file);
  } catch {
    return false;
  }
  if (st.size <= maxBytes) return false;
  rmSync(`${file}.${keep}`, { force: true });
  for (let n = keep - 1; n >= 1; n--) if (existsSync(`${file}.${n}`)) renameSync(`${file}.${n}`, `${file}.${n + 1}`);
  copyFileSync(file, `${file}.1`);
  chmodSync(`${file}.1`, st.mode & 0o777);
  truncateSync(file, 0);
  return true;
}

/** One pass over the stack's logs; the names rotated. */
export function rotateStackLogs(cfg: Pick<Config, "logsDir" | "logs">): string[] {
  const max = cfg.logs.maxSizeKb * 1024;
  return stackLogs(cfg).filter((f) => rotateFile(f, max, cfg.logs.keep));
}

/** The rotator's process (dev-up starts it, dev-down stops it). */
export function logRotatorSpec(cfg: Config): ProcSpec {
  return {
    name: "log-rotator",
    cmd: [process.execPath, join(cfg.rootDir, "scripts", "logs-rotate.ts"), "--stack", cfg.stack, "--watch"],
    // the trailing NUL of the command line reads as a space: stack "a" never matches stack "ab"
    marker: `logs-rotate.ts --stack ${cfg.stack} --watch`,
    pidFile: join(cfg.stateDir, "pids", "log-rotator.pid"),
    logFile: join(cfg.logsDir, "log-rotator.log"),
    cwd: cfg.rootDir,
  };
}

/** dev-up's hook: start the rotator when it does not run; the change for the summary. */
export async function logRotatorUp(cfg: Config, startOne: (s: ProcSpec) => void): Promise<string[]> {
  const { runningPid } = await import("./procs");
  const spec = logRotatorSpec(cfg);
  if (runningPid(spec)) return [];
  rotateStackLogs(cfg);
  startOne(spec);
  return [
    `log-rotator: every log in ${cfg.logsDir} capped at ${cfg.logs.maxSizeKb} KB, ${cfg.logs.keep} rotated copies kept`,
  ];
}
