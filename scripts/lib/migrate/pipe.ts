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

export interface PipeOptions {
  dump: { cmd: Cmd; env: Record<string, string> };
  load: { cmd: Cmd; env: Record<string, string> };
  /** called when the stream enters a new table, and every ~64 MB */
  onProgress?: (table: string | undefined, bytes: number) => void;
  /** written after the dump succeeded: the post-data statements and COMMIT */
  trailer?: string;
  /** rewrite the dump's header (before the first COPY) for an older target */
  headerFilter?: (header: string) => string;
}

export interface PipeResult {
  bytes: number;
  ms: number;
  psqlOutput: string;
}

const COPY_MARK = Buffer.from("\nCOPY ");
const PROGRESS_EVERY = 64 * 1024 * 1024;

/** The table named by each "COPY schema.table (" line that starts in this chunk. */
export function copyTargets(chunk: Buffer): string[] {
  const out: string[] = [];
  let start = chunk.subarray(0, 5).toString() === "COPY " ? 5 : -1;
  if (start === -1) {
    const i = chunk.indexOf(COPY_MARK);
    if (i !== -1) start = i + COPY_MARK.length;
  }
  while (start !== -1) {
    const end = chunk.indexOf(0x20, start);
    if (end === -1) break;
    out.push(chunk.subarray(start, end).toString());
    const j = chunk.indexOf(COPY_MARK, end);
    start = j === -1 ? -1 : j + COPY_MARK.length;
  }
  return out;
}

export function dumpIntoPsql(opts: PipeOptions): Promise<PipeResult> {
  const t0 = Date.now();
  const load = spawn(opts.load.cmd[0]!, opts.load.cmd.slice(1), { env: { ...process.env, ...opts.load.env }, stdio: ["pipe", "pipe", "pipe"] });
  const dump = spawn(opts.dump.cmd[0]!, opts.dump.cmd.slice(1), { env: { ...process.env, ...opts.dump.env }, stdio: ["ignore", "pipe", "pipe"] });
  let loadOut = "";
  let dumpErr = "";
  let bytes = 0;
  let nextReport = PROGRESS_EVERY;
  let table: string | undefined;
  let headerDone = !opts.headerFilter;
  let loadExited = false;
  let dumpExited = false;
  load.stdout.on("data", (d) => (loadOut += d));
  load.stderr.on("data", (d) => (loadOut += d));
  dump.stderr.on("data", (d) => (dumpErr += d));
  load.stdin.on("error", () => {}); // psql died: its exit code and output tell why

  dump.stdout.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    if (!headerDone) {
      headerDone = true;
      chunk = Buffer.from(opts.headerFilter!(chunk.toString("utf8")));
    }
    const tables = copyTargets(chunk);
    if (tables.length) {
      table = tables[tables.length - 1];
      opts.onProgress?.(table, bytes);
    } else if (bytes >= nextReport) {
      opts.onProgress?.(table, bytes);
    }
    if (bytes >= nextReport) nextReport = bytes + PROGRESS_EVERY;
    if (!loadExited && !load.stdin.write(chunk)) {
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
    if (!loadExited) load.stdin.end(opts.trailer ?? "");
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
