import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parseConfig } from "../../scripts/lib/config";
import YAML from "yaml";
import { composeEnv } from "../../scripts/lib/docker";
import { apiComposeYaml, apiDatabases } from "../../scripts/lib/compose-apis";
import { interpolate, validateCompose } from "../../scripts/lib/compose-schema";
import { SECRET_KEYS, jwtSecretKey } from "../../scripts/lib/secrets";
import { JWT_ISSUER, verifyApiKey } from "../../scripts/lib/jwt";
import { decodeJwt } from "jose";

const root = `${import.meta.dir}/../..`;
const ENV_DBS = ["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production"];
const secrets = Object.fromEntries(
  [...SECRET_KEYS, ...ENV_DBS.map(jwtSecretKey)].map((k) => [k, `secret-${k.toLowerCase()}-0123456789abcdef`]),
);
const cfg = parseConfig(readFileSync(`${root}/envs/dev.env`, "utf8"), {
  file: "envs/dev.env",
  stack: "dev",
  rootDir: root,
  isRoot: false,
  secrets,
});
const devYml = readFileSync(`${root}/compose/dev.yml`, "utf8");
/** the generated override with one API per environment database (scripts/lib/compose-apis.ts) */
const apisYml = apiComposeYaml(apiDatabases(cfg, []));

describe("compose/dev.yml against the Compose specification schema", () => {
  test("validates with the env dev-up writes", async () => {
    expect(validateCompose(devYml, await composeEnv(cfg, "/state/rendered-docker"))).toEqual([]);
  });
  test("so does compose/dev-members.yml (the members' ports, DOCKER_PUBLISH_MEMBERS), every variable set", async () => {
    const members = readFileSync(`${root}/compose/dev-members.yml`, "utf8");
    expect(validateCompose(members, await composeEnv(cfg, "/state/rendered-docker"))).toEqual([]);
  });
  test("pins every image to a version tag (no latest)", () => {
    const images = [...(devYml + apisYml).matchAll(/image: (\S+)/g)].map((m) => m[1]!);
    expect(images.length).toBeGreaterThanOrEqual(10);
    // "${IMAGE_<NAME>:-<pinned>}": the default (what runs unless the env file says otherwise) is pinned
    for (const i of images) expect(i).toMatch(/^"\$\{IMAGE_[A-Z_]+:-[^}]+:[\w.-]*\d[\w.-]*\}"$/);
  });
  test("runs Supabase's services: auth, rest, realtime, storage (one each per database), studio, gateway", () => {
    for (const db of ["orchestrator-ai-dev", "orchestrator-ai-staging", "orchestrator-ai-production"])
      for (const s of ["auth", "rest", "realtime", "storage"]) expect(apisYml).toContain(`\n  ${s}-${db}:\n`);
    for (const s of ["studio:", "kong:", "nginx:", "haproxy:", "pg1:", "etcd1:"]) expect(devYml).toContain(`\n  ${s}`);
  });
  test("a misspelled key, a bad port or an unset variable is reported", async () => {
    const env = await composeEnv(cfg, "/x");
    expect(
      validateCompose(devYml.replace("restart: unless-stopped", "restrat: unless-stopped"), env).join("\n"),
    ).toContain("additional properties (restrat)");
    expect(validateCompose(devYml, { ...env, API_PORT: "http" }).join("\n")).toMatch(/ports/);
    const { API_PORT, ...noPort } = env;
    expect(validateCompose(devYml, noPort)).toContain("variable ${API_PORT} is not set");
  });
  test("the services get the dev environment's own JWT secret; its keys do not verify against staging's or production's", async () => {
    expect(cfg.databases).toEqual(ENV_DBS);
    const env = await composeEnv(cfg, "/x", []);
    const dev = secrets.JWT_SECRET_ORCHESTRATOR_AI_DEV!;
    expect(env.JWT_SECRET).toBe(dev);
    expect(await verifyApiKey(env.SUPABASE_ANON_KEY!, dev, "anon")).toMatchObject({
      ok: true,
      role: "anon",
      iss: "supabase",
    });
    expect(await verifyApiKey(env.SUPABASE_SERVICE_KEY!, dev, "service_role")).toMatchObject({
      ok: true,
      role: "service_role",
    });
    for (const other of [secrets.JWT_SECRET_ORCHESTRATOR_AI_STAGING!, secrets.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION!]) {
      expect(await verifyApiKey(env.SUPABASE_SERVICE_KEY!, other, "service_role")).toEqual({
        ok: false,
        problem: "signature does not verify against JWT_SECRET",
      });
    }
    // Each database's services carry that database's secret, and no other's.
    const rendered = YAML.parse(interpolate(apisYml, env, [])) as {
      services: Record<string, { environment?: Record<string, string> }>;
    };
    for (const db of ENV_DBS) {
      const own = db.replace(/_/g, "-");
      for (const [name, s] of Object.entries(rendered.services).filter(([n]) => n.endsWith(own))) {
        const text = JSON.stringify(s);
        expect({ name, own: text.includes(secrets[jwtSecretKey(db)]!) }).toEqual({ name, own: true });
        for (const other of ENV_DBS.filter((o) => o !== db))
          expect({ name, other: text.includes(secrets[jwtSecretKey(other)]!) }).toEqual({ name, other: false });
      }
    }
    // Studio and postgres-meta (compose/dev.yml) serve the dev database only.
    const devOnly = interpolate(devYml, env, []);
    for (const db of ["orchestrator_ai_staging", "orchestrator_ai_production"])
      expect(devOnly).not.toContain(secrets[jwtSecretKey(db)]!);
  });
  test("API keys last API_KEY_TTL_DAYS (default 365 days), not Supabase's five years", async () => {
    const env = await composeEnv(cfg, "/x");
    const c = decodeJwt(env.SUPABASE_ANON_KEY!);
    expect(cfg.apiKeyTtlDays).toBe(365);
    expect({ role: c.role, iss: c.iss, ttl: c.exp! - c.iat! }).toEqual({
      role: "anon",
      iss: JWT_ISSUER,
      ttl: 365 * 24 * 3600,
    });
    const short = parseConfig(
      readFileSync(`${root}/envs/dev.env`, "utf8").replace("API_KEY_TTL_DAYS=365", "API_KEY_TTL_DAYS=30"),
      { file: "envs/dev.env", stack: "dev", rootDir: root, isRoot: false, secrets },
    );
    const s = decodeJwt((await composeEnv(short, "/x")).SUPABASE_SERVICE_KEY!);
    expect(s.exp! - s.iat!).toBe(30 * 24 * 3600);
  });
  test.each([
    ["0", 'envs/dev.env: API_KEY_TTL_DAYS: must be at least 1 day (got "0")'],
    ["1826", 'envs/dev.env: API_KEY_TTL_DAYS: must be at most 1825 days (5 years) (got "1826")'],
    ["1.5", 'envs/dev.env: API_KEY_TTL_DAYS: must be a whole number of days (got "1.5")'],
    ["a year", 'envs/dev.env: API_KEY_TTL_DAYS: must be a number of days (got "a year")'],
  ])("API_KEY_TTL_DAYS=%s is refused with the key, the value and the fix", (v, msg) => {
    const text = readFileSync(`${root}/envs/dev.env`, "utf8").replace("API_KEY_TTL_DAYS=365", `API_KEY_TTL_DAYS=${v}`);
    let err: unknown;
    try {
      parseConfig(text, { file: "envs/dev.env", stack: "dev", rootDir: root, isRoot: false, secrets });
    } catch (e) {
      err = e;
    }
    expect({ what: (err as Error).message, fix: (err as { fix?: string }).fix }).toEqual({
      what: msg,
      fix: "lifetime of the Supabase anon/service API keys in days (re-issued on rotation), e.g. 365",
    });
  });
});

describe("interpolate (Compose's rules)", () => {
  test("defaults, $$ and unset variables", () => {
    const unset: string[] = [];
    expect(interpolate("${A} ${B:-dflt} ${C-x} $$HOME $D", { A: "1", C: "" }, unset)).toBe("1 dflt  $HOME ");
    expect(unset).toEqual(["D"]);
  });
});
