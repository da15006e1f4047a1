/** The compose files rendered as the runtime renders them, for the contract tests (tests/unit/compose-contract*.test.ts). */
import { readFileSync } from "node:fs";
import { parse as parseDotenv } from "dotenv";
import YAML from "yaml";
import { parseConfig } from "../../scripts/lib/config";
import { composeEnv } from "../../scripts/lib/docker";
import { apiComposeYaml, apiDatabases, apiSlug } from "../../scripts/lib/compose-apis";
import { renderKongYaml } from "../../scripts/lib/compose-kong";
import { interpolate } from "../../scripts/lib/compose-schema";
import { renderStack } from "../../scripts/lib/stack-files";
import { renderEnvFile } from "../../scripts/lib/deploy/bundle";
import { SECRET_KEYS, jwtSecretKey } from "../../scripts/lib/secrets";
import { acme, fixedSecrets } from "../golden";

export const root = `${import.meta.dir}/../..`;
export const ENV_DBS = ["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production"];
export const secrets = Object.fromEntries(
  [...SECRET_KEYS, ...ENV_DBS.map(jwtSecretKey)].map((k) => [k, `secret-${k.toLowerCase()}-0123456789abcdef`]),
);
export const devEnvText = readFileSync(`${root}/envs/dev.env`, "utf8");
export const config = (extra = "") =>
  parseConfig(devEnvText + extra, { file: "envs/dev.env", stack: "dev", rootDir: root, isRoot: false, secrets });
export const cfg = config();
export const devYml = readFileSync(`${root}/compose/dev.yml`, "utf8");
export const RENDERED = "/state/rendered-docker";

export type Service = {
  image?: string;
  environment?: Record<string, string>;
  healthcheck?: { test: string[] | string };
  volumes?: string[];
  tmpfs?: string[];
  command?: string[] | string;
  entrypoint?: string;
  depends_on?: string[] | Record<string, { condition: string }>;
  networks?: string[] | Record<string, { aliases?: string[] }>;
  hostname?: string;
  ports?: string[];
};
export type Doc = { services: Record<string, Service>; volumes?: Record<string, unknown> };

export const render = (text: string, env: Record<string, string>): Doc =>
  YAML.parse(interpolate(text, env, []), { merge: true });
/** The stack's Supabase-enabled databases with no app registered (the ladder). */
export const apis = apiDatabases(cfg, []);
export const devEnv = await composeEnv(cfg, RENDERED, []);
/** compose/dev.yml with the rendered override merged over it, as compose does with two -f (maps merge, the rest replaces). */
export function mergeDocs(a: Doc, b: Doc): Doc {
  const services = { ...a.services };
  for (const [name, s] of Object.entries(b.services ?? {})) {
    const base = services[name] ?? {};
    services[name] = { ...base, ...s, environment: { ...(base.environment ?? {}), ...(s.environment ?? {}) } };
  }
  return { services, volumes: { ...(a.volumes ?? {}), ...(b.volumes ?? {}) } };
}
export const apisYml = apiComposeYaml(apis);
/** Kong's rendered declarative config (compose-kong.ts), before its entrypoint's `eval echo`. */
export const kongYml = renderKongYaml(apis, cfg.databases[0]!);
export type KongDoc = {
  services: { name: string; url: string; routes: { paths: string[] }[]; plugins?: { name: string; config?: any }[] }[];
};
export const kong = YAML.parse(kongYml) as KongDoc;
/** A Kong route path of the main database's API (/<main>/auth/v1/), or a shared one (/pg/, /). */
export const mainPath = (path: string) => (["/pg/", "/"].includes(path) ? path : `/${cfg.databases[0]!}${path}`);
export const dev = mergeDocs(render(devYml, devEnv), render(apisYml, devEnv));
/** dev.yml and its override for another configuration (no apps). */
export async function renderDev(c: typeof cfg): Promise<Doc> {
  const env = await composeEnv(c, RENDERED, []);
  return mergeDocs(render(devYml, env), render(apiComposeYaml(apiDatabases(c, [])), env));
}
/** A per-database service of the main database (compose-apis.ts), or a shared one (meta, studio, kong). */
export const service = (name: string, database = cfg.databases[0]!): Service =>
  dev.services[name] ?? dev.services[`${name}-${apiSlug(database)}`]!;
export const clientEnv = (env: "staging" | "production") =>
  parseDotenv(Buffer.from(renderEnvFile(acme(), fixedSecrets(), env))) as Record<string, string>;
export const clients = (["staging", "production"] as const)
  .map((env) => ({ env, vars: clientEnv(env), text: readFileSync(`${root}/compose/client-${env}.yml`, "utf8") }))
  .map((c) => ({ ...c, doc: render(c.text, c.vars) }));
export const stackFiles = renderStack(cfg, "docker");
export const rendered = (path: string) => stackFiles.find((f) => f.path === path)!.content;
export const envOf = (s: Service) => (s.environment ?? {}) as Record<string, string>;
export const has = (e: Record<string, string>, names: string[]) =>
  names.some((n) => e[n] !== undefined && String(e[n]) !== "");
