/** deploy-client secrets: generated API keys (HS256 JWTs), rotation, and the gate's table of bad secrets. */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SignJWT, decodeJwt, decodeProtectedHeader } from "jose";
import { ToolkitError } from "../../scripts/lib/errors";
import { redact } from "../../scripts/lib/redact";
import {
  CLIENT_SECRET_KEYS,
  JWT_LIFETIME_S,
  ensureClientSecrets,
  signApiKey,
  verifyApiKey,
  type ClientSecrets,
} from "../../scripts/lib/deploy/client-secrets";
import { PUBLISHED_JWT_SECRETS, enforceGate, gateProblems } from "../../scripts/lib/deploy/gate";
import { planRelease } from "../../scripts/lib/deploy/deploy";
import { parseClientSettings } from "../../scripts/lib/deploy/settings";

const tmp = mkdtempSync(join(tmpdir(), "pgp-secrets-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const NOW = Math.floor(Date.now() / 1000);
const SECRET = "k8Qw2mZr7TbX1vLp9NcY4sHd6JfA3gUe0oRi5yWq"; // 40 characters, varied

describe("API keys: HS256 JWTs signed with JWT_SECRET", () => {
  test("claims: role, iss supabase, iat, exp = iat + 5 years; header HS256/JWT", async () => {
    const token = await signApiKey(SECRET, "anon", NOW);
    expect(decodeProtectedHeader(token)).toEqual({ alg: "HS256", typ: "JWT" });
    expect(decodeJwt(token)).toEqual({ role: "anon", iss: "supabase", iat: NOW, exp: NOW + JWT_LIFETIME_S });
    expect(await verifyApiKey(token, SECRET, "anon", NOW + 60)).toMatchObject({
      ok: true,
      role: "anon",
      iss: "supabase",
      exp: NOW + JWT_LIFETIME_S,
    });
  });

  test("another secret, another role, expiry and alg none are all refused", async () => {
    const token = await signApiKey(SECRET, "service_role", NOW);
    expect((await verifyApiKey(token, SECRET + "x", "service_role", NOW)).problem).toBe(
      "signature does not verify against JWT_SECRET",
    );
    expect((await verifyApiKey(token, SECRET, "anon", NOW)).problem).toContain('role claim is "service_role"');
    expect(await verifyApiKey(token, SECRET, "service_role", NOW + JWT_LIFETIME_S + 1)).toEqual({
      ok: false,
      problem: '"exp" claim timestamp check failed',
    });
    const [h, p, sig] = token.split(".");
    // The token we tamper with is exactly what we think it is: HS256 header, the service_role claims.
    expect(JSON.parse(Buffer.from(h!, "base64url").toString())).toEqual({ alg: "HS256", typ: "JWT" });
    expect(JSON.parse(Buffer.from(p!, "base64url").toString())).toEqual({
      role: "service_role",
      iss: "supabase",
      iat: NOW,
      exp: NOW + JWT_LIFETIME_S,
    });
    expect(await verifyApiKey(token, SECRET, "service_role", NOW)).toEqual({
      ok: true,
      role: "service_role",
      iss: "supabase",
      exp: NOW + JWT_LIFETIME_S,
    });
    const none = `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${p}.`;
    expect(await verifyApiKey(none, SECRET, "service_role", NOW)).toEqual({
      ok: false,
      problem: '"alg" (Algorithm) Header Parameter value not allowed',
    });
    // Same claims and signature under another algorithm's header: refused too.
    const hs512 = `${Buffer.from(JSON.stringify({ alg: "HS512", typ: "JWT" })).toString("base64url")}.${p}.${sig}`;
    expect(await verifyApiKey(hs512, SECRET, "service_role", NOW)).toEqual({
      ok: false,
      problem: '"alg" (Algorithm) Header Parameter value not allowed',
    });
    // A payload edited to another role keeps the old signature, which no longer verifies.
    const anonPayload = Buffer.from(
      JSON.stringify({ role: "anon", iss: "supabase", iat: NOW, exp: NOW + JWT_LIFETIME_S }),
    ).toString("base64url");
    expect(await verifyApiKey(`${h}.${anonPayload}.${sig}`, SECRET, "anon", NOW)).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET",
    });
  });
});

describe("generated secrets", () => {
  const file = join(tmp, "acme", ".secrets.env");

  test("created once, 0600, every key; API keys verify against the generated JWT secret", async () => {
    const r = await ensureClientSecrets(file);
    expect(r.created.sort()).toEqual([...CLIENT_SECRET_KEYS].sort());
    expect(statSync(file).mode & 0o777).toBe(0o600);
    for (const e of ["DEV", "STAGING", "PRODUCTION"] as const) {
      expect(r.secrets[`JWT_SECRET_${e}`].length).toBeGreaterThanOrEqual(32);
      expect((await verifyApiKey(r.secrets[`ANON_KEY_${e}`], r.secrets[`JWT_SECRET_${e}`], "anon")).ok).toBe(true);
      expect(
        (await verifyApiKey(r.secrets[`SERVICE_ROLE_KEY_${e}`], r.secrets[`JWT_SECRET_${e}`], "service_role")).ok,
      ).toBe(true);
      expect(r.secrets[`ANON_KEY_${e}`]).not.toBe(r.secrets[`SERVICE_ROLE_KEY_${e}`]);
    }
    expect(
      new Set([r.secrets.JWT_SECRET_DEV, r.secrets.JWT_SECRET_STAGING, r.secrets.JWT_SECRET_PRODUCTION]).size,
    ).toBe(3);
    expect(await gateProblems(r.secrets)).toEqual([]);
    // registered for redaction
    expect(redact(`x ${r.secrets.DB_PASSWORD_PRODUCTION} y`)).toBe("x *** y");
  });

  test("re-running changes nothing", async () => {
    const before = readFileSync(file, "utf8");
    const r = await ensureClientSecrets(file);
    expect(r.created).toEqual([]);
    expect(r.rotated).toEqual([]);
    expect(readFileSync(file, "utf8")).toBe(before);
  });

  test("ROTATE=JWT_SECRET_PRODUCTION re-signs production's two API keys only; every other line stays byte-identical", async () => {
    const beforeText = readFileSync(file, "utf8");
    const before = (await ensureClientSecrets(file)).secrets;
    const r = await ensureClientSecrets(file, ["JWT_SECRET_PRODUCTION"]);
    expect(r.rotated.sort()).toEqual(["ANON_KEY_PRODUCTION", "JWT_SECRET_PRODUCTION", "SERVICE_ROLE_KEY_PRODUCTION"]);
    expect(r.created).toEqual([]);
    expect(r.secrets.JWT_SECRET_PRODUCTION).not.toBe(before.JWT_SECRET_PRODUCTION);
    expect(await verifyApiKey(r.secrets.ANON_KEY_PRODUCTION, r.secrets.JWT_SECRET_PRODUCTION, "anon")).toMatchObject({
      ok: true,
      role: "anon",
    });
    expect(
      await verifyApiKey(r.secrets.SERVICE_ROLE_KEY_PRODUCTION, r.secrets.JWT_SECRET_PRODUCTION, "service_role"),
    ).toMatchObject({ ok: true, role: "service_role" });
    expect(
      await verifyApiKey(before.SERVICE_ROLE_KEY_PRODUCTION, r.secrets.JWT_SECRET_PRODUCTION, "service_role"),
    ).toEqual({ ok: false, problem: "signature does not verify against JWT_SECRET" });
    // The file differs in exactly production's three lines.
    const changed = (t: string) => t.split("\n");
    const a = changed(beforeText),
      b = changed(readFileSync(file, "utf8"));
    expect(a.length).toBe(b.length);
    expect(a.filter((line, i) => line !== b[i]).map((l) => l.split("=")[0])).toEqual([
      "JWT_SECRET_PRODUCTION",
      "ANON_KEY_PRODUCTION",
      "SERVICE_ROLE_KEY_PRODUCTION",
    ]);
  });

  test("ROTATE=ANON_KEY_STAGING re-signs that key alone (same secret, new iat)", async () => {
    const before = (await ensureClientSecrets(file)).secrets;
    const r = await ensureClientSecrets(file, ["ANON_KEY_STAGING"], NOW + 100);
    expect(r.rotated).toEqual(["ANON_KEY_STAGING"]);
    expect(decodeJwt(r.secrets.ANON_KEY_STAGING).iat).toBe(NOW + 100);
    expect({ ...r.secrets, ANON_KEY_STAGING: "" }).toEqual({ ...before, ANON_KEY_STAGING: "" });
    expect(await verifyApiKey(r.secrets.ANON_KEY_STAGING, before.JWT_SECRET_STAGING, "anon", NOW + 101)).toMatchObject({
      ok: true,
    });
  });

  test("ROTATE=JWT_SECRET (the old shared name) is refused, naming the per-environment keys", async () => {
    const before = readFileSync(file, "utf8");
    const e = await ensureClientSecrets(file, ["JWT_SECRET"]).then(
      () => undefined,
      (x) => x,
    );
    expect(e).toMatchObject({
      code: "BAD_ROTATE",
      message: "ROTATE=JWT_SECRET: each environment has its own JWT_SECRET now",
      fix: "name the environment: ROTATE=JWT_SECRET_DEV or ROTATE=JWT_SECRET_STAGING or ROTATE=JWT_SECRET_PRODUCTION",
    });
    expect(readFileSync(file, "utf8")).toBe(before);
  });

  test("the API keys are stored, not re-signed: a later run (another clock) keeps them and their iat byte for byte", async () => {
    const before = readFileSync(file, "utf8");
    const r = await ensureClientSecrets(file, [], NOW + 86_400);
    expect(r).toMatchObject({ created: [], rotated: [] });
    expect(r.migrated).toBeUndefined();
    expect(readFileSync(file, "utf8")).toBe(before);
  });

  test("a deleted JWT_SECRET_DEV line is regenerated and re-signs dev's keys (the old ones would no longer verify), nothing else", async () => {
    const before = (await ensureClientSecrets(file)).secrets;
    writeFileSync(file, readFileSync(file, "utf8").replace(/^JWT_SECRET_DEV=.*\n/m, ""), { mode: 0o600 });
    const r = await ensureClientSecrets(file);
    expect(r.created).toEqual(["JWT_SECRET_DEV"]);
    expect(r.rotated.sort()).toEqual(["ANON_KEY_DEV", "SERVICE_ROLE_KEY_DEV"]);
    expect(await verifyApiKey(r.secrets.SERVICE_ROLE_KEY_DEV, r.secrets.JWT_SECRET_DEV, "service_role")).toMatchObject({
      ok: true,
    });
    expect({ ...r.secrets, JWT_SECRET_DEV: "", ANON_KEY_DEV: "", SERVICE_ROLE_KEY_DEV: "" }).toEqual({
      ...before,
      JWT_SECRET_DEV: "",
      ANON_KEY_DEV: "",
      SERVICE_ROLE_KEY_DEV: "",
    });
  });

  test("unknown and unsupported rotations are refused before anything changes", async () => {
    const before = readFileSync(file, "utf8");
    await expect(ensureClientSecrets(file, ["NOPE"])).rejects.toMatchObject({ code: "BAD_ROTATE" });
    await expect(ensureClientSecrets(file, ["POSTGRES_PASSWORD"])).rejects.toMatchObject({
      code: "ROTATE_UNSUPPORTED",
    });
    expect(readFileSync(file, "utf8")).toBe(before);
  });
});

describe("the secret gate (staging and production)", () => {
  let good: ClientSecrets;
  const base = async () => {
    if (!good) good = (await ensureClientSecrets(join(tmp, "gate", ".secrets.env"))).secrets;
    return { ...good };
  };
  const otherSecret = "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0PpOoNnMm";
  const DEMO_ANON =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyAgCiAgICAicm9sZSI6ICJhbm9uIiwKICAgICJpc3MiOiAic3VwYWJhc2UtZGVtbyIsCiAgICAiaWF0IjogMTY0MTc2OTIwMCwKICAgICJleHAiOiAxNzk5NTM1NjAwCn0.dc_X5iR_VP_qT0zsiyj_I_OZ2T9FtRU2BBNWN8Bu4GE";
  const DEMO_SERVICE =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyAgCiAgICAicm9sZSI6ICJzZXJ2aWNlX3JvbGUiLAogICAgImlzcyI6ICJzdXBhYmFzZS1kZW1vIiwKICAgICJpYXQiOiAxNjQxNzY5MjAwLAogICAgImV4cCI6IDE3OTk1MzU2MDAKfQ.DaYlNEoUrrEn2Ig7tqibS-PHK5vgusbcbo7X36XVt4Q";

  // [what, mutate, offending key, reason]
  const table: [string, (s: ClientSecrets) => Promise<void> | void, string, RegExp][] = [
    [
      "Supabase's published JWT secret",
      (s) => {
        s.JWT_SECRET_PRODUCTION = PUBLISHED_JWT_SECRETS[0]!;
      },
      "JWT_SECRET_PRODUCTION",
      /published default/,
    ],
    [
      "the CLI's local JWT secret",
      (s) => {
        s.JWT_SECRET_STAGING = PUBLISHED_JWT_SECRETS[1]!;
      },
      "JWT_SECRET_STAGING",
      /published default/,
    ],
    [
      "a short JWT secret",
      (s) => {
        s.JWT_SECRET_PRODUCTION = "Ab3dE6gH9jK2mN5pQ8";
      },
      "JWT_SECRET_PRODUCTION",
      /too short .* at least 32/,
    ],
    [
      "production's JWT secret equal to dev's",
      (s) => {
        s.JWT_SECRET_PRODUCTION = s.JWT_SECRET_DEV;
      },
      "JWT_SECRET_PRODUCTION",
      /^is identical to JWT_SECRET_DEV \(a key signed for dev would verify in production\)$/,
    ],
    [
      "staging's JWT secret equal to production's",
      (s) => {
        s.JWT_SECRET_STAGING = s.JWT_SECRET_PRODUCTION;
      },
      "JWT_SECRET_STAGING",
      /^is identical to JWT_SECRET_PRODUCTION /,
    ],
    [
      "production's service key signed with staging's secret",
      async (s) => {
        s.SERVICE_ROLE_KEY_PRODUCTION = await signApiKey(s.JWT_SECRET_STAGING, "service_role");
      },
      "SERVICE_ROLE_KEY_PRODUCTION",
      /^signature does not verify against JWT_SECRET_PRODUCTION$/,
    ],
    [
      "staging's anon key copied from dev",
      (s) => {
        s.ANON_KEY_STAGING = s.ANON_KEY_DEV;
      },
      "ANON_KEY_STAGING",
      /^signature does not verify against JWT_SECRET_STAGING$/,
    ],
    [
      "postgres as the superuser password",
      (s) => {
        s.POSTGRES_PASSWORD = "postgres";
      },
      "POSTGRES_PASSWORD",
      /placeholder or default/,
    ],
    [
      "password as a database password",
      (s) => {
        s.DB_PASSWORD_PRODUCTION = "password";
      },
      "DB_PASSWORD_PRODUCTION",
      /placeholder or default/,
    ],
    [
      "the example's dashboard password",
      (s) => {
        s.DASHBOARD_PASSWORD = "this_password_is_insecure_and_should_be_updated";
      },
      "DASHBOARD_PASSWORD",
      /published default/,
    ],
    [
      "the example's postgres password",
      (s) => {
        s.POSTGRES_PASSWORD = "your-super-secret-and-long-postgres-password";
      },
      "POSTGRES_PASSWORD",
      /published default/,
    ],
    [
      "a seed placeholder",
      (s) => {
        s.MONITORING_PASSWORD = "secure-grafana-password";
      },
      "MONITORING_PASSWORD",
      /placeholder/,
    ],
    [
      "a <placeholder>",
      (s) => {
        s.DB_PASSWORD_STAGING = "<staging-db-password>";
      },
      "DB_PASSWORD_STAGING",
      /placeholder/,
    ],
    [
      "changeme",
      (s) => {
        s.HAPROXY_STATS_PASSWORD = "changeme-changeme-123";
      },
      "HAPROXY_STATS_PASSWORD",
      /placeholder/,
    ],
    [
      "a short password",
      (s) => {
        s.REPLICATION_PASSWORD = "Xk3#pQ9z";
      },
      "REPLICATION_PASSWORD",
      /too short \(8 characters, need at least 16\)/,
    ],
    [
      "one character repeated",
      (s) => {
        s.REWIND_PASSWORD = "aaaaaaaaaaaaaaaaaaaaaaaa";
      },
      "REWIND_PASSWORD",
      /placeholder|variety/,
    ],
    [
      "low variety",
      (s) => {
        s.PATRONI_API_PASSWORD = "abababababababababab12";
      },
      "PATRONI_API_PASSWORD",
      /variety/,
    ],
    [
      "an empty value",
      (s) => {
        s.AUTHENTICATOR_PASSWORD = "";
      },
      "AUTHENTICATOR_PASSWORD",
      /is empty/,
    ],
    [
      "Supabase's demo anon key",
      (s) => {
        s.ANON_KEY_PRODUCTION = DEMO_ANON;
      },
      "ANON_KEY_PRODUCTION",
      /published default/,
    ],
    [
      "Supabase's demo service key",
      (s) => {
        s.SERVICE_ROLE_KEY_STAGING = DEMO_SERVICE;
      },
      "SERVICE_ROLE_KEY_STAGING",
      /published default/,
    ],
    [
      "identical anon and service keys",
      (s) => {
        s.SERVICE_ROLE_KEY_PRODUCTION = s.ANON_KEY_PRODUCTION;
      },
      "SERVICE_ROLE_KEY_PRODUCTION",
      /identical to ANON_KEY_PRODUCTION/,
    ],
    [
      "an anon key signed with another secret",
      async (s) => {
        s.ANON_KEY_PRODUCTION = await signApiKey(otherSecret, "anon");
      },
      "ANON_KEY_PRODUCTION",
      /signature does not verify against JWT_SECRET_PRODUCTION/,
    ],
    [
      "a service key with the anon role",
      async (s) => {
        s.SERVICE_ROLE_KEY_PRODUCTION = await signApiKey(s.JWT_SECRET_PRODUCTION, "anon", NOW - 12345);
      },
      "SERVICE_ROLE_KEY_PRODUCTION",
      /role claim is "anon"/,
    ],
    [
      "an expired anon key",
      async (s) => {
        s.ANON_KEY_STAGING = await signApiKey(s.JWT_SECRET_STAGING, "anon", NOW - 7200 - JWT_LIFETIME_S);
      },
      "ANON_KEY_STAGING",
      /exp/,
    ],
    [
      "a demo issuer",
      async (s) => {
        s.ANON_KEY_PRODUCTION = await new SignJWT({ role: "anon" })
          .setProtectedHeader({ alg: "HS256" })
          .setIssuer("supabase-demo")
          .setIssuedAt()
          .setExpirationTime("1y")
          .sign(new TextEncoder().encode(s.JWT_SECRET_PRODUCTION));
      },
      "ANON_KEY_PRODUCTION",
      /demo key/,
    ],
    [
      "staging and production sharing a database password",
      (s) => {
        s.DB_PASSWORD_PRODUCTION = s.DB_PASSWORD_STAGING;
      },
      "DB_PASSWORD_PRODUCTION",
      /identical to DB_PASSWORD_STAGING/,
    ],
  ];

  for (const [what, mutate, key, reason] of table) {
    test(`refuses ${what}, naming ${key}`, async () => {
      const s = await base();
      await mutate(s);
      const problems = await gateProblems(s, ["staging", "production"], NOW);
      const p = problems.find((x) => x.key === key);
      expect(p, JSON.stringify(problems)).toBeDefined();
      expect(p!.reason).toMatch(reason);
      const err = await enforceGate(s, "clients/acme/.secrets.env").then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ToolkitError);
      expect((err as ToolkitError).code).toBe("INSECURE_SECRET");
      expect((err as ToolkitError).message).toContain(key);
      // the message names the key, never the value
      const value = s[key as keyof ClientSecrets];
      if (value && value.length >= 8) expect((err as ToolkitError).message).not.toContain(value);
    });
  }

  // (This replaced a test that only asserted the table's own size.) Each row above proves something only if
  // the base it changes passes: at the same clock, with the same environments, nothing may be wrong with it.
  test("the unchanged base passes the gate, so each row fails only for its own change", async () => {
    expect(await gateProblems(await base(), ["staging", "production"], NOW)).toEqual([]);
    await expect(enforceGate(await base(), "clients/acme/.secrets.env")).resolves.toBeUndefined();
  });

  test("strong generated secrets pass; dev's own database password is not gated", async () => {
    const s = await base();
    expect(await gateProblems(s)).toEqual([]);
    s.DB_PASSWORD_DEV = "dev";
    expect(await gateProblems(s, ["staging", "production"])).toEqual([]);
    expect((await gateProblems(s, ["dev"])).map((p) => p.key)).toEqual(["DB_PASSWORD_DEV"]);
  });
});

describe("the gate where a release is planned (planRelease, called by PLAN=1 and every deploy)", () => {
  const ROOT = resolve(import.meta.dir, "../..");
  const name = "gatecall";
  const settings = parseClientSettings(
    `CLIENT_NAME=${name}\nHOST=local\nDOMAIN=gatecall.internal\nACCESS=internal\nPROFILE=16\nREMOTE_DIR=/opt/pgplatform/${name}\n` +
      "MEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13\nHAPROXY_ADDRESS=127.0.0.1\nAPI_ADDRESS=127.0.0.1\n",
    "clients/gatecall/client.env",
  );
  const base = join(tmp, "clients");
  const file = join(base, name, ".secrets.env");
  // planRelease stages a release here when the gate is skipped: never leave that behind
  afterAll(() => rmSync(join(ROOT, ".state", "clients", name), { recursive: true, force: true }));

  test("a secrets file with a demo value is refused with the gate's code before any TLS or release is made", async () => {
    const good = (await ensureClientSecrets(file)).secrets;
    // The operator's file carries Supabase's published JWT secret and a changeme superuser password (values the redactor then masks everywhere: keep them unique).
    const weak: ClientSecrets = {
      ...good,
      JWT_SECRET_PRODUCTION: PUBLISHED_JWT_SECRETS[0]!,
      POSTGRES_PASSWORD: "changeme-changeme-123",
    };
    writeFileSync(file, CLIENT_SECRET_KEYS.map((k) => `${k}=${weak[k]}`).join("\n") + "\n", { mode: 0o600 });
    const err = await planRelease(settings, { clientsBase: base, sourceDir: ROOT }).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(ToolkitError);
    expect((err as ToolkitError).code).toBe("INSECURE_SECRET");
    expect((err as ToolkitError).message).toStartWith(
      "staging and production refuse to deploy: POSTGRES_PASSWORD is a placeholder or default value; JWT_SECRET_PRODUCTION is a published default (Supabase's self-hosting example); ANON_KEY_PRODUCTION is signed with a published JWT secret; SERVICE_ROLE_KEY_PRODUCTION is signed with a published JWT secret",
    );
    expect((err as ToolkitError).fix).toContain(file);
    expect(existsSync(join(base, name, ".tls"))).toBe(false);
    expect(existsSync(join(ROOT, ".state", "clients", name))).toBe(false);
    // the weak values were kept for the operator to fix, not silently replaced
    expect(readFileSync(file, "utf8")).toContain("POSTGRES_PASSWORD=changeme-changeme-123\n");
  });
});
