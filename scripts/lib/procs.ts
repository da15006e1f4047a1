/**
 * Long-running processes we start: detached, logging to a file, remembered by
 * a pid file. We only ever signal a pid whose command line still names the
 * config file we started it with, so a recycled pid is never hit.
 */
import { existsSync, fchmodSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from "node:fs";
import { dirname } from "node:path";
import { start, type Cmd } from "./exec";

export interface ProcSpec {
  /** component name: etcd1, pg1, haproxy, nginx */
  name: string;
  cmd: Cmd;
  /** a string that must appear in /proc/<pid>/cmdline for the pid to be ours */
  marker: string;
  pidFile: string;
  logFile: string;
  asUser?: string;
  env?: Record<string, string>;
  /** working dir; defaults to / for processes run as another user (they may not reach ours, e.g. /root) */
  cwd?: string;
}

/**
 * A /proc file of `pid`, or undefined when the process is gone. Any other
 * read error is retried a few times: a transient failure must never make a
 * live process look dead.
 */
function readProcFile(pid: number, file: string): string | undefined {
  for (let attempt = 0; ; attempt++) {
    try {
      return readFileSync(`/proc/${pid}/${file}`, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ESRCH" || attempt >= 4) return undefined;
      Bun.sleepSync(2);
    }
  }
}

export function cmdlineOf(pid: number): string | undefined {
  return readProcFile(pid, "cmdline")?.replace(/\0/g, " ");
}

/** The pid of our running process, or undefined (a stale pid file is removed). */
export function runningPid(spec: Pick<ProcSpec, "pidFile" | "marker">): number | undefined {
  if (!existsSync(spec.pidFile)) return undefined;
  const pid = Number(readFileSync(spec.pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let cmdline = cmdlineOf(pid);
  // While a process execs (setpriv -> pgbouncer, postgres, prometheus) its command line reads empty
  // for a moment; that is not a dead process (dev-up called pgbouncer dead at start-up this way).
  for (let i = 0; cmdline === "" && i < 50 && !isZombie(pid); i++) {
    Bun.sleepSync(2);
    cmdline = cmdlineOf(pid);
  }
  if (cmdline && cmdline.includes(spec.marker) && !isZombie(pid)) return pid;
  return undefined;
}

function isZombie(pid: number): boolean {
  const status = readProcFile(pid, "status");
  return status === undefined || /^State:\s+Z/m.test(status);
}

export function startProc(spec: ProcSpec): number {
  mkdirSync(dirname(spec.pidFile), { recursive: true });
  mkdirSync(dirname(spec.logFile), { recursive: true });
  // Logs are root's alone (0600): they carry queries, addresses and paths. A log an older version left 0644 is tightened.
  const fd = openSync(spec.logFile, "a", 0o600);
  fchmodSync(fd, 0o600);
  const child = start(spec.cmd, {
    detached: true, // its own session: our Ctrl-C or exit does not take the cluster down
    stdio: ["ignore", fd, fd],
    asUser: spec.asUser,
    cwd: spec.cwd ?? (spec.asUser ? "/" : undefined),
    env: spec.env,
  });
  closeSync(fd);
  child.child?.unref();
  if (!child.pid) throw new Error(`could not start ${spec.name}`);
  writeFileSync(spec.pidFile, `${child.pid}\n`);
  // Between fork and exec the child still shows our own command line; until
  // the exec lands, runningPid() would call it dead (and a teardown would miss it).
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const cmdline = cmdlineOf(child.pid);
    if (cmdline === undefined || cmdline.includes(spec.marker)) break;
    Bun.sleepSync(5);
  }
  return child.pid;
}

export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !isZombie(pid);
  } catch {
    return false;
  }
};

/** SIGTERM, wait, then SIGKILL; resolves once the process is gone. */
export async function stopProc(spec: Pick<ProcSpec, "pidFile" | "marker">, graceMs = 30_000): Promise<boolean> {
  const pid = runningPid(spec);
  if (!pid) {
    rmSync(spec.pidFile, { force: true });
    return false;
  }
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await Bun.sleep(100);
  if (alive(pid)) {
    process.kill(pid, "SIGKILL");
    while (alive(pid)) await Bun.sleep(50);
  }
  rmSync(spec.pidFile, { force: true });
  return true;
}

export function tailFile(path: string, lines = 20): string {
  if (!existsSync(path)) return "(no log yet)";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}
