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

const USAGE =
  "usage: bun scripts/test-summary.ts LOG [--max-lines N] [--attacks]\nprints the failed tests with their reasons, then `tests: N passed, N failed` and `N attacks tried, N succeeded`\n--attacks: only the attack line (and what failed outside a test); exit 1 if an attack succeeded or a step failed";

export interface Failure {
  test: string;
  why: string[];
}

const REASON = /^(error|Expected|Received|\s*at <anonymous> \(|[A-Za-z]*Error:|ToolkitError)/;

/** An attack test (tests/integration/attack-*.test.ts) is named `attack: ...`; it passes when the attack fails. */
const ATTACK = /(?:^|> )attack: /;

/** Parse bun test output: pass/fail counts, each failure's reason lines, and the attacks tried / that succeeded. Pure. */
export function summarise(log: string): {
  passed: number;
  failed: number;
  failures: Failure[];
  steps: string[];
  attacks: { tried: number; succeeded: string[] };
} {
  const attacksTried = new Set<string>();
  const attacksSucceeded: string[] = [];
  let passed = 0;
  let failed = 0;
  const failures: Failure[] = [];
  // What failed outside any test: the test stack's bring-up, a heal between files, a file that crashed.
  const steps: string[] = [];
  let block: string[] = [];
  for (const raw of log.split("\n")) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the terminal's colour codes (ESC [ ... m) from the log
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
      if (line.startsWith("(pass) ")) {
        const test = line.slice(7).replace(/ \[[\d.]+m?s\]$/, "");
        if (ATTACK.test(test)) attacksTried.add(test);
      }
      block = [];
      continue;
    }
    if (line.startsWith("(fail) ")) {
      const test = line.slice(7).replace(/ \[[\d.]+m?s\]$/, "");
      if (ATTACK.test(test)) {
        attacksTried.add(test);
        if (!attacksSucceeded.includes(test)) attacksSucceeded.push(test);
      }
      // bun repeats a failure in its end-of-file recap; keep one.
      if (!failures.some((f) => f.test === test))
        failures.push({
          test,
          why: block
            .filter((l) => REASON.test(l))
            .map((l) => l.trim())
            .slice(0, 6),
        });
      block = [];
      continue;
    }
    block.push(line);
  }
  return { passed, failed, failures, steps, attacks: { tried: attacksTried.size, succeeded: attacksSucceeded } };
}

if (import.meta.main) {
  await runMain(async () => {
    const flags = parseFlags(process.argv.slice(2), { maxLines: "number", attacks: "boolean" }, USAGE);
    if (flags.help) return void console.log(USAGE);
    const file = flags._[0];
    if (!file || !existsSync(file))
      throw new ToolkitError("NO_TEST_LOG", `no test log at ${file ?? "(none given)"}`, "run make test first");
    const max = flags.maxLines ?? 40;
    const s = summarise(readFileSync(file, "utf8"));
    const attackLine = `${s.attacks.tried} attacks tried, ${s.attacks.succeeded.length} succeeded`;
    if (flags.attacks) {
      for (const a of s.attacks.succeeded) console.log(`  ✗ attack succeeded: ${a}`);
      if (s.steps.length) console.log(`failed steps: ${s.steps.join(" ")}`);
      console.log(attackLine);
      return s.attacks.succeeded.length || s.steps.length || s.attacks.tried === 0 ? 1 : 0;
    }
    if (s.failures.length) {
      const out = ["failed tests (details above):"];
      for (const f of s.failures) out.push(`  ✗ ${f.test}`, ...f.why.map((w) => `      ${w.slice(0, 300)}`));
      const shown =
        out.length > max ? [...out.slice(0, max - 1), `  … ${out.length - max + 1} more lines in ${file}`] : out;
      console.log(shown.join("\n"));
    }
    if (s.steps.length) console.log(`failed steps: ${s.steps.join(" ")}`);
    console.log(`tests: ${s.passed} passed, ${s.failed} failed`);
    console.log(attackLine);
    return s.attacks.succeeded.length ? 1 : 0;
  });
}
