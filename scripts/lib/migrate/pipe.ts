/**
 * Stream pg_dump's data section straight into psql without buffering it:
 * run() in exec.ts collects output in memory, which a multi-gigabyte dump
 * cannot afford. Commands are still argument arrays, shown redacted.
 *
 * The rule that keeps the target unchanged on failure: the trailer (which
 * ends with COMMIT) is written only after pg_dump has exited 0. If pg_dump
 * fails, psql is killed mid-transaction; if this process dies, psql reads end
 * of input inside the open transaction. Either way the server rolls back.
 */
import { spawn } from "node:child_process";
import { ToolkitError } from "../errors";
import { showCmd, tail, type Cmd } from "../exec";
import { redact } from "../redact";
import { CopyFreezer } from "./copy-freeze";

export interface PipeOptions {
  dump: { cmd: Cmd; env: Record<string, string> };
  load: { cmd: Cmd; env: Record<string, string> };
  /** called when the stream enters a new table, and every ~64 MB */
  onProgress?: (table: string | undefined, bytes: number) => void;
  /** written after the dump succeeded: the post-data statements and COMMIT */
  trailer?: string;
  /** lines outside COPY data to leave out (settings an older target does not know) */
  dropLine?: (line: string) => boolean;
}

export interface PipeResult {
  bytes: number;
  ms: number;
  psqlOutput: string;
}

const PROGRESS_EVERY = 64 * 1024 * 1024;

export function dumpIntoPsql(opts: PipeOptions): Promise<PipeResult> {
  const t0 = Date.now();
  const load = spawn(opts.load.cmd[0]!, opts.load.cmd.slice(1), { env: { ...process.env, ...opts.load.env }, stdio: ["pipe", "pipe", "pipe"] });
  const dump = spawn(opts.dump.cmd[0]!, opts.dump.cmd.slice(1), { env: { ...process.env, ...opts.dump.env }, stdio: ["ignore", "pipe", "pipe"] });
  let loadOut = "";
  let dumpErr = "";
  let bytes = 0;
  let nextReport = PROGRESS_EVERY;
  let table: string | undefined;
  let loadExited = false;
  let dumpExited = false;
  // Every table is loaded WITH (FREEZE): see copy-freeze.ts.
  const freezer = new CopyFreezer((t) => {
    table = t;
    opts.onProgress?.(t, bytes);
  }, opts.dropLine);
  load.stdout.on("data", (d) => (loadOut += d));
  load.stderr.on("data", (d) => (loadOut += d));
  dump.stderr.on("data", (d) => (dumpErr += d));
  load.stdin.on("error", () => {}); // psql died: its exit code and output tell why

  dump.stdout.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    const pieces = freezer.push(chunk);
    if (bytes >= nextReport) {
      opts.onProgress?.(table, bytes);
      nextReport = bytes + PROGRESS_EVERY;
    }
    if (loadExited) return;
    let ok = true;
    for (const p of pieces) ok = load.stdin.write(p) && ok;
    if (!ok) {
      dump.stdout.pause();
      load.stdin.once("drain", () => dump.stdout.resume());
    }
  });

  const dumpDone = new Promise<number>((res) => dump.on("close", (code) => { dumpExited = true; res(code ?? -1); }));
  const loadDone = new Promise<number>((res) =>
    load.on("close", (code) => {
      loadExited = true;
      // psql stopped (ON_ERROR_STOP): nobody reads the dump any more.
      if (!dumpExited) dump.kill("SIGTERM");
      dump.stdout.resume();
      res(code ?? -1);
    }),
  );
  const spawnError = (what: string) => (err: NodeJS.ErrnoException) => {
    loadOut += `\ncannot run ${what}: ${err.message}`;
  };
  load.on("error", spawnError(opts.load.cmd[0]!));
  dump.on("error", spawnError(opts.dump.cmd[0]!));

  return (async () => {
    const dumpCode = await dumpDone;
    if (dumpCode !== 0 && !loadExited) {
      // Never let psql reach COMMIT with a partial stream.
      load.kill("SIGKILL");
      await loadDone;
      throw new ToolkitError(
        "DUMP_FAILED",
        `pg_dump of the source failed (exit ${dumpCode}); nothing was committed, the target is unchanged`,
        "check that the source is reachable and the user may read every table, then run again",
        redact(tail(dumpErr, 15)),
      );
    }
    if (!loadExited) {
      for (const p of freezer.end()) load.stdin.write(p);
      load.stdin.end(opts.trailer ?? "");
    }
    const loadCode = await loadDone;
    if (loadCode !== 0) {
      const firstError = loadOut.split("\n").find((l) => /ERROR:/.test(l));
      throw new ToolkitError(
        "RESTORE_FAILED",
        `restore into the target failed${firstError ? `: ${redact(firstError.replace(/^psql:[^:]*:\d+: /, "").trim())}` : ` (psql exit ${loadCode})`}; it ran in one transaction, so the target is unchanged`,
        "fix the cause named above (on the source or the target) and run again",
        redact(tail(loadOut, 15)),
      );
    }
    return { bytes, ms: Date.now() - t0, psqlOutput: redact(loadOut) };
  })();
}

export const describePipe = (opts: PipeOptions) => `${showCmd(opts.dump.cmd)} | ${showCmd(opts.load.cmd)}`;
