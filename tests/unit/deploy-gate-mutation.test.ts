/**
 * The secret gate's rules at their edges (found by make mutation; kept apart
 * from deploy-client-secrets.test.ts, which others change): every published
 * value and signature, each placeholder shape anchored where it is, the
 * length and variety boundaries, which keys each environment is judged on, and
 * the exact problem list when checks overlap (per-environment JWT_SECRET_<ENV>,
 * ANON_KEY_<ENV>, SERVICE_ROLE_KEY_<ENV>). The per-key table of refusals is in
 * deploy-client-secrets.test.ts; this file pins exact lists and boundaries.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureClientSecrets, signApiKey, type ClientSecrets } from "../../scripts/lib/deploy/client-secrets";
import { enforceGate, gateProblems, keysFor, valueProblem } from "../../scripts/lib/deploy/gate";
import { SECRET_KEYS } from "../../scripts/lib/secrets";
import { ToolkitError } from "../../scripts/lib/errors";

const tmp = mkdtempSync(join(tmpdir(), "pgp-gate-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const NOW = Math.floor(Date.now() / 1000);
let good: ClientSecrets | undefined;
const base = async (): Promise<ClientSecrets> => ({
  ...(good ??= (await ensureClientSecrets(join(tmp, ".secrets.env"))).secrets),
});
const problemsOf = async (change: (s: ClientSecrets) => void | Promise<void>) => {
  const s = await base();
  await change(s);
  return gateProblems(s, ["staging", "production"], NOW);
};

// Supabase's published examples, copied here on purpose: the gate's own list is what is under test.
const PUBLISHED = [
  "your-super-secret-jwt-token-with-at-least-32-characters-long",
  "super-secret-jwt-token-with-at-least-32-characters-long",
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyAgCiAgICAicm9sZSI6ICJhbm9uIiwKICAgICJpc3MiOiAic3VwYWJhc2UtZGVtbyIsCiAgICAiaWF0IjogMTY0MTc2OTIwMCwKICAgICJleHAiOiAxNzk5NTM1NjAwCn0.dc_X5iR_VP_qT0zsiyj_I_OZ2T9FtRU2BBNWN8Bu4GE",
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyAgCiAgICAicm9sZSI6ICJzZXJ2aWNlX3JvbGUiLAogICAgImlzcyI6ICJzdXBhYmFzZS1kZW1vIiwKICAgICJpYXQiOiAxNjQxNzY5MjAwLAogICAgImV4cCI6IDE3OTk1MzU2MDAKfQ.DaYlNEoUrrEn2Ig7tqibS-PHK5vgusbcbo7X36XVt4Q",
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0",
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU",
  "your-super-secret-and-long-postgres-password",
  "this_password_is_insecure_and_should_be_updated",
  "your-32-character-encryption-key",
  "your-encryption-key-32-chars-min",
];
const SIGNATURES = PUBLISHED.slice(2, 6).map((t) => t.split(".")[2]!);

// 11 distinct characters, none of the placeholder words: passes on its own.
const STRONG = "Xk3#pQ9zT7w";

describe("published values", () => {
  test.each(PUBLISHED)("%s is refused as published, whatever the key", (v) => {
    expect(valueProblem("DASHBOARD_PASSWORD", v)).toBe("is a published default (Supabase's self-hosting example)");
  });

  test.each(SIGNATURES)(
    "a key re-encoded around the published signature %s is refused as the demo key",
    async (sig) => {
      const p = await problemsOf((s) => {
        s.ANON_KEY_PRODUCTION = `${s.ANON_KEY_PRODUCTION.split(".").slice(0, 2).join(".")}.${sig}`;
      });
      expect(p).toEqual([{ key: "ANON_KEY_PRODUCTION", reason: "is a published default (Supabase's demo key)" }]);
    },
  );
});

describe("placeholders, anchored where the rule says", () => {
  const placeholder = "is a placeholder or default value";
  test.each([
    ["xxxX", placeholder], // xxx+ (any case)
    ["1234567", placeholder],
    ["123456", placeholder],
    ["${DB_PASSWORD}", placeholder],
    [`your_${STRONG}`, placeholder],
    [`${STRONG}-change_me`, placeholder],
    [`here-${STRONG}`, placeholder],
    [`${STRONG}-here`, placeholder],
    [`${STRONG}-secure_random_password`, placeholder],
    ["a".repeat(20), placeholder],
    [`${STRONG}-password`, undefined],
    [`password-${STRONG}`, undefined],
    [`${STRONG}<abc>`, undefined],
    [`<abc>${STRONG}`, undefined],
    [`\${ab}${STRONG}`, undefined],
    [`${STRONG}\${ab}`, undefined],
    [`${STRONG}-your-x`, undefined],
    [`${STRONG}where-1`, undefined],
    [`${STRONG}-hereX`, undefined],
    [`${STRONG}-local-anon`, undefined],
    [`${STRONG}-aaaa`, undefined],
    [`aaaa${STRONG}-`, undefined],
  ])("%s -> %s", (value, want) => {
    expect(valueProblem("DASHBOARD_PASSWORD", value)).toBe(want as string | undefined);
  });

  test("a JWT secret needs exactly 32 characters: 31 is too short, 32 passes", () => {
    const s31 = "Xk3#pQ9zT7wLm2VbXk3#pQ9zT7wLm2V";
    expect(valueProblem("JWT_SECRET_STAGING", s31)).toBe("is too short (31 characters, need at least 32)");
    expect(valueProblem("JWT_SECRET_PRODUCTION", `${s31}b`)).toBeUndefined();
    // other keys need 16 only
    expect(valueProblem("DB_PASSWORD_PRODUCTION", s31)).toBeUndefined();
  });

  test("length and variety boundaries: exactly 16 characters and exactly 8 distinct ones pass", () => {
    expect(valueProblem("DASHBOARD_PASSWORD", "Xk3#pQ9zT7wLm2Vb")).toBeUndefined();
    expect(valueProblem("DASHBOARD_PASSWORD", "Xk3#pQ9zT7wLm2V")).toBe(
      "is too short (15 characters, need at least 16)",
    );
    expect(valueProblem("DASHBOARD_PASSWORD", "abcdefghabcdefgh")).toBeUndefined();
    expect(valueProblem("DASHBOARD_PASSWORD", "abcdefgaabcdefga")).toBe(
      "has too little variety (fewer than 8 distinct characters)",
    );
  });

  test("API keys are judged by signature and claims, not by length", () => {
    for (const k of ["ANON_KEY_DEV", "ANON_KEY_STAGING", "SERVICE_ROLE_KEY_PRODUCTION"])
      expect(valueProblem(k, "a.b.c")).toBeUndefined();
    expect(valueProblem("DASHBOARD_PASSWORD", "a.b.c")).toBe("is too short (5 characters, need at least 16)");
  });
});

describe("which keys an environment is judged on", () => {
  test("the shared keys plus its own database password, JWT secret and API keys, nobody else's", () => {
    const shared = [...SECRET_KEYS, "DASHBOARD_PASSWORD", "MONITORING_PASSWORD"];
    for (const env of ["dev", "staging", "production"] as const) {
      const E = env.toUpperCase();
      expect([...keysFor(env)].map(String).sort()).toEqual(
        [...shared, `JWT_SECRET_${E}`, `ANON_KEY_${E}`, `SERVICE_ROLE_KEY_${E}`, `DB_PASSWORD_${E}`].sort(),
      );
    }
  });

  test("dev's own secrets are not gated for staging and production", async () => {
    expect(
      await problemsOf((s) => {
        s.JWT_SECRET_DEV = "";
        s.ANON_KEY_DEV = "changeme";
        s.DB_PASSWORD_DEV = "dev";
      }),
    ).toEqual([]);
  });
});

describe("overlapping checks: each key named once, for its first problem", () => {
  test("no JWT secret: only that is reported, the API keys are not verified against nothing", async () => {
    expect(await problemsOf((s) => void (s.JWT_SECRET_PRODUCTION = ""))).toEqual([
      { key: "JWT_SECRET_PRODUCTION", reason: "is empty" },
    ]);
  });

  test("a JWT secret equal to another environment's but already refused is not also called identical; its keys still fail verification", async () => {
    expect(
      await problemsOf((s) => {
        s.JWT_SECRET_PRODUCTION = "Ab3dE6gH9jK2mN5pQ8";
        s.JWT_SECRET_DEV = "Ab3dE6gH9jK2mN5pQ8";
      }),
    ).toEqual([
      { key: "JWT_SECRET_PRODUCTION", reason: "is too short (18 characters, need at least 32)" },
      { key: "ANON_KEY_PRODUCTION", reason: "signature does not verify against JWT_SECRET_PRODUCTION" },
      { key: "SERVICE_ROLE_KEY_PRODUCTION", reason: "signature does not verify against JWT_SECRET_PRODUCTION" },
    ]);
  });

  test("staging and production sharing one JWT secret: both named, each against the other, the keys of the one signed by it still verify", async () => {
    expect(
      await problemsOf((s) => {
        s.JWT_SECRET_STAGING = s.JWT_SECRET_PRODUCTION;
      }),
    ).toEqual([
      {
        key: "JWT_SECRET_STAGING",
        reason: "is identical to JWT_SECRET_PRODUCTION (a key signed for production would verify in staging)",
      },
      { key: "ANON_KEY_STAGING", reason: "signature does not verify against JWT_SECRET_STAGING" },
      { key: "SERVICE_ROLE_KEY_STAGING", reason: "signature does not verify against JWT_SECRET_STAGING" },
      {
        key: "JWT_SECRET_PRODUCTION",
        reason: "is identical to JWT_SECRET_STAGING (a key signed for staging would verify in production)",
      },
    ]);
  });

  test("an API key with a problem of its own is not verified as well; a missing one is only empty", async () => {
    expect(await problemsOf((s) => void (s.ANON_KEY_PRODUCTION = PUBLISHED[2]!))).toEqual([
      { key: "ANON_KEY_PRODUCTION", reason: "is a published default (Supabase's self-hosting example)" },
    ]);
    expect(await problemsOf((s) => void (s.SERVICE_ROLE_KEY_STAGING = ""))).toEqual([
      { key: "SERVICE_ROLE_KEY_STAGING", reason: "is empty" },
    ]);
  });

  test("an API key that is no JWT at all: one problem from verification, no crash", async () => {
    const p = await problemsOf((s) => void (s.ANON_KEY_STAGING = `not-a-jwt-${STRONG}`));
    expect(p.map((x) => x.key)).toEqual(["ANON_KEY_STAGING"]);
  });

  test("a published JWT secret: the keys it signed are named, except one already refused or missing", async () => {
    expect(
      await problemsOf((s) => {
        s.JWT_SECRET_PRODUCTION = PUBLISHED[0]!;
        s.SERVICE_ROLE_KEY_PRODUCTION = PUBLISHED[3]!;
      }),
    ).toEqual([
      { key: "JWT_SECRET_PRODUCTION", reason: "is a published default (Supabase's self-hosting example)" },
      { key: "SERVICE_ROLE_KEY_PRODUCTION", reason: "is a published default (Supabase's self-hosting example)" },
      { key: "ANON_KEY_PRODUCTION", reason: "is signed with a published JWT secret" },
    ]);
    expect(
      await problemsOf((s) => {
        s.JWT_SECRET_STAGING = PUBLISHED[1]!;
        s.ANON_KEY_STAGING = "";
      }),
    ).toEqual([
      { key: "JWT_SECRET_STAGING", reason: "is a published default (Supabase's self-hosting example)" },
      { key: "ANON_KEY_STAGING", reason: "is empty" },
      { key: "SERVICE_ROLE_KEY_STAGING", reason: "is signed with a published JWT secret" },
    ]);
  });

  test("a password equal to an API key is not 'identical' (keys are compared among passwords only)", async () => {
    expect(await problemsOf((s) => void (s.DASHBOARD_PASSWORD = s.ANON_KEY_PRODUCTION))).toEqual([]);
  });

  test("two equal passwords that are already refused are not also called identical", async () => {
    expect(
      await problemsOf((s) => {
        s.DB_PASSWORD_STAGING = "short";
        s.DB_PASSWORD_PRODUCTION = "short";
      }),
    ).toEqual([
      { key: "DB_PASSWORD_STAGING", reason: "is too short (5 characters, need at least 16)" },
      { key: "DB_PASSWORD_PRODUCTION", reason: "is too short (5 characters, need at least 16)" },
    ]);
  });

  test("a problem with one key does not spare the others their checks", async () => {
    expect(
      await problemsOf(async (s) => {
        s.DASHBOARD_PASSWORD = "changeme";
        s.ANON_KEY_PRODUCTION = await signApiKey("Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0PpOoNnMm", "anon", NOW);
        s.DB_PASSWORD_PRODUCTION = s.DB_PASSWORD_STAGING;
      }),
    ).toEqual([
      { key: "DASHBOARD_PASSWORD", reason: "is a placeholder or default value" },
      { key: "ANON_KEY_PRODUCTION", reason: "signature does not verify against JWT_SECRET_PRODUCTION" },
      { key: "DB_PASSWORD_PRODUCTION", reason: "is identical to DB_PASSWORD_STAGING" },
    ]);
  });

  test("an expiring key signed by the right secret passes until it expires", async () => {
    expect(
      await problemsOf(
        async (s) => void (s.ANON_KEY_STAGING = await signApiKey(s.JWT_SECRET_STAGING, "anon", NOW - 100)),
      ),
    ).toEqual([]);
  });
});

describe("enforceGate", () => {
  test("good secrets pass; bad ones throw INSECURE_SECRET naming every key, the environments and the file", async () => {
    await expect(enforceGate(await base(), "clients/acme/.secrets.env")).resolves.toBeUndefined();
    const s = await base();
    s.DASHBOARD_PASSWORD = "changeme";
    s.REWIND_PASSWORD = "";
    let err: unknown;
    try {
      await enforceGate(s, "clients/acme/.secrets.env", ["production"]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ToolkitError);
    const e = err as ToolkitError;
    expect([e.code, e.message, e.fix]).toEqual([
      "INSECURE_SECRET",
      "production refuse to deploy: REWIND_PASSWORD is empty; DASHBOARD_PASSWORD is a placeholder or default value",
      "delete the offending line(s) from clients/acme/.secrets.env and re-run to generate strong values, or ROTATE=<key>",
    ]);
    // By default both gated environments, named in the message.
    await expect(enforceGate(s, "x.env")).rejects.toThrow(/^staging and production refuse to deploy: /);
  });
});
