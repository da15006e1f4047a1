/**
 * The pure parts of Supabase's side: the routes (one API per database, path
 * routing checked against supabase-js's URL resolution), the nginx locations,
 * the environments' env files, key reuse, the DCS parameter diff and restart
 * order, and the facts table's internal consistency.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig, ROOT_DIR, type Config } from "../../scripts/lib/config";
import { parameterDiff, restartOrder } from "../../scripts/lib/dcs-params";
import { decodeClaims, signApiKey, verifyApiKey } from "../../scripts/lib/jwt";
import { appEnvFile } from "../../scripts/lib/onboard/plan";
import { envFilePath, envFilesDir, renderEnvFile } from "../../scripts/lib/supabase/environments";
import { apiKeysFor, environmentDatabase } from "../../scripts/lib/supabase/keys";
import { DATABASE_GRANTS, ROLE_SETTINGS, SCHEMAS, SERVICE_NEEDS } from "../../scripts/lib/supabase/requirements";
import { envNameOf, renderSupabaseRoutes, supabaseRoutes, supabaseUrlFor } from "../../scripts/lib/supabase/routes";

const base = parseConfig(readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8"), {
  file: "envs/test.env",
  stack: "test",
  rootDir: ROOT_DIR,
  isRoot: false,
});
const SECRET_A = "a".repeat(40);
const SECRET_B = "b".repeat(40);
const cfg: Config = {
  ...base,
  secrets: {
    ...base.secrets,
    JWT_SECRET_ORCHESTRATOR_AI_DEV: SECRET_A,
    JWT_SECRET_ORCHESTRATOR_AI_STAGING: SECRET_B,
  } as Config["secrets"],
};

/** supabase-js 2.109.0 (dist/index.mjs, SupabaseClient constructor): new URL("rest/v1", ensureTrailingSlash(supabaseUrl)). */
const supabaseJsEndpoint = (supabaseUrl: string, path: string) =>
  new URL(path, supabaseUrl.endsWith("/") ? supabaseUrl : `${supabaseUrl}/`).href;

describe("one API per database: path routing", () => {
  test("each ladder database gets its own upstreams from the port plan (+51 auth, +52 rest, +53 storage), realtime shared", () => {
    expect(
      supabaseRoutes(cfg, [
        { database: "notes_db", port: 9200, supabase: true },
        { database: "plain_db", port: 9300, supabase: false },
      ]),
    ).toEqual([
      {
        database: "orchestrator_ai_dev",
        prefix: "/orchestrator_ai_dev",
        appPort: 6100,
        auth: "127.0.1.1:6151",
        rest: "127.0.1.1:6152",
        storage: "127.0.1.1:6153",
        realtime: "127.0.1.1:16050",
      },
      {
        database: "orchestrator_ai_staging",
        prefix: "/orchestrator_ai_staging",
        appPort: 7100,
        auth: "127.0.1.1:7151",
        rest: "127.0.1.1:7152",
        storage: "127.0.1.1:7153",
        realtime: "127.0.1.1:16050",
      },
      {
        database: "orchestrator_ai_production",
        prefix: "/orchestrator_ai_production",
        appPort: 9000,
        auth: "127.0.1.1:9051",
        rest: "127.0.1.1:9052",
        storage: "127.0.1.1:9053",
        realtime: "127.0.1.1:16050",
      },
      {
        database: "notes_db",
        prefix: "/notes_db",
        appPort: 9200,
        auth: "127.0.1.1:9251",
        rest: "127.0.1.1:9252",
        storage: "127.0.1.1:9253",
        realtime: "127.0.1.1:16050",
      },
    ]);
  });

  test("the environment of a ladder database is its suffix", () => {
    expect(
      ["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production", "orchestrator_ai_qa", "dev"].map(
        envNameOf,
      ),
    ).toEqual(["dev", "staging", "production", undefined, undefined]);
  });

  test("the prefix in SUPABASE_URL survives supabase-js's URL building for every service", () => {
    const url = supabaseUrlFor(cfg, "orchestrator_ai_staging");
    expect(url).toBe("http://127.0.1.1:16010/orchestrator_ai_staging");
    expect(
      ["rest/v1", "auth/v1", "storage/v1", "realtime/v1", "functions/v1"].map((p) => supabaseJsEndpoint(url, p)),
    ).toEqual([
      "http://127.0.1.1:16010/orchestrator_ai_staging/rest/v1",
      "http://127.0.1.1:16010/orchestrator_ai_staging/auth/v1",
      "http://127.0.1.1:16010/orchestrator_ai_staging/storage/v1",
      "http://127.0.1.1:16010/orchestrator_ai_staging/realtime/v1",
      "http://127.0.1.1:16010/orchestrator_ai_staging/functions/v1",
    ]);
    // Why the trailing slash matters (supabase-js adds it): without it the last segment would be replaced.
    expect(new URL("rest/v1", url).href).toBe("http://127.0.1.1:16010/rest/v1");
  });

  test("nginx locations: the prefix stripped, each service to its own upstream, realtime told its tenant", () => {
    const [dev] = supabaseRoutes(cfg, []);
    const conf = renderSupabaseRoutes(readFileSync(join(ROOT_DIR, "nginx/supabase-routes.conf.tmpl"), "utf8"), [dev!]);
    const lines = conf.split("\n").map((l) => l.trim());
    expect(lines.filter((l) => /^(location|proxy_pass|proxy_set_header Host)/.test(l))).toEqual([
      "location ^~ /orchestrator_ai_dev/auth/v1/ {",
      "proxy_pass http://127.0.1.1:6151/;",
      "proxy_set_header Host $host;",
      "location ^~ /orchestrator_ai_dev/rest/v1/ {",
      "proxy_pass http://127.0.1.1:6152/;",
      "proxy_set_header Host $host;",
      "location ^~ /orchestrator_ai_dev/storage/v1/ {",
      "proxy_pass http://127.0.1.1:6153/;",
      "proxy_set_header Host $host;",
      "location ^~ /orchestrator_ai_dev/realtime/v1/ {",
      "proxy_pass http://127.0.1.1:16050/socket/;",
      "proxy_set_header Host orchestrator_ai_dev;",
    ]);
  });
});

describe("the environments' env files", () => {
  test("one documented place per stack, named for the environment", () => {
    expect(envFilesDir({ rootDir: "/r", stack: "dev" })).toBe("/r/envs/app");
    expect(envFilePath({ rootDir: "/r", stack: "dev" }, "orchestrator_ai_staging")).toBe("/r/envs/app/.env.staging");
    expect(envFilePath({ rootDir: "/r", stack: "test" }, "orchestrator_ai_production")).toBe(
      "/r/envs/app.test/.env.production",
    );
    expect(envFilePath({ rootDir: "/r", stack: "test" }, "reports")).toBe("/r/envs/app.test/.env.reports");
  });

  test("the whole file: the environment's role (pooled and direct), its own API and keys, the port plan's API_PORT", () => {
    expect(
      renderEnvFile(cfg, {
        database: "orchestrator_ai_staging",
        role: "orchestrator_ai_staging",
        password: "pw_1",
        keys: { anon: "ANON", serviceRole: "SERVICE" },
      }),
    ).toBe(
      [
        "# staging (database orchestrator_ai_staging) on stack test: written by `make dev-up`. Private: mode 0600, gitignored.",
        "# DATABASE_URL: the environment's own role orchestrator_ai_staging through pgbouncer (transaction pooling);",
        "# DIRECT_URL: the same role straight to the leader through HAProxy (migrations, LISTEN, advisory locks).",
        "DATABASE_URL=postgresql://orchestrator_ai_staging:pw_1@127.0.1.1:16015/orchestrator_ai_staging",
        "DIRECT_URL=postgresql://orchestrator_ai_staging:pw_1@127.0.1.1:16012/orchestrator_ai_staging",
        `# This database's own Supabase API (auth, rest, storage, realtime under the path; see the README, "One API per environment").`,
        "SUPABASE_URL=http://127.0.1.1:16010/orchestrator_ai_staging",
        "SUPABASE_ANON_KEY=ANON",
        "# Bypasses row-level security: server-side code only, never in a browser bundle.",
        "SUPABASE_SERVICE_ROLE_KEY=SERVICE",
        "API_PORT=7100",
        "",
      ].join("\n"),
    );
  });

  test("an app's env file takes the Supabase lines it is given in place of the stack-wide SUPABASE_URL", () => {
    const app = {
      name: "notes",
      database: "notes_db",
      role: "notes",
      port: 9200,
      domain: "notes.localhost",
      supabase: true,
      created: "2026-01-01T00:00:00Z",
    };
    const text = appEnvFile(cfg, app, "pw", ["SUPABASE_URL=http://x/notes_db", "SUPABASE_ANON_KEY=A"]);
    expect(text.split("\n").filter((l) => l.startsWith("SUPABASE_"))).toEqual([
      "SUPABASE_URL=http://x/notes_db",
      "SUPABASE_ANON_KEY=A",
    ]);
    expect(
      appEnvFile(cfg, { ...app, supabase: false }, "pw")
        .split("\n")
        .filter((l) => l.startsWith("SUPABASE_")),
    ).toEqual(["SUPABASE_URL=http://127.0.1.1:16010"]);
  });

  test("ENV= names an environment or a database; anything else is refused naming the known ones", () => {
    expect(environmentDatabase(cfg, "staging", envNameOf)).toBe("orchestrator_ai_staging");
    expect(environmentDatabase(cfg, "orchestrator_ai_production", envNameOf)).toBe("orchestrator_ai_production");
    expect(() => environmentDatabase(cfg, "qa", envNameOf)).toThrow(
      'ENV="qa" is not an environment of this stack (dev, staging, production)',
    );
  });
});

describe("API keys per database", () => {
  const now = 1_800_000_000;
  test("signed with the database's own secret, one per role", async () => {
    const k = await apiKeysFor(cfg, "orchestrator_ai_staging", {}, now);
    expect((await verifyApiKey(k.anon, SECRET_B, "anon", now)).ok).toBe(true);
    expect((await verifyApiKey(k.serviceRole, SECRET_B, "service_role", now)).ok).toBe(true);
    expect((await verifyApiKey(k.anon, SECRET_A, "anon", now)).ok).toBe(false);
  });

  test("kept while they verify and have over 30 days left; re-signed after a rotation or near their end", async () => {
    const k = await apiKeysFor(cfg, "orchestrator_ai_dev", {}, now);
    expect(await apiKeysFor(cfg, "orchestrator_ai_dev", k, now + 3600)).toEqual(k);
    const foreign = { anon: await signApiKey(SECRET_B, "anon", now), serviceRole: k.serviceRole };
    const fixed = await apiKeysFor(cfg, "orchestrator_ai_dev", foreign, now + 3600);
    expect([fixed.anon === foreign.anon, fixed.serviceRole === k.serviceRole]).toEqual([false, true]);
    const late = now + (365 - 29) * 24 * 3600;
    const renewed = await apiKeysFor(cfg, "orchestrator_ai_dev", k, late);
    expect(decodeClaims(renewed.anon)?.iat).toBe(late);
  });
});

describe("DCS parameters", () => {
  test("only what differs is PATCHed (compared as text, as Patroni stores what it is given)", () => {
    expect(
      parameterDiff(
        { wal_level: "replica", archive_timeout: 60, archive_mode: "on" },
        { wal_level: "logical", archive_timeout: "60", archive_mode: "on" },
      ),
    ).toEqual({ wal_level: "logical" });
    expect(parameterDiff({}, { wal_level: "logical" })).toEqual({ wal_level: "logical" });
  });

  test("replicas restart before the leader", () => {
    expect(
      restartOrder([
        { name: "pg1", role: "leader" },
        { name: "pg2", role: "sync_standby" },
        { name: "pg3", role: "replica" },
      ]).map((m) => m.name),
    ).toEqual(["pg2", "pg3", "pg1"]);
  });
});

describe("the facts table", () => {
  test("every schema a service needs is one we create; every role with settings or grants is a Supabase role", () => {
    const made = SCHEMAS.map((s) => s.schema);
    for (const need of Object.values(SERVICE_NEEDS)) for (const s of need.schemas) expect(made).toContain(s);
    expect([...new Set([...ROLE_SETTINGS.map((r) => r.role), ...DATABASE_GRANTS.map((g) => g.role)])].sort()).toEqual([
      "anon",
      "authenticated",
      "authenticator",
      "supabase_auth_admin",
      "supabase_storage_admin",
    ]);
  });

  test("the bootstrap DCS in patroni.yml.tmpl already has wal_level logical (new clusters need no restart)", () => {
    expect(readFileSync(join(ROOT_DIR, "patroni/patroni.yml.tmpl"), "utf8")).toMatch(/^ {8}wal_level: logical$/m);
  });
});
