#!/usr/bin/env bun
/**
 * The last lines of `make test`: the counts, and for each failed test its name
 * and the lines that say why (bun prints those above the "(fail)" line, often
 * hundreds of lines up). CI logs are read from the bottom, so the summary is
 * short and the counts come last.
 */
import { existsSync, readFileSync } from "node:fs";
import { runMain, ToolkitError } from "./lib/errors";
import { parseFlags } from "./lib/flags";

const USAGE = "usage: bun scripts/test-summary.ts LOG [--max-lines N]\nprints the failed tests with their reasons, then `tests: N passed, N failed`";

export interface Failure {
  test: string;
  why: string[];
}

const REASON = /^(error|Expected|Received|\s*at <anonymous> \(|[A-Za-z]*Error:|ToolkitError)/;

/** Parse bun test output: pass/fail counts and each failure's reason lines. Pure. */
export function summarise(log: string): { passed: number; failed: number; failures: Failure[]; steps: string[] } {
  let passed = 0;
  let failed = 0;
  const failures: Failure[] = [];
  // What failed outside any test: the test stack's bring-up, a heal between files, a file that crashed.
  const steps: string[] = [];
  let block: string[] = [];
  for (const raw of log.split("\n")) {
    const line = raw.replace(/\x1b\[[0-9;]*m/g, "");
    const step = line.match(/^integration: FAILED:\s*(.+)$/);
    if (step) steps.push(...step[1]!.trim().split(/\s+/));
    const count = line.match(/^\s*(\d+) (pass|fail)$/);
    if (count) {
      if (count[2] === "pass") passed += Number(count[1]);
      else failed += Number(count[1]);
      block = [];
      continue;
    }
    if (line.startsWith("(pass) ") || /^\S.*\.test\.ts:$/.test(line)) {
      block = [];
      continue;
    }
    if (line.startsWith("(fail) ")) {
      const test = line.slice(7).replace(/ \[[\d.]+m?s\]$/, "");
      // bun repeats a failure in its end-of-file recap; keep one.
      if (!failures.some((f) => f.test === test)) failures.push({ test, why: block.filter((l) => REASON.test(l)).map((l) => l.trim()).slice(0, 6) });
      block = [];
      continue;
    }
    block.push(line);
  }
  return { passed, failed, failures, steps };
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(process.argv.slice(2), { maxLines: "number" }, USAGE);
    if (flags.help) return void console.log(USAGE);
    const file = flags._[0];
    if (!file || !existsSync(file)) throw new ToolkitError("NO_TEST_LOG", `no test log at ${file ?? "(none given)"}`, "run make test first");
    const max = flags.maxLines ?? 40;
    const s = summarise(readFileSync(file, "utf8"));
    if (s.failures.length) {
      const out = ["failed tests (details above):"];
      for (const f of s.failures) out.push(`  ✗ ${f.test}`, ...f.why.map((w) => `      ${w.slice(0, 300)}`));
      const shown = out.length > max ? [...out.slice(0, max - 1), `  … ${out.length - max + 1} more lines in ${file}`] : out;
      console.log(shown.join("\n"));
    }
    if (s.steps.length) console.log(`failed steps: ${s.steps.join(" ")}`);
    console.log(`tests: ${s.passed} passed, ${s.failed} failed`);
  });
}
