import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parseConfig } from "../../scripts/lib/config";
import { composeEnv } from "../../scripts/lib/docker";
import { interpolate, validateCompose } from "../../scripts/lib/compose-schema";
import { SECRET_KEYS } from "../../scripts/lib/secrets";
import { verifyApiKey } from "../../scripts/lib/jwt";

const root = `${import.meta.dir}/../..`;
const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}-0123456789abcdef`]));
const cfg = parseConfig(readFileSync(`${root}/envs/dev.env`, "utf8"), { file: "envs/dev.env", stack: "dev", rootDir: root, isRoot: false, secrets });
const devYml = readFileSync(`${root}/compose/dev.yml`, "utf8");

describe("compose/dev.yml against the Compose specification schema", () => {
  test("validates with the env dev-up writes", async () => {
    expect(validateCompose(devYml, await composeEnv(cfg, "/state/rendered-docker"))).toEqual([]);
  });
  test("pins every image to a version tag (no latest)", () => {
    const images = [...devYml.matchAll(/image: (\S+)/g)].map((m) => m[1]!);
    expect(images.length).toBeGreaterThanOrEqual(10);
    for (const i of images) expect(i).toMatch(/:[\w.-]*\d[\w.-]*$/);
  });
  test("runs Supabase's services: auth, rest, realtime, storage, studio, gateway", () => {
    for (const s of ["auth:", "rest:", "realtime:", "storage:", "studio:", "kong:", "nginx:", "haproxy:", "pg1:", "etcd1:"]) expect(devYml).toContain(`\n  ${s}`);
  });
  test("a misspelled key, a bad port or an unset variable is reported", async () => {
    const env = await composeEnv(cfg, "/x");
    expect(validateCompose(devYml.replace("restart: unless-stopped", "restrat: unless-stopped"), env).join("\n")).toContain("additional properties (restrat)");
    expect(validateCompose(devYml, { ...env, API_PORT: "http" }).join("\n")).toMatch(/ports/);
    const { API_PORT, ...noPort } = env;
    expect(validateCompose(devYml, noPort)).toContain("variable ${API_PORT} is not set");
  });
  test("the API keys are HS256 JWTs signed with the stack's secret", async () => {
    const env = await composeEnv(cfg, "/x");
    expect(await verifyApiKey(env.SUPABASE_ANON_KEY!, secrets.JWT_SECRET!, "anon")).toMatchObject({ ok: true, role: "anon", iss: "supabase" });
    expect(await verifyApiKey(env.SUPABASE_SERVICE_KEY!, secrets.JWT_SECRET!, "service_role")).toMatchObject({ ok: true, role: "service_role" });
    expect(await verifyApiKey(env.SUPABASE_ANON_KEY!, "another-secret-another-secret-xx", "anon")).toMatchObject({ ok: false, problem: "signature does not verify against JWT_SECRET" });
  });
});

describe("interpolate (Compose's rules)", () => {
  test("defaults, $$ and unset variables", () => {
    const unset: string[] = [];
    expect(interpolate("${A} ${B:-dflt} ${C-x} $$HOME $D", { A: "1", C: "" }, unset)).toBe("1 dflt  $HOME ");
    expect(unset).toEqual(["D"]);
  });
});
