/**
 * The one settings engine: envs/<stack>.env, clients/<name>/client.env and
 * clusters/<name>/cluster.env are each one table of keys (a zod schema, a hint
 * that says what the key means and how to fix it, an optional default) plus
 * cross-key rules. Parsing gives a typed object (z.infer of the table), never a
 * cast; every refusal is a SettingsError naming the file, the key, the value
 * and the fix.
 */
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";
import { ToolkitError } from "../errors";

/** What a key means (and how to fix a bad value), and the text used when the key is left out. */
export interface KeyMeta {
  hint: string;
  default?: string;
}

const META = z.registry<KeyMeta>();

/**
 * Declare one key: its schema (a fresh instance: the hint is attached to it),
 * its hint and, for keys that may be left out, a default that is parsed like
 * a written value.
 */
export function setting<S extends z.ZodType>(schema: S, hint: string, dflt?: string): S {
  if (META.has(schema))
    throw new Error(
      `settings: a schema instance is declared twice (hint ${JSON.stringify(hint)}); build each key's schema afresh`,
    );
  const plain: z.ZodType = schema;
  META.add(plain, { hint, default: dflt });
  return schema;
}

export const keyMeta = (schema: z.ZodType): KeyMeta => META.get(schema) ?? { hint: "" };

export type Shape = Record<string, z.ZodType>;
export type Values<S extends Shape> = z.output<z.ZodObject<S>>;

/** A refusal of a rule that spans keys: the key it is reported on, what is wrong, the fix. */
export interface Problem {
  key: string;
  message: string;
  fix: string;
}
export type Rule<V> = (v: V) => Problem | undefined;

export interface SettingsTable<S extends Shape> {
  /** the error code of every refusal, e.g. BAD_CONFIG */
  code: string;
  /** where the keys are documented (named when an unknown key has no near match) */
  doc: string;
  keys: S;
  rules: Rule<Values<S>>[];
}

export function defineSettings<S extends Shape>(t: {
  code: string;
  doc: string;
  keys: S;
  rules?: Rule<Values<S>>[];
}): SettingsTable<S> {
  return { code: t.code, doc: t.doc, keys: t.keys, rules: t.rules ?? [] };
}

export class SettingsError extends ToolkitError {
  constructor(
    code: string,
    readonly file: string,
    readonly key: string,
    message: string,
    fix: string,
  ) {
    super(code, `${file}: ${key}: ${message}`, fix);
  }
}

/** Parse dotenv text against a table; `file` names it in errors. Pure. */
export function parseSettings<S extends Shape>(
  table: SettingsTable<S>,
  text: string,
  file: string,
): { values: Values<S>; raw: Record<string, string> } {
  const raw = parseDotenv(Buffer.from(text));
  return { values: checkSettings(table, raw, file), raw };
}

/** Validate key=value pairs against a table: unknown keys, missing keys, each key's schema, then the cross-key rules. */
export function checkSettings<S extends Shape>(
  table: SettingsTable<S>,
  raw: Record<string, string>,
  file: string,
): Values<S> {
  const fail = (key: string, message: string, fix: string) => new SettingsError(table.code, file, key, message, fix);
  const known = Object.keys(table.keys);
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      const near = closestKey(key, known);
      throw fail(
        key,
        "unknown setting",
        near ? `did you mean ${near}?` : `remove it; known keys are listed in ${table.doc}`,
      );
    }
  }
  const input: Record<string, string> = {};
  for (const [key, schema] of Object.entries(table.keys)) {
    const meta = keyMeta(schema);
    const value = raw[key] ?? meta.default;
    if (value === undefined) throw fail(key, "is missing", `add a line ${key}=... (${meta.hint})`);
    input[key] = value;
  }
  const r = z.object(table.keys).safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const key = String(issue?.path[0] ?? "");
    throw fail(
      key,
      `${issue?.message ?? "is invalid"} (got ${JSON.stringify(input[key])})`,
      keyMeta(table.keys[key] ?? z.never()).hint,
    );
  }
  for (const rule of table.rules) {
    const p = rule(r.data);
    if (p) throw fail(p.key, p.message, p.fix);
  }
  return r.data;
}

/** Listeners that share an address must not share a port: the second key that repeats one, with the fix. */
export function portClash(ports: [key: string, port: number][], fix: string): Problem | undefined {
  const seen = new Map<number, string>();
  for (const [key, port] of ports) {
    const first = seen.get(port);
    if (first !== undefined) return { key, message: `port ${port} is also used by ${first}`, fix };
    seen.set(port, key);
  }
  return undefined;
}

/** [key, port] pairs of the given keys, in order, for portClash. */
export const keyedPorts = <K extends string>(v: Record<K, number>, keys: readonly K[]): [string, number][] =>
  keys.map((k) => [k, v[k]]);

/** The nearest known key within 3 edits (the first listed on a tie), for "did you mean". */
export function closestKey(key: string, known: string[]): string | undefined {
  let best: [string, number] | undefined;
  for (const k of known) {
    const d = levenshtein(key, k);
    if (!best || d < best[1]) best = [k, d];
  }
  return best && best[1] <= 3 ? best[0] : undefined;
}

/**
 * Edit distance (insert, delete, substitute). Fifteen lines kept here rather than
 * a dependency: every byte of node_modules ships to each customer's server.
 */
export function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = i - 1;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = dp[j] ?? 0;
      dp[j] = Math.min(up + 1, (dp[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = up;
    }
  }
  return dp[b.length] ?? 0;
}

/** The table as a markdown list of keys (envs/README.md and the like are checked against it by a unit test). */
export function settingsDoc<S extends Shape>(table: SettingsTable<S>): string {
  const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("<", "\\<");
  const rows = Object.entries(table.keys).map(([key, schema]) => {
    const m = keyMeta(schema);
    const dflt = m.default === undefined ? "required" : m.default === "" ? "(empty)" : `\`${m.default}\``;
    return `| \`${key}\` | ${dflt} | ${cell(m.hint)} |`;
  });
  return ["| key | default | meaning, and the fix for a bad value |", "|---|---|---|", ...rows].join("\n") + "\n";
}
