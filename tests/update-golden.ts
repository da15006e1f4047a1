#!/usr/bin/env bun
/**
 * make golden: rewrite every golden file from the current code (and remove
 * goldens nothing produces any more), then print what changed. The only
 * writer of tests/unit/golden/; review `git diff tests/unit/golden` and commit.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { GOLDEN_ROOT, GOLDEN_SETS, ROOT } from "./golden";

let changed = 0;
for (const set of GOLDEN_SETS) {
  const dir = join(GOLDEN_ROOT, set.dir);
  mkdirSync(dir, { recursive: true });
  const files = set.files();
  for (const f of files) {
    const path = join(dir, f.name);
    const before = existsSync(path) ? readFileSync(path, "utf8") : undefined;
    if (before === f.content) continue;
    writeFileSync(path, f.content);
    console.log(`${before === undefined ? "created" : "updated"} ${relative(ROOT, path)}`);
    changed++;
  }
  const produced = new Set(files.map((f) => f.name));
  for (const g of readdirSync(dir)) {
    if (produced.has(g)) continue;
    rmSync(join(dir, g));
    console.log(`removed  ${relative(ROOT, join(dir, g))} (no longer produced)`);
    changed++;
  }
}
console.log(
  changed
    ? `${changed} golden file(s) changed: review git diff tests/unit/golden and commit`
    : "golden files up to date",
);
