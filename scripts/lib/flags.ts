/**
 * Tiny flag parser: --name value, --name=value, --flag, and positionals.
 * Unknown flags are errors (a typo must not silently do the default).
 */
import { ToolkitError } from "./errors";

export type FlagSpec = Record<string, "boolean" | "string" | "number">;
export type Flags<S extends FlagSpec> = {
  [K in keyof S]?: S[K] extends "boolean" ? boolean : S[K] extends "number" ? number : string;
} & { _: string[]; help?: boolean };

export function parseFlags<S extends FlagSpec>(argv: string[], spec: S, usage?: string): Flags<S> {
  const out: Record<string, unknown> = { _: [] };
  const all: FlagSpec = { help: "boolean", ...spec };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h") {
      out.help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      (out._ as string[]).push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = (eq > 0 ? arg.slice(2, eq) : arg.slice(2)).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const type = all[name];
    if (!type) throw new ToolkitError("BAD_FLAG", `unknown flag ${arg}`, usage ?? "run with --help to list the flags");
    if (type === "boolean") {
      out[name] = eq > 0 ? arg.slice(eq + 1) !== "false" : true;
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new ToolkitError("BAD_FLAG", `${arg} needs a value`, usage);
    if (type === "number") {
      const n = Number(value);
      if (!Number.isFinite(n))
        throw new ToolkitError("BAD_FLAG", `${arg} must be a number (got ${JSON.stringify(value)})`, usage);
      out[name] = n;
    } else out[name] = value;
  }
  return out as Flags<S>;
}

/** Make passes YES=1 etc. as environment variables; treat them like the flags. */
export const envFlag = (name: string) => ["1", "true", "yes"].includes((process.env[name] ?? "").toLowerCase());
