/**
 * Issue 12 (the house): the module graph of scripts/ read from the sources.
 *
 * Layers, from the top:
 *   entry  scripts/*.ts               thin verbs: parse flags, call lib, print
 *   area   scripts/lib/<area>/*.ts    one job each (backup, native, runtimes, failover, ...)
 *   core   scripts/lib/*.ts           shared pieces (config, exec, pg, patroni, the runtime contract, ...)
 * A module imports its own layer or a lower one: an entry anything in lib, an
 * area other areas and core, core only core. Nothing in lib imports an entry
 * script, no entry imports another, and there is no cycle: a module's
 * static imports, dynamic `import()`s and `require()`s all count (a dynamic
 * import does not hide a cycle); `import type` counts for the layers but not
 * for cycles (it is erased: no load order depends on it).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT_DIR } from "../../scripts/lib/config";

const SCRIPTS = join(ROOT_DIR, "scripts");
const files = [...new Bun.Glob("**/*.ts").scanSync(SCRIPTS)].map((f) => join("scripts", f)).sort();

/** Source without comments (a docstring may show an import as an example). */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .split("\n")
    .filter((l) => !l.trim().startsWith("//"))
    .join("\n");
}

/** The relative module specifiers a file imports, re-exports, import()s or require()s; `typeOnly` for `import type` / `export type`. */
export function importSpecifiers(text: string): { spec: string; typeOnly: boolean }[] {
  const src = code(text);
  const out: { spec: string; typeOnly: boolean }[] = [];
  for (const re of [
    /\b(?:import|export)\s+(type\s+)?(?:[\w*{}\s,$]+\s+from\s+)?["']([^"']+)["']/g,
    /\bimport\(\s*()["']([^"']+)["']\s*\)/g,
    /\brequire\(\s*()["']([^"']+)["']\s*\)/g,
  ]) {
    for (const m of src.matchAll(re)) if (m[2]!.startsWith(".")) out.push({ spec: m[2]!, typeOnly: Boolean(m[1]) });
  }
  return out;
}

function resolveImport(from: string, spec: string): string | undefined {
  const base = resolve(ROOT_DIR, dirname(from), spec);
  for (const f of [base, `${base}.ts`, join(base, "index.ts")])
    if (f.endsWith(".ts") && existsSync(f)) return relative(ROOT_DIR, f);
  return undefined;
}

/** Every edge inside scripts/ (imports of tests/ or bench/ are not part of the graph); `runtimeOnly` leaves out `import type`. */
function readGraph(runtimeOnly: boolean): Map<string, string[]> {
  return new Map(
    files.map((f) => {
      const specs = importSpecifiers(readFileSync(join(ROOT_DIR, f), "utf8")).filter(
        (i) => !(runtimeOnly && i.typeOnly),
      );
      return [
        f,
        [
          ...new Set(
            specs.map((i) => resolveImport(f, i.spec)).filter((t): t is string => !!t && t.startsWith("scripts/")),
          ),
        ],
      ];
    }),
  );
}
const graph = readGraph(false);
const loadGraph = readGraph(true);

type Layer = "entry" | "area" | "core";
export function layerOf(file: string): Layer {
  const parts = file.split("/");
  // scripts/*.ts and developer scripts (scripts/dev/) are entries.
  if (parts.length === 2 || parts[1] !== "lib") return "entry";
  // scripts/lib/supabase/: the database facts every runtime applies (core itself imports them); it imports only core.
  if (parts[2] === "supabase") return "core";
  // scripts/lib/settings/: the settings engine and its tables, which config.ts (core) loads; it imports only core.
  if (parts[2] === "settings") return "core";
  return parts.length === 3 ? "core" : "area";
}
const RANK: Record<Layer, number> = { entry: 0, area: 1, core: 2 };

/** Strongly connected components with more than one module (or a module importing itself): the cycles. */
export function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/**
 * Core modules that import an area today, each owned by a module another
 * helper is restructuring this round (access.ts, monitoring.ts). Being split
 * by another helper this round: remove an entry when its import is gone.
 */
const UPWARD_ALLOWED = new Set([
  // the docker runtime's pgBackRest config is rendered by the backup area's renderer (one template, two runtimes)
  "scripts/lib/compose-pgbackrest.ts -> scripts/lib/backup/pgbackrest.ts",
  "scripts/lib/access.ts -> scripts/lib/onboard/lock.ts",
  "scripts/lib/access.ts -> scripts/lib/onboard/plan.ts",
  "scripts/lib/access-render.ts -> scripts/lib/onboard/plan.ts",
  "scripts/lib/access.ts -> scripts/lib/onboard/onboard.ts",
  // make status shows the firing alerts (monitoring/ reads Alertmanager); status.ts is core because every runtime's status is built there
  "scripts/lib/status.ts -> scripts/lib/monitoring/index.ts",
  // pool-client reloads the native pgbouncer by its process spec (the docker one reloads through the admin console)
  "scripts/lib/pool-client.ts -> scripts/lib/native/specs.ts",
]);

export function upwardImports(g: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const [from, tos] of g) {
    for (const to of tos) {
      const a = layerOf(from);
      const b = layerOf(to);
      if (RANK[b] < RANK[a] || (a === "entry" && b === "entry")) out.push(`${from} -> ${to}`);
    }
  }
  return out.sort();
}

/** Modules allowed over the limit while they are being split (none today): an entry must go once its module is under it. */
const OVERSIZE_ALLOWED = new Set<string>([]);
const MAX_LINES = 350;
const lineCount = (f: string) => readFileSync(join(ROOT_DIR, f), "utf8").replace(/\n$/, "").split("\n").length;

describe("the module graph of scripts/", () => {
  test("the reader finds static, type-only, dynamic and require imports, and none in comments", () => {
    const text = `/** e.g. import { devUp } from "./example"; */\n// import "./commented"\nimport { a } from "./a";\nimport type { B } from "../b";\nexport { c } from "./c";\nimport "./side";\nconst d = await import("./d");\nconst e = require("./e");\nimport { x } from "node:fs";`;
    expect(importSpecifiers(text)).toEqual([
      { spec: "./a", typeOnly: false },
      { spec: "../b", typeOnly: true },
      { spec: "./c", typeOnly: false },
      { spec: "./side", typeOnly: false },
      { spec: "./d", typeOnly: false },
      { spec: "./e", typeOnly: false },
    ]);
  });

  test("the cycle finder reports a cycle and leaves a tree alone", () => {
    const g = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a"]],
      ["d", ["a"]],
      ["e", ["e"]],
    ]);
    expect(cycles(g)).toEqual([["a", "b", "c"], ["e"]]);
    expect(
      cycles(
        new Map([
          ["a", ["b", "c"]],
          ["b", ["c"]],
          ["c", []],
        ]),
      ),
    ).toEqual([]);
  });

  test("the layers: entry scripts/*.ts, area scripts/lib/<area>/*.ts, core scripts/lib/*.ts", () => {
    expect([
      layerOf("scripts/dev-up.ts"),
      layerOf("scripts/lib/native/up.ts"),
      layerOf("scripts/lib/runtime.ts"),
    ]).toEqual(["entry", "area", "core"]);
    expect(
      upwardImports(
        new Map([
          ["scripts/lib/x.ts", ["scripts/lib/a/y.ts", "scripts/z.ts", "scripts/lib/w.ts"]],
          ["scripts/z.ts", ["scripts/q.ts"]],
        ]),
      ),
    ).toEqual([
      "scripts/lib/x.ts -> scripts/lib/a/y.ts",
      "scripts/lib/x.ts -> scripts/z.ts",
      "scripts/z.ts -> scripts/q.ts",
    ]);
  });

  test("every module was read, and the native split is in the graph", () => {
    expect(files.length).toBeGreaterThan(100);
    expect(graph.get("scripts/lib/native/up.ts")).toContain("scripts/lib/backup/pgbackrest.ts");
    expect(graph.get("scripts/lib/backup/common.ts")).toContain("scripts/lib/os-user.ts");
  });

  test("no cycle (import type aside)", () => {
    expect(cycles(loadGraph)).toEqual([]);
  });

  test("no upward import (a known one is listed, and only while it exists)", () => {
    const upward = upwardImports(graph);
    expect(upward.filter((e) => !UPWARD_ALLOWED.has(e))).toEqual([]);
    expect([...UPWARD_ALLOWED].filter((e) => !upward.includes(e))).toEqual([]);
  });

  test("lib never imports an entry script", () => {
    expect(
      [...graph].flatMap(([from, tos]) =>
        from.startsWith("scripts/lib/") ? tos.filter((t) => layerOf(t) === "entry").map((t) => `${from} -> ${t}`) : [],
      ),
    ).toEqual([]);
  });
});

describe(`no module under scripts/ over ${MAX_LINES} lines`, () => {
  test("every module is within the limit, except those being split this round", () => {
    const over = files
      .filter((f) => lineCount(f) > MAX_LINES && !OVERSIZE_ALLOWED.has(f))
      .map((f) => `${f}: ${lineCount(f)} lines`);
    expect(over).toEqual([]);
  });

  test("each allow-listed module still exceeds the limit (drop it from the list once split)", () => {
    expect([...OVERSIZE_ALLOWED].filter((f) => !existsSync(join(ROOT_DIR, f)) || lineCount(f) <= MAX_LINES)).toEqual(
      [],
    );
  });
});

describe("the README's layout table", () => {
  const readme = readFileSync(join(ROOT_DIR, "README.md"), "utf8");
  const start = readme.indexOf("| folder | what lives there |");
  const rows = readme
    .slice(start, readme.indexOf("\n\n", start))
    .split("\n")
    .slice(2)
    .map((r) => r.split("|").map((c) => c.trim()));
  const ticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].flatMap((m) => m[1]!.split(/\s+/));
  const named = rows.flatMap((r) => ticked(r[1]!));
  const dirs = (d: string) =>
    readdirSync(join(ROOT_DIR, d), { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith(".") && e.name !== "node_modules")
      .map((e) => e.name);

  test("names every top-level folder", () => {
    const top = new Set(named.map((n) => n.split("/")[0]!));
    expect(dirs(".").filter((d) => !top.has(d))).toEqual([]);
  });

  test("names every folder under scripts/lib, in its own row or in the operations row", () => {
    const ops = rows.find((r) => r[1] === "`scripts/lib/<operation>/`")!;
    const listed = new Set([
      ...named.filter((n) => n.startsWith("scripts/lib/")).map((n) => n.replace(/^scripts\/lib\/|\/$/g, "")),
      ...ticked(ops[2]!).map((n) => n.replace(/\/$/, "")),
    ]);
    expect(dirs("scripts/lib").filter((d) => !listed.has(d))).toEqual([]);
  });

  test("every folder it names exists", () => {
    expect(named.filter((n) => !n.includes("<") && !n.includes("*") && !existsSync(join(ROOT_DIR, n)))).toEqual([]);
  });
});
