#!/usr/bin/env bun
/**
 * make mutation: StrykerJS over the modules that hold guards (mutation/modules.json),
 * one run per module so each mutant is judged only by that module's narrowest unit
 * tests. Stryker's command runner starts `bun test <files>` once per mutant with
 * __STRYKER_ACTIVE_MUTANT__ set; the instrumented module reads it at load time.
 * Prints a score per module, and every survivor not explained in
 * mutation/equivalent.md. Not part of CI: it takes minutes.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ROOT_DIR } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { start } from "./lib/exec";
import { parseFlags } from "./lib/flags";
import { explainedKey, parseEquivalents, scoreModule, type StrykerReport } from "./lib/mutation";
import { sweepStale } from "../tests/scratch-sweep";

const USAGE = `usage: make mutation [MODULE=<path substring>] [CONCURRENCY=2]
       bun scripts/mutation.ts [--module <substring>] [--concurrency N] [--json]

Mutates each module listed in mutation/modules.json with StrykerJS and runs its
unit tests against every mutant. Reports land in .state/mutation/.`;

interface ModuleSpec {
  file: string;
  tests: string[];
  /** Stryker's timeout on top of 1.5 x the dry run; a timed-out mutant counts as killed, so keep it generous where runs are slow */
  timeoutMS?: number;
}

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { module: "string", concurrency: "number", json: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const specs = (
    JSON.parse(readFileSync(join(ROOT_DIR, "mutation/modules.json"), "utf8")) as { modules: ModuleSpec[] }
  ).modules.filter((m) => !flags.module || m.file.includes(flags.module));
  if (!specs.length)
    throw new ToolkitError(
      "NO_MODULE",
      `no module in mutation/modules.json matches ${JSON.stringify(flags.module)}`,
      "pass MODULE=<part of a path listed there>",
    );
  const outDir = join(ROOT_DIR, ".state/mutation");
  mkdirSync(outDir, { recursive: true });
  const equivalents = parseEquivalents(readFileSync(join(ROOT_DIR, "mutation/equivalent.md"), "utf8"));
  // The sandbox links node_modules, so the repo's own bun runs the tests there too.
  const bun = existsSync(join(ROOT_DIR, "node_modules/.bin/bun")) ? "node_modules/.bin/bun" : "bun";
  const stryker = join(ROOT_DIR, "node_modules/@stryker-mutator/core/bin/stryker.js");
  const rows = [];
  const t0 = Date.now();
  for (const spec of specs) {
    const tests = spec.tests.filter((t) => existsSync(join(ROOT_DIR, t)));
    if (!tests.length)
      throw new ToolkitError(
        "NO_TESTS",
        `none of the tests listed for ${spec.file} in mutation/modules.json exists (${spec.tests.join(", ")})`,
        "fix the list: with no file, `bun test` would run the whole suite per mutant",
      );
    const name = spec.file
      .replace(/^scripts\/lib\//, "")
      .replace(/\.ts$/, "")
      .replace(/\//g, "-");
    const report = join(outDir, `${name}.json`);
    const conf = join(outDir, `${name}.stryker.json`);
    writeFileSync(
      conf,
      JSON.stringify(
        {
          mutate: [spec.file],
          testRunner: "command",
          // Stryker runs this line through a shell in its sandbox copy of the repo; the paths come from modules.json (no spaces).
          // --bail: the first failing test kills the mutant; the timeout covers the files that restore real dumps.
          commandRunner: { command: [bun, "test", "--bail", "--timeout", "180000", ...tests].join(" ") },
          coverageAnalysis: "off",
          concurrency: flags.concurrency ?? 2,
          reporters: ["json", "progress-append-only"],
          jsonReporter: { fileName: relative(ROOT_DIR, report) },
          tempDirName: ".state/mutation/tmp",
          ignorePatterns: [".state", ".ci", "bench"],
          cleanTempDir: "always",
          timeoutMS: spec.timeoutMS ?? 10_000,
          logLevel: "warn",
        },
        null,
        2,
      ),
    );
    const t = Date.now();
    console.log(`mutation: ${spec.file} (${tests.join(" ")})`);
    // node runs Stryker (its supported engine); the mutants' tests run under bun. Output goes straight to the terminal: runs take minutes.
    const code = (
      await start(["node", stryker, "run", relative(ROOT_DIR, conf)], {
        cwd: ROOT_DIR,
        stdio: ["ignore", "inherit", "inherit"],
      })
    ).exitCode;
    if (code !== 0)
      throw new ToolkitError(
        "STRYKER_FAILED",
        `stryker failed on ${spec.file} (exit ${code})`,
        `read its output above; the dry run must pass: ${bun} test ${tests.join(" ")}`,
      );
    // Mutants that were killed mid-restore (timeout, --bail) can leave a scratch Postgres behind.
    sweepStale();
    const s = scoreModule(JSON.parse(readFileSync(report, "utf8")) as StrykerReport, spec.file, equivalents);
    rows.push({ ...s, seconds: Math.round((Date.now() - t) / 1000) });
  }
  const totalSeconds = Math.round((Date.now() - t0) / 1000);
  if (flags.json) return void console.log(JSON.stringify({ modules: rows, totalSeconds }, null, 2));
  console.log(
    "\n| module | mutants | killed | survived | equivalent (explained) | score | score, equivalents excluded | time |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows)
    console.log(
      `| ${r.file} | ${r.total} | ${r.killed} | ${r.survived} | ${r.explained} | ${r.score.toFixed(1)} % | ${r.adjustedScore.toFixed(1)} % | ${r.seconds} s |`,
    );
  console.log(`\ntotal ${totalSeconds} s`);
  const unexplained = rows.flatMap((r) => r.unexplained);
  if (unexplained.length) {
    console.log(`\n${unexplained.length} survivor(s) neither killed nor explained in mutation/equivalent.md:`);
    for (const u of unexplained) console.log(`  ${explainedKey(u)}  ${u.replacement}`);
    return 1;
  }
});
