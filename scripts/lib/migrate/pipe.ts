/**
 * The loader: one psql session on the target, fed in order with our own SQL,
 * pg_restore's scripts (pg_dump-generated, never edited) and table data
 * streamed straight from a `COPY (...) TO STDOUT` on the source, without
 * buffering it (run() in exec.ts collects output in memory, which a
 * multi-gigabyte table cannot afford; start() streams). Every COPY statement is written by us
 * from catalog names (quoted), so no byte of source data or of a source name
 * is ever parsed or rewritten on the way.
 *
 * The rule that keeps the target unchanged on failure: the trailer (which
 * ends with COMMIT) is written only after every source COPY exited 0. If one
 * fails, psql is killed mid-transaction; if this process dies, psql reads end
 * of input inside the open transaction. Either way the server rolls back.
 */
import type { Readable, Writable } from "node:stream";
import { ToolkitError } from "../errors";
import { start, tail, type Cmd } from "../exec";
import { redact } from "../redact";

const PROGRESS_EVERY = 64 * 1024 * 1024;

export interface Loader {
  /** our SQL or a pg_restore script, in order */
  write(text: string | Buffer): Promise<void>;
  /** `header` (a COPY ... FROM stdin; we built), then the source command's stdout, then the end marker */
  copy(table: string, header: string, source: { cmd: Cmd; env: Record<string, string> }): Promise<number>;
  /** write the trailer (ends with COMMIT), close psql's input and wait for it */
  finish(trailer: string): Promise<{ bytes: number; ms: number; psqlOutput: string }>;
  /** kill psql: the open transaction rolls back */
  abort(): Promise<void>;
  bytes(): number;
}

export function startLoader(
  load: { cmd: Cmd; env: Record<string, string> },
  onProgress?: (table: string | undefined, bytes: number) => void,
): Loader {
  const t0 = Date.now();
  const proc = start(load.cmd, { env: load.env });
  const psql = {
    stdin: proc.stdin as Writable | undefined,
    stdout: proc.stdout as Readable | undefined,
    stderr: proc.stderr as Readable | undefined,
  };
  let out = "";
  let exited = false;
  let bytes = 0;
  let nextReport = PROGRESS_EVERY;
  let table: string | undefined;
  // What was sent where, by input line, so a failure can name the object psql was on (psql reports `<stdin>:<line>`).
  let lines = 1;
  const segments: { from: number; text?: string; table?: string }[] = [];
  const objectAt = (line: number): string | undefined => {
    const seg = [...segments].reverse().find((x) => x.from <= line);
    if (!seg) return undefined;
    if (seg.table) return `loading the rows of ${seg.table}`;
    if (!seg.text) return undefined;
    // pg_restore heads every entry with `-- Name: <name>; Type: <type>; Schema: <schema>; ...` (newlines in names printed as spaces).
    const upTo = seg.text!.split("\n").slice(0, line - seg.from + 1);
    for (let i = upTo.length - 1; i >= 0; i--) {
      const m = upTo[i]!.match(/^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*?);/);
      if (m) return `creating ${m[2]} ${m[3] === "-" ? "" : `${m[3]}.`}${m[1]}`;
    }
    return undefined;
  };
  const countLines = (chunk: string | Buffer) => {
    let n = 0;
    if (typeof chunk === "string") {
      for (let i = chunk.indexOf("\n"); i !== -1; i = chunk.indexOf("\n", i + 1)) n++;
    } else for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) n++;
    lines += n;
  };
  psql.stdout?.on("data", (d) => (out += d));
  psql.stderr?.on("data", (d) => (out += d));
  // psql died: its exit code and output tell why (a stdin write error is swallowed by start()).
  const done: Promise<number> = Promise.resolve(proc).then((o) => {
    exited = true;
    if (o.cause) out += `\ncannot run ${load.cmd[0]}: ${(o.cause as Error).message}`;
    return o.exitCode ?? -1;
  });

  const restoreFailed = (code: number) => {
    const firstError = out.split("\n").find((l) => /ERROR:/.test(l));
    const at = firstError?.match(/^psql:<stdin>:(\d+): /);
    const object = at ? objectAt(Number(at[1])) : undefined;
    return new ToolkitError(
      "RESTORE_FAILED",
      `restore into the target failed${object ? ` while ${redact(object)}` : ""}${firstError ? `: ${redact(firstError.replace(/^psql:[^:]*:\d+: /, "").trim())}` : ` (psql exit ${code})`}; it ran in one transaction, so the target is unchanged`,
      "fix the cause named above (on the source or the target) and run again",
      redact(tail(out, 15)),
    );
  };

  const put = (chunk: string | Buffer): Promise<void> => {
    if (exited) return Promise.resolve();
    bytes += chunk.length;
    countLines(chunk);
    if (bytes >= nextReport) {
      onProgress?.(table, bytes);
      nextReport = bytes + PROGRESS_EVERY;
    }
    if (!psql.stdin || psql.stdin.write(chunk)) return Promise.resolve();
    return new Promise((res) => {
      const go = () => {
        psql.stdin?.off("drain", go);
        res();
      };
      psql.stdin?.once("drain", go);
      void done.then(go);
    });
  };

  const stopped = async () => {
    if (!exited) return;
    const code = await done;
    throw restoreFailed(code);
  };

  return {
    bytes: () => bytes,
    async write(text) {
      await stopped();
      segments.push({ from: lines, text: text.length < 64 * 1024 * 1024 ? text.toString() : undefined });
      await put(text);
    },
    async copy(name, header, source) {
      await stopped();
      table = name;
      segments.push({ from: lines, table: name });
      onProgress?.(name, bytes);
      await put(header.endsWith("\n") ? header : `${header}\n`);
      const src = start(source.cmd, { env: source.env, stdio: ["ignore", "pipe", "pipe"] });
      let rows = 0;
      let last = 0x0a;
      for await (const chunk of (src.stdout ?? []) as AsyncIterable<Buffer>) {
        for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) rows++;
        last = chunk[chunk.length - 1]!;
        if (exited) {
          src.child?.kill("SIGTERM");
          break;
        }
        await put(chunk);
      }
      const srcOut = await src;
      const code = srcOut.exitCode ?? -1;
      const err =
        srcOut.stderr + (srcOut.cause ? `\ncannot run ${source.cmd[0]}: ${(srcOut.cause as Error).message}` : "");
      if (code !== 0 && !exited) {
        // Never let psql reach COMMIT with a partial table.
        proc.child?.kill("SIGKILL");
        await done;
        throw new ToolkitError(
          "DUMP_FAILED",
          `reading ${name} from the source failed (exit ${code}); nothing was committed, the target is unchanged`,
          "check that the source is reachable and the login may read every table (PLAN=1 names the ones it cannot), then run again",
          redact(tail(err, 15)),
        );
      }
      await stopped();
      // COPY's text format escapes backslashes, so a data line can never be the end marker.
      await put(last === 0x0a ? "\\.\n" : "\n\\.\n");
      return rows;
    },
    async finish(trailer) {
      await stopped();
      segments.push({ from: lines, text: trailer });
      if (!exited) psql.stdin?.end(trailer);
      const code = await done;
      if (code !== 0) throw restoreFailed(code);
      return { bytes, ms: Date.now() - t0, psqlOutput: redact(out) };
    },
    async abort() {
      if (!exited) proc.child?.kill("SIGKILL");
      await done;
    },
  };
}
