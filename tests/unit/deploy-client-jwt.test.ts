/**
 * deploy-client: one JWT secret and one set of API keys per environment (issue 11, item 4).
 * A key signed for dev (whose secret every dev app holds) must not verify in staging or
 * production; each environment's env file carries only its own; rotation and re-deploys
 * touch only what they must; a bundle from before (one shared JWT_SECRET) is migrated.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { decodeJwt } from "jose";
import { releaseDigest, renderBundleFiles, writeRelease } from "../../scripts/lib/deploy/bundle";
import {
  CLIENT_SECRET_KEYS,
  ensureClientSecrets,
  signApiKey,
  verifyApiKey,
  type ClientSecrets,
} from "../../scripts/lib/deploy/client-secrets";
import { environmentKeyProblems, verifyEnvironmentKey } from "../../scripts/lib/deploy/on-target";
import { ENVIRONMENTS, type EnvName } from "../../scripts/lib/deploy/settings";
import { acme } from "../golden";

const ROOT = resolve(import.meta.dir, "../..");
const tmp = mkdtempSync(join(tmpdir(), "pgp-bundlejwt-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const NOW = Math.floor(Date.now() / 1000);
const UP = (e: EnvName) => e.toUpperCase() as "DEV" | "STAGING" | "PRODUCTION";
const BAD_SIG = (e: EnvName) => ({ ok: false, problem: `signature does not verify against JWT_SECRET_${UP(e)}` });
const envFiles = (secrets: ClientSecrets) =>
  Object.fromEntries(
    renderBundleFiles(ROOT, acme(), secrets)
      .filter((f) => f.path.startsWith("client/env/"))
      .map((f) => [f.path, f.content]),
  );

describe("per-environment JWT secrets and API keys", () => {
  const file = join(tmp, "acme", ".secrets.env");

  test("every environment's keys verify against its own secret only: a staging or dev key is refused by production's", async () => {
    const { secrets } = await ensureClientSecrets(file, [], NOW);
    for (const signer of ENVIRONMENTS) {
      for (const verifier of ENVIRONMENTS) {
        for (const [k, role] of [
          ["ANON_KEY", "anon"],
          ["SERVICE_ROLE_KEY", "service_role"],
        ] as const) {
          const r = await verifyApiKey(
            secrets[`${k}_${UP(signer)}`],
            secrets[`JWT_SECRET_${UP(verifier)}`],
            role,
            NOW + 1,
          );
          if (signer === verifier) expect(r).toMatchObject({ ok: true, role, iss: "supabase" });
          else expect(r).toEqual({ ok: false, problem: "signature does not verify against JWT_SECRET" });
        }
      }
    }
    // A service_role key any dev app could mint from dev's secret:
    const forged = await signApiKey(secrets.JWT_SECRET_DEV, "service_role", NOW);
    expect(await verifyApiKey(forged, secrets.JWT_SECRET_PRODUCTION, "service_role", NOW + 1)).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET",
    });
  });

  test("each environment's env file holds its own JWT_SECRET, ANON_KEY and SERVICE_ROLE_KEY, and no value of another environment's", async () => {
    const { secrets } = await ensureClientSecrets(file);
    const files = envFiles(secrets);
    for (const env of ENVIRONMENTS) {
      const text = files[`client/env/${env}.env`]!;
      const vars = parseDotenv(Buffer.from(text));
      expect([vars.JWT_SECRET, vars.ANON_KEY, vars.SERVICE_ROLE_KEY]).toEqual([
        secrets[`JWT_SECRET_${UP(env)}`],
        secrets[`ANON_KEY_${UP(env)}`],
        secrets[`SERVICE_ROLE_KEY_${UP(env)}`],
      ]);
      for (const other of ENVIRONMENTS.filter((e) => e !== env)) {
        for (const k of ["JWT_SECRET", "ANON_KEY", "SERVICE_ROLE_KEY", "DB_PASSWORD"])
          expect(text).not.toContain(secrets[`${k}_${UP(other)}` as keyof ClientSecrets]);
      }
    }
    // The stack's own per-database secrets are the same values (one secret per environment, not two).
    const stack = parseDotenv(
      Buffer.from(
        renderBundleFiles(ROOT, acme(), secrets).find((f) => f.path === "envs/.secrets.client-acme.env")!.content,
      ),
    );
    for (const env of ENVIRONMENTS)
      expect(stack[`JWT_SECRET_ORCHESTRATOR_AI_${UP(env)}`]).toBe(secrets[`JWT_SECRET_${UP(env)}`]);
    expect(stack.JWT_SECRET).toBeUndefined();
  });

  test("re-deploying with unchanged secrets renders the same release (API keys stored, iat kept): same digest", async () => {
    const a = (await ensureClientSecrets(file, [], NOW)).secrets;
    const b = (await ensureClientSecrets(file, [], NOW + 3600)).secrets;
    expect(b).toEqual(a);
    expect(decodeJwt(b.SERVICE_ROLE_KEY_PRODUCTION).iat).toBe(decodeJwt(a.SERVICE_ROLE_KEY_PRODUCTION).iat!);
    const digest = (s: ClientSecrets) => releaseDigest(ROOT, renderBundleFiles(ROOT, acme(), s), ["package.json"]);
    expect(digest(b)).toBe(digest(a));
  });

  test("ROTATE=JWT_SECRET_PRODUCTION changes production.env only: dev.env and staging.env stay byte-identical", async () => {
    const before = envFiles((await ensureClientSecrets(file)).secrets);
    const r = await ensureClientSecrets(file, ["JWT_SECRET_PRODUCTION"]);
    const after = envFiles(r.secrets);
    expect(after["client/env/dev.env"]).toBe(before["client/env/dev.env"]!);
    expect(after["client/env/staging.env"]).toBe(before["client/env/staging.env"]!);
    const diff = (a: string, b: string) =>
      a
        .split("\n")
        .filter((l, i) => l !== b.split("\n")[i])
        .map((l) => l.split("=")[0]);
    expect(diff(after["client/env/production.env"]!, before["client/env/production.env"]!)).toEqual([
      "JWT_SECRET",
      "ANON_KEY",
      "SERVICE_ROLE_KEY",
    ]);
  });
});

describe("a bundle from before per-environment secrets (one JWT_SECRET for dev, staging and production)", () => {
  const file = join(tmp, "legacy", ".secrets.env");

  test("is migrated on the next run: new secret and keys per environment, the shared ones dropped and no longer verifying, every other secret kept", async () => {
    const OLD = "Lg9Qw2mZr7TbX1vLp9NcY4sHd6JfA3gUe0oRi5yW"; // the old shared secret
    const oldAnon = await signApiKey(OLD, "anon", NOW - 1000);
    const oldService = await signApiKey(OLD, "service_role", NOW - 1000);
    const keep = Object.fromEntries(
      CLIENT_SECRET_KEYS.filter((k) => !/^(JWT_SECRET|ANON_KEY|SERVICE_ROLE_KEY)_/.test(k)).map((k, i) => [
        k,
        `kept-${k.toLowerCase()}-Ab3dE6gH9jK2${i}`,
      ]),
    );
    mkdirSync(join(tmp, "legacy"), { recursive: true });
    const legacy = { ...keep, JWT_SECRET: OLD, ANON_KEY: oldAnon, SERVICE_ROLE_KEY: oldService };
    writeFileSync(
      file,
      Object.entries(legacy)
        .map(([k, v]) => `${k}=${v}`)
        .join("\n") + "\n",
      { mode: 0o600 },
    );

    const r = await ensureClientSecrets(file, [], NOW);
    expect(r.migrated).toBe(
      `${file}: the JWT_SECRET, ANON_KEY, SERVICE_ROLE_KEY shared by dev, staging and production (a key any dev app could sign was good in production) ` +
        "were replaced by one set per environment (JWT_SECRET_DEV, JWT_SECRET_STAGING, JWT_SECRET_PRODUCTION, each with its own ANON_KEY_<ENV> and SERVICE_ROLE_KEY_<ENV>). " +
        "The old ANON_KEY and SERVICE_ROLE_KEY stop verifying everywhere once this release is live: give each environment's apps and clients its new keys (client/env/<env>.env on the target).",
    );
    expect(r.created.sort()).toEqual([
      "ANON_KEY_DEV",
      "ANON_KEY_PRODUCTION",
      "ANON_KEY_STAGING",
      "JWT_SECRET_DEV",
      "JWT_SECRET_PRODUCTION",
      "JWT_SECRET_STAGING",
      "SERVICE_ROLE_KEY_DEV",
      "SERVICE_ROLE_KEY_PRODUCTION",
      "SERVICE_ROLE_KEY_STAGING",
    ]);
    const onDisk = parseDotenv(readFileSync(file));
    expect(Object.keys(onDisk)).toEqual([...CLIENT_SECRET_KEYS]);
    for (const [k, v] of Object.entries(keep)) expect(onDisk[k]).toBe(v);
    for (const env of ENVIRONMENTS) {
      const secret = r.secrets[`JWT_SECRET_${UP(env)}`];
      expect(secret).not.toBe(OLD);
      expect(await verifyApiKey(oldService, secret, "service_role", NOW)).toEqual({
        ok: false,
        problem: "signature does not verify against JWT_SECRET",
      });
      expect(await verifyApiKey(oldAnon, secret, "anon", NOW)).toEqual({
        ok: false,
        problem: "signature does not verify against JWT_SECRET",
      });
    }
    for (const text of Object.values(envFiles(r.secrets)))
      for (const old of [OLD, oldAnon, oldService]) expect(text).not.toContain(old);
    // done once: the next run migrates and changes nothing
    const before = readFileSync(file, "utf8");
    const again = await ensureClientSecrets(file, [], NOW + 60);
    expect(again).toMatchObject({ created: [], rotated: [] });
    expect(again.migrated).toBeUndefined();
    expect(readFileSync(file, "utf8")).toBe(before);
  });
});

describe("the environments' verifiers on the target (on-target.ts, reading the release's env files)", () => {
  const release = join(tmp, "release");

  test("production's verifier refuses a service_role key signed with dev's secret, naming JWT_SECRET_PRODUCTION; its own key verifies", async () => {
    const { secrets } = await ensureClientSecrets(join(tmp, "onTarget", ".secrets.env"), [], NOW);
    writeRelease(release, ROOT, renderBundleFiles(ROOT, acme(), secrets), [], "digest");
    const forged = await signApiKey(secrets.JWT_SECRET_DEV, "service_role");
    expect(await verifyEnvironmentKey(release, "production", forged, "service_role")).toEqual(BAD_SIG("production"));
    expect(await verifyEnvironmentKey(release, "staging", secrets.SERVICE_ROLE_KEY_DEV, "service_role")).toEqual(
      BAD_SIG("staging"),
    );
    expect(await verifyEnvironmentKey(release, "dev", forged, "service_role")).toMatchObject({
      ok: true,
      role: "service_role",
    });
    expect(
      await verifyEnvironmentKey(release, "production", secrets.SERVICE_ROLE_KEY_PRODUCTION, "service_role"),
    ).toMatchObject({ ok: true, role: "service_role" });
    for (const env of ENVIRONMENTS) expect(await environmentKeyProblems(release, env)).toEqual([]);
  });

  test("the health check names a production env file that shares dev's JWT secret (and its keys)", async () => {
    const { secrets } = await ensureClientSecrets(join(tmp, "onTarget", ".secrets.env"), [], NOW);
    const shared = {
      ...secrets,
      JWT_SECRET_PRODUCTION: secrets.JWT_SECRET_DEV,
      ANON_KEY_PRODUCTION: secrets.ANON_KEY_DEV,
      SERVICE_ROLE_KEY_PRODUCTION: secrets.SERVICE_ROLE_KEY_DEV,
    };
    writeRelease(release, ROOT, renderBundleFiles(ROOT, acme(), shared), [], "digest");
    expect(await environmentKeyProblems(release, "production")).toEqual([
      "production.env and dev.env hold the same JWT_SECRET",
    ]);
    expect(await environmentKeyProblems(release, "staging")).toEqual([]);
  });
});
