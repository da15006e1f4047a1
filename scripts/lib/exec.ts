/**
 * The one place that runs external programs, built on zx: `$`, `nothrow`,
 * `timeout`, `quiet` and `within` are zx's. Commands are argument arrays and
 * never reach a shell (see argvOf below), are logged with secrets redacted,
 * bounded by a timeout, and a failure becomes a ToolkitError carrying the
 * command's stderr. Every process the toolkit starts goes through run() or
 * start() here (tests/unit/runner.test.ts fails on a spawn anywhere else).
 */
import { spawn as spawnChild, type ChildProcess, type SpawnOptions, type StdioOptions } from "node:child_process";
import { accessSync, createReadStream, constants as fsConstants, readFileSync, statSync } from "node:fs";
import type { Options as ZxOptions, ProcessOutput, ProcessPromise } from "zx/core";
import { ToolkitError } from "./errors";
import { redact } from "./redact";

export type { ProcessOutput, ProcessPromise };

/*
 * zx is loaded on first use, not at import: loading it costs a process 0.1-0.3 s
 * (measured under Bun 1.4.5), and most entry points import this module but
 * many runs start no program at all.
 */
let zxCore: typeof import("zx/core") | undefined;
const zx = () => (zxCore ??= require("zx/core") as typeof import("zx/core"));

/** zx's `within`: options set on `$` inside `callback` (e.g. `$.cwd = dir`) hold only there. */
export const within = <R>(callback: () => R): R => zx().within(callback);

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
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${user}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

export const showCmd = (cmd: Cmd) =>
  redact(cmd.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" "));

/*
 * zx hands a quoted command line to a shell; ours never reaches one. Each
 * interpolated argument is quoted as NUL + encodeURIComponent(arg) + NUL (no
 * whitespace, no NUL inside), and the spawn we give zx splits the line back
 * into argv and starts the program itself (shell: false, program found by
 * resolveProgram). Literal template text splits on whitespace, so
 * $`pg_ctl status -D ${dir}` is ["pg_ctl", "status", "-D", dir] and a `|` or
 * `;` is just an argument.
 */
const MARK = "\0";
export const quoteArg = (arg: string) => `${MARK}${encodeURIComponent(arg)}${MARK}`;

export function argvOf(line: string): string[] {
  const argv: string[] = [];
  for (const token of line.split(/[ \t\n]+/)) {
    if (token === "") continue;
    argv.push(
      token
        .split(MARK)
        .map((part, i) => (i % 2 ? decodeURIComponent(part) : part))
        .join(""),
    );
  }
  return argv;
}

function spawnArgv(line: string, _args: readonly string[], opts: SpawnOptions): ChildProcess {
  const argv = resolveCmd(argvOf(line));
  if (!argv[0]) throw new ToolkitError("EMPTY_COMMAND", "no program to run (an empty argument list)");
  const child = spawnChild(argv[0], argv.slice(1), { ...opts, shell: false });
  // A child that exits before reading its input must not crash us with EPIPE.
  child.stdin?.on("error", () => {});
  return child;
}

/** Signal the child itself (zx's default walks the process tree with `ps`: a spawn we do not want). */
const signalPid = async (pid: number | string, signal?: string) => {
  try {
    process.kill(Number(pid), (signal ?? "SIGTERM") as NodeJS.Signals);
  } catch {
    // already gone
  }
};

/** What every command gets: argv without a shell, nothing echoed, errors typed by us (see run()). */
const ARGV_OPTIONS: Partial<ZxOptions> = {
  shell: true, // zx refuses to build a command without one; spawnArgv never uses it
  prefix: "",
  postfix: "",
  quote: quoteArg as ZxOptions["quote"],
  spawn: spawnArgv as unknown as ZxOptions["spawn"],
  kill: signalPid as ZxOptions["kill"],
  quiet: true,
  verbose: false,
  preferLocal: false,
};

type Template = (pieces: TemplateStringsArray, ...args: unknown[]) => ProcessPromise;
type ArgvShell = {
  (pieces: TemplateStringsArray, ...args: unknown[]): ProcessPromise;
  (opts: Partial<ZxOptions>): Template;
} & Partial<ZxOptions>;

function argvShell(first: TemplateStringsArray | Partial<ZxOptions>, ...args: unknown[]): ProcessPromise | Template {
  if (Array.isArray(first)) return zx().$(ARGV_OPTIONS)(first as TemplateStringsArray, ...args) as ProcessPromise;
  return (pieces, ...rest) =>
    zx().$({ ...ARGV_OPTIONS, ...(first as Partial<ZxOptions>) })(pieces, ...rest) as ProcessPromise;
}

/**
 * zx's `$` for argv: $`psql ${["-c", sql]}` or $({ nothrow: true, timeout: "5s" })`...`.
 * Options set on it (or on zx's own `$`) inside `within(() => { $.cwd = dir; ... })` hold for that scope.
 * No shell ever runs.
 */
export const $ = new Proxy(argvShell, {
  get: (target, key) => (key in target ? Reflect.get(target, key) : Reflect.get(zx().$, key)),
  set: (_target, key, value) => Reflect.set(zx().$, key, value),
}) as ArgvShell;

const dropChunks = () => Object.assign([] as (string | Buffer)[], { push: () => 0 });
const DEFAULT_TIMEOUT_MS = 120_000;

export async function run(cmd: Cmd, opts: RunOptions = {}): Promise<RunResult> {
  const full = asUserCmd(resolveCmd(cmd), opts.asUser); // spawnArgv resolves setpriv too
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let timedOut = false;
  const p = $({
    nothrow: true,
    timeout: timeoutMs,
    timeoutSignal: "SIGKILL",
    kill: (pid: number | string, signal?: string) => {
      timedOut = true; // only zx's timeout signals this child
      return signalPid(pid, signal);
    },
    // Another user may not reach our working dir (a checkout under /root is 0700).
    ...(opts.cwd || (opts.asUser && isRoot()) ? { cwd: opts.cwd ?? "/" } : {}),
    env: { ...process.env, ...opts.env } as NodeJS.ProcessEnv,
    ...(opts.input ? { input: opts.input } : {}),
    // Binary stdout to the caller, never kept in memory (downloads of any size).
    ...(opts.onStdout ? { store: { stdout: dropChunks(), stderr: [], stdall: dropChunks() } } : {}),
  } as Partial<ZxOptions>)`${full}`;
  if (opts.onStdout) p.stdout.on("data", (d: Buffer) => opts.onStdout!(d));
  if (opts.inputFile !== undefined)
    createReadStream(opts.inputFile)
      .on("error", () => p.kill("SIGKILL"))
      .pipe(p.stdin);
  else if (!opts.input) p.stdin?.end();
  const out = await p;
  const cause = out.cause as NodeJS.ErrnoException | null;
  if (cause) {
    const missing = cause.code === "ENOENT";
    throw new ToolkitError(
      missing ? "MISSING_BINARY" : "EXEC_FAILED",
      `cannot run ${full[0]}: ${cause.message}`,
      missing ? "run `make setup` to install the OS packages" : undefined,
    );
  }
  if (timedOut) throw new ToolkitError("TIMEOUT", `timed out after ${timeoutMs} ms: ${showCmd(cmd)}`);
  const res = { code: out.exitCode ?? -1, stdout: out.stdout, stderr: out.stderr };
  if (res.code !== 0 && !opts.nothrow) {
    throw new ToolkitError(
      "COMMAND_FAILED",
      `exit ${res.code}: ${showCmd(cmd)}`,
      undefined,
      redact(tail(res.stderr || res.stdout, 15)),
    );
  }
  return res;
}

export interface StartOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  asUser?: string;
  /** default: all pipes */
  stdio?: StdioOptions;
  /** its own session: our Ctrl-C or exit does not take it down */
  detached?: boolean;
  /** keep stdout in memory for the result (default: streamed only, so a multi-gigabyte stream costs no memory) */
  keepStdout?: boolean;
}

/**
 * A long-running or streaming process: zx's ProcessPromise (never throws: read
 * `exitCode` or await it). `p.stdin`, `p.stdout`, `p.stderr` are the child's
 * pipes, `p.pid` its pid, `p.kill(signal)` signals it. stdout is not kept in
 * memory unless asked (stderr is, for the error message).
 */
export function start(cmd: Cmd, opts: StartOptions = {}): ProcessPromise {
  const full = asUserCmd(resolveCmd(cmd), opts.asUser);
  const stderr: (string | Buffer)[] = [];
  return $({
    nothrow: true,
    stdio: opts.stdio ?? ["pipe", "pipe", "pipe"],
    detached: opts.detached ?? false,
    ...(opts.cwd || (opts.asUser && isRoot()) ? { cwd: opts.cwd ?? "/" } : {}),
    env: { ...process.env, ...opts.env } as NodeJS.ProcessEnv,
    ...(opts.keepStdout ? {} : { store: { stdout: dropChunks(), stderr, stdall: dropChunks() } }),
  } as Partial<ZxOptions>)`${full}`;
}

export const tail = (text: string, lines: number) => text.trimEnd().split("\n").slice(-lines).join("\n");

/**
 * Where Debian's packages install programs that a login PATH may lack: a
 * normal user's PATH has no /usr/sbin (haproxy, nginx live there), cron's is
 * only /usr/bin:/bin. Searched after PATH, so PATH still wins.
 */
export const SYSTEM_BIN_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
/**
 * PGPLATFORM_SYSTEM_BIN_DIRS (colon-separated; empty: none) replaces that list,
 * e.g. to test a machine without a package.
 */
const systemBinDirs = () =>
  process.env.PGPLATFORM_SYSTEM_BIN_DIRS !== undefined
    ? process.env.PGPLATFORM_SYSTEM_BIN_DIRS.split(":").filter(Boolean)
    : SYSTEM_BIN_DIRS;

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
