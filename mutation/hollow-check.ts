#!/usr/bin/env bun
/**
 * The goal check of issue 20, scripted: "no test in the suite passes when its
 * subject is deleted". For each unit test file and each scripts/ module it
 * imports code from, a sandbox copy of the repo gets the functions (and class
 * methods) the file imports from that module hollowed out (they return
 * undefined; constants stay) and the test file is run alone. A file that still
 * passes does not test what it imports.
 *
 *   bun mutation/hollow-check.ts [tests/unit/x.test.ts ...]
 *
 * Prints one line per (test file, module) pair and exits 1 if any survived.
 * Not part of CI (about a minute); make mutation goes deeper on the guard modules.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
// Infrastructure every file imports for its types and errors: hollowing it tests nothing about a subject.
const SKIP = new Set(["scripts/lib/errors.ts"]);

const files = process.argv.slice(2).length
  ? process.argv.slice(2)
  : readdirSync(join(ROOT, "tests/unit")).filter((f) => f.endsWith(".test.ts")).sort().map((f) => `tests/unit/${f}`);

const sandbox = mkdtempSync(join(tmpdir(), "hollow-check-"));
// mkdtemp makes it 0700: tests that run a program as nobody (workstation.test.ts) need to enter it, as they can the checkout
chmodSync(sandbox, 0o755);
for (const e of readdirSync(ROOT)) if (![".git", "node_modules", ".state"].includes(e)) cpSync(join(ROOT, e), join(sandbox, e), { recursive: true, preserveTimestamps: true });
// Timestamps kept: with package.json newer than node_modules/.installed, a test that runs make (workstation.test.ts)
// would start `npm ci` in the sandbox, which empties the real node_modules through this link.
symlinkSync(join(ROOT, "node_modules"), join(sandbox, "node_modules"));
symlinkSync(join(ROOT, ".git"), join(sandbox, ".git")); // some tests ask git what is committed (read-only)

/** The scripts/ modules a test file imports code from, with the names it imports (type-only imports left out). */
function subjects(testFile: string): Map<string, Set<string>> {
  const text = readFileSync(join(ROOT, testFile), "utf8");
  const out = new Map<string, Set<string>>();
  for (const m of text.matchAll(/^import (?!type )([^;]*?)\s+from\s+"(\.\.\/\.\.\/scripts\/[^"]+)"/gms)) {
    let p = relative(ROOT, resolve(dirname(join(ROOT, testFile)), m[2]!));
    // "../lib/monitoring" is a folder's index.ts, "../lib/config" a file
    if (!p.endsWith(".ts")) p = existsSync(join(ROOT, `${p}.ts`)) ? `${p}.ts` : join(p, "index.ts");
    if (SKIP.has(p)) continue;
    const names = (/\{([^}]*)\}/.exec(m[1]!)?.[1] ?? "")
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x && !x.startsWith("type "))
      .map((x) => x.split(/\s+as\s+/)[0]!.trim());
    out.set(p, new Set([...(out.get(p) ?? []), ...names]));
  }
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * A module with the same exports whose functions and class methods do nothing (constructors and
 * constants stay); the original sits beside it. Undefined when there is nothing to hollow.
 */
async function hollow(module: string, names: Set<string>): Promise<string | undefined> {
  const mod = await import(join(ROOT, module));
  const lines = [`export * from "./__hollow_original";`, `import * as __o from "./__hollow_original";`];
  for (const [name, value] of Object.entries(mod)) {
    if (typeof value !== "function" || !names.has(name)) continue;
    if (/^class\b/.test(Function.prototype.toString.call(value))) {
      const methods = Object.getOwnPropertyNames(value.prototype).filter((k) => k !== "constructor" && typeof Object.getOwnPropertyDescriptor(value.prototype, k)?.value === "function");
      if (!methods.length) continue;
      lines.push(`export class ${name} extends (__o as any).${name} {}`);
      for (const k of methods) lines.push(`(${name}.prototype as any)[${JSON.stringify(k)}] = function (..._a: any[]): any { return undefined; };`);
      continue;
    }
    const async = value.constructor?.name === "AsyncFunction";
    lines.push(`export const ${name} = ${async ? "async " : ""}(..._a: any[]): any => undefined;`);
  }
  return lines.length > 2 ? lines.join("\n") + "\n" : undefined;
}

// The repo's own bun, as the suite runs it: through process.execPath the process is named after the binary
// (bun.exe), and a test that names a listener by its process ("in use by bun (pid …)") fails in the sandbox.
const bun = existsSync(join(ROOT, "node_modules/.bin/bun")) ? join(ROOT, "node_modules/.bin/bun") : process.execPath;
const run = (testFile: string) => spawnSync(bun, ["test", "--timeout", "180000", testFile], { cwd: sandbox, encoding: "utf8", timeout: 600_000 }).status === 0;

let survivors = 0;
try {
  for (const t of files) {
    if (!run(t)) {
      console.log(`${t}: fails as it is in the sandbox copy; skipped`);
      continue;
    }
    for (const [s, names] of subjects(t)) {
      const target = join(sandbox, s);
      const original = readFileSync(target, "utf8");
      const stub = await hollow(s, names);
      if (!stub) {
        console.log(`n/a     ${t}  imports only constants or classes without methods from ${s}`);
        continue;
      }
      writeFileSync(join(dirname(target), "__hollow_original.ts"), original);
      writeFileSync(target, stub);
      const passed = run(t);
      writeFileSync(target, original);
      rmSync(join(dirname(target), "__hollow_original.ts"));
      if (passed) survivors++;
      console.log(`${passed ? "PASSES" : "fails "}  ${t}  with ${s} hollowed`);
    }
  }
} finally {
  rmSync(sandbox, { recursive: true, force: true });
}
console.log(survivors ? `\n${survivors} pair(s) where a test file passes with what it imports hollowed` : "\nevery test file fails when the functions it imports are hollowed");
process.exit(survivors ? 1 : 0);
