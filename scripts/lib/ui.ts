/**
 * Output for people and for cron. In a terminal: clack's spinners and notes.
 * Otherwise: plain timestamped lines. Everything passes through redact().
 */
import * as p from "@clack/prompts";
import { redact } from "./redact";

export const isInteractive = () => Boolean(process.stdin.isTTY && process.stdout.isTTY) && process.env.CI !== "true";
const fancy = () => Boolean(process.stdout.isTTY) && process.env.CI !== "true";

export function logLine(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${redact(message)}\n`);
}

export function intro(title: string) {
  if (fancy()) p.intro(title);
  else logLine(title);
}

export function outro(message: string) {
  if (fancy()) p.outro(redact(message));
  else logLine(message);
}

export function note(body: string, title?: string) {
  if (fancy()) p.note(redact(body), title);
  else {
    if (title) logLine(`${title}:`);
    for (const l of body.split("\n")) process.stdout.write(`  ${redact(l)}\n`);
  }
}

/** One line of progress per component; a spinner in a terminal. */
export function progressReporter() {
  const t0 = Date.now();
  const spin = fancy() ? p.spinner() : undefined;
  let spinning = false;
  return {
    start(msg: string) {
      if (spin) {
        spin.start(msg);
        spinning = true;
      } else logLine(msg);
    },
    step: (component: string, message: string) => {
      const line = redact(`${component.padEnd(9)} ${message}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      if (spin && spinning) {
        // Finish this line as a completed step, keep spinning for the next one.
        spin.stop(line);
        spin.start("working");
      } else logLine(line);
    },
    stop(msg: string) {
      if (spin && spinning) {
        spin.stop(redact(msg));
        spinning = false;
      } else logLine(msg);
    },
    fail(msg: string) {
      if (spin && spinning) {
        spin.error(redact(msg));
        spinning = false;
      }
    },
  };
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (c ?? "").padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** 1536 -> "1.5 kB": sizes in progress lines and reports (backup, migrate-saas). */
export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
