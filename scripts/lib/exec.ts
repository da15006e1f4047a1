/**
 * The one place that runs external programs. Commands are argument arrays
 * (never shell strings), logged with secrets redacted, bounded by a timeout,
 * and a failure becomes a ToolkitError carrying the command's stderr.
 */
import { spawn } from "node:child_process";
import { accessSync, createReadStream, constants as fsConstants, readFileSync, statSync } from "node:fs";
import { ToolkitError } from "./errors";
import { redact } from "./redact";

export type Cmd = readonly string[];

export interface RunOptions {
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
  cwd?: string;
  input?: string;
  /** Probes that the caller inspects: do not throw on a non-zero exit. */
  nothrow?: boolean;
  /** Run as this OS user (only when we are root); used for the postgres side. */
  asUser?: string;
  /** Stream this file into stdin (binary, any size) instead of `input`. */
  inputFile?: string;
  /** Receive stdout as binary chunks (then `stdout` in the result stays empty). */
  onStdout?: (chunk: Buffer) => void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

/** Wrap a command so it runs as `user` when we are root (Postgres refuses root). */
export function asUserCmd(cmd: Cmd, user?: string): Cmd {
  if (!user || !isRoot()) return cmd;
  return ["setpriv", `--reuid=${user}`, `--regid=${user}`, "--init-groups", "--", ...cmd];
}

/** uid and gid of an OS user, from /etc/passwd (undefined when there is no such user). */
export function osUserIds(user: string): { uid: number; gid: number } | undefined {
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith(`${user}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

export const showCmd = (cmd: Cmd) =>
  redact(cmd.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" "));

export function run(cmd: Cmd, opts: RunOptions = {}): Promise<RunResult> {
  const full = resolveCmd(asUserCmd(resolveCmd(cmd), opts.asUser)); // setpriv too
  return new Promise((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), {
      // Another user may not reach our working dir (a checkout under /root is 0700).
      cwd: opts.cwd ?? (opts.asUser && isRoot() ? "/" : undefined),
      env: { ...process.env, ...opts.env } as NodeJS.ProcessEnv,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 120_000);
    child.stdout.on("data", (d: Buffer) => (opts.onStdout ? opts.onStdout(d) : (stdout += d)));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new ToolkitError(
          err.code === "ENOENT" ? "MISSING_BINARY" : "EXEC_FAILED",
          `cannot run ${full[0]}: ${err.message}`,
          err.code === "ENOENT" ? "run `make setup` to install the OS packages" : undefined,
        ),
      );
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const res = { code: code ?? -1, stdout, stderr };
      if (timedOut) {
        return reject(new ToolkitError("TIMEOUT", `timed out after ${opts.timeoutMs ?? 120_000} ms: ${showCmd(cmd)}`));
      }
      if (res.code !== 0 && !opts.nothrow) {
        return reject(
          new ToolkitError("COMMAND_FAILED", `exit ${res.code}: ${showCmd(cmd)}`, undefined, redact(tail(stderr || stdout, 15))),
        );
      }
      resolve(res);
    });
    // A child that exits before reading its input must not crash us with EPIPE.
    child.stdin.on("error", () => {});
    if (opts.inputFile !== undefined) createReadStream(opts.inputFile).on("error", () => child.kill("SIGKILL")).pipe(child.stdin);
    else if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

export const tail = (text: string, lines: number) => text.trimEnd().split("\n").slice(-lines).join("\n");

/**
 * Where Debian's packages install programs that a login PATH may lack: a
 * normal user's PATH has no /usr/sbin (haproxy, nginx live there), cron's is
 * only /usr/bin:/bin. Searched after PATH, so PATH still wins.
 */
export const SYSTEM_BIN_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
/** PGPLATFORM_SYSTEM_BIN_DIRS (colon-separated; empty: none) replaces that list, e.g. to test a machine without a package. */
const systemBinDirs = () => (process.env.PGPLATFORM_SYSTEM_BIN_DIRS !== undefined ? process.env.PGPLATFORM_SYSTEM_BIN_DIRS.split(":").filter(Boolean) : SYSTEM_BIN_DIRS);

const isExecutableFile = (p: string) => {
  try {
    accessSync(p, fsConstants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

/**
 * The one lookup for programs: setup decides "missing" with it, and run() and
 * the process starter run what it finds, so a program that counts as
 * installed is always one we can start. A name with a slash is taken as is.
 */
export function resolveProgram(bin: string, path = process.env.PATH ?? ""): string | undefined {
  if (bin.includes("/")) return isExecutableFile(bin) ? bin : undefined;
  const dirs = [...path.split(":").filter((d) => d.startsWith("/")), ...systemBinDirs()];
  for (const dir of new Set(dirs)) {
    const p = `${dir}/${bin}`;
    if (isExecutableFile(p)) return p;
  }
  return undefined;
}

/** The command with its program resolved by resolveProgram (unchanged when not found: spawn then reports ENOENT). */
export const resolveCmd = (cmd: Cmd): Cmd => {
  const exe = cmd[0] !== undefined ? resolveProgram(cmd[0]) : undefined;
  return exe && exe !== cmd[0] ? [exe, ...cmd.slice(1)] : cmd;
};

export async function which(bin: string): Promise<string | undefined> {
  return resolveProgram(bin);
}
