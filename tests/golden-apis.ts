/**
 * Golden set of the docker runtime's per-database APIs (scripts/lib/compose-apis.ts, compose-kong.ts)
 * for a stack with the 3 environment databases and one --supabase app: the generated compose override
 * and Kong's declarative config. Neither holds a secret (they name compose.env's variables).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseConfig } from "../scripts/lib/config";
import { apiComposeYaml, apiDatabases } from "../scripts/lib/compose-apis";
import { renderKongYaml } from "../scripts/lib/compose-kong";
import { SECRET_KEYS, jwtSecretKey } from "../scripts/lib/secrets";
import type { GoldenSet } from "./golden";

const ROOT = resolve(import.meta.dir, "..");
export const APIS_APP = { name: "crm", database: "crm_db", port: 9100, supabase: true };
export function apisStack() {
  const dbs = ["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production", APIS_APP.database];
  const secrets = Object.fromEntries(
    [...SECRET_KEYS, ...dbs.map(jwtSecretKey)].map((k) => [k, `fixed-${k.toLowerCase()}-0123456789abcdef0123`]),
  );
  const cfg = parseConfig(readFileSync(`${ROOT}/envs/dev.env`, "utf8"), {
    file: "envs/dev.env",
    stack: "dev",
    rootDir: ROOT,
    isRoot: false,
    secrets,
  });
  return { cfg, apis: apiDatabases(cfg, [APIS_APP]) };
}

export const apiGoldens: GoldenSet = {
  dir: "compose-apis",
  files: () => {
    const { cfg, apis } = apisStack();
    return [
      { name: "compose.apis.yml", content: apiComposeYaml(apis) },
      { name: "kong.yml", content: renderKongYaml(apis, cfg.databases[0]!) },
    ];
  },
};
