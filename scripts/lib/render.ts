/**
 * Templates are the real config files with ${VAR} placeholders. One function
 * renders them; a placeholder with no value, or a value nobody asked for in a
 * strict render, is an error rather than a silently broken file.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { ToolkitError } from "./errors";
import { writeFileNoFollow } from "./safe-fs";

const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)\}/g;

export function placeholders(template: string): string[] {
  return [...new Set([...template.matchAll(PLACEHOLDER)].map((m) => m[1]!))];
}

export function renderTemplate(
  template: string,
  vars: Record<string, string | number | boolean | undefined>,
  name = "template",
): string {
  const missing = placeholders(template).filter((k) => vars[k] === undefined || vars[k] === null);
  if (missing.length) {
    throw new ToolkitError(
      "TEMPLATE_UNSET",
      `${name}: no value for ${missing.map((m) => "${" + m + "}").join(", ")}`,
      "add the value to the render variables (scripts/lib/stack-files.ts) or remove the placeholder",
    );
  }
  return template.replace(PLACEHOLDER, (_, k: string) => String(vars[k]));
}

export function readTemplate(rootDir: string, rel: string): string {
  return readFileSync(`${rootDir}/${rel}`, "utf8");
}

export interface WriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

/**
 * Write atomically; report whether the content changed (for idempotent re-runs).
 * Never through a symlink (scripts/lib/safe-fs.ts): several of these files live
 * in folders the postgres user owns.
 */
export function writeIfChanged(path: string, content: string, opts: WriteOptions = {}): boolean {
  mkdirSync(dirname(path), { recursive: true });
  const owner = opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : undefined;
  return writeFileNoFollow(path, content, { mode: opts.mode, owner });
}
