/**
 * One API per Supabase-enabled database in the docker runtime (issue 13), for a stack with the 3
 * environment databases and one --supabase app: every database's own GoTrue, PostgREST, Storage and
 * Realtime against upstream's required variables (compose-facts.ts), each logging in to its own
 * database, and Kong routing every SUPABASE_URL (as supabase-js resolves it) to that database's
 * services with the same paths the native nginx serves. The rendered files are compared with
 * goldens (tests/unit/golden/compose-apis, written only by `make golden`).
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { apiComposeVars, apiComposeYaml, apiDatabases, apiVar } from "../../scripts/lib/compose-apis";
import { verifyApiKey } from "../../scripts/lib/jwt";
import { renderEnvFile } from "../../scripts/lib/supabase/environments";
import { apiKeysFor } from "../../scripts/lib/supabase/keys";
import { renderKongYaml } from "../../scripts/lib/compose-kong";
import { composeFileArgs } from "../../scripts/lib/compose-files";
import { validateCompose } from "../../scripts/lib/compose-schema";
import { composeEnv } from "../../scripts/lib/docker";
import { run } from "../../scripts/lib/exec";
import { ROOT_DIR } from "../../scripts/lib/config";
import { renderSupabaseRoutes, supabaseRoutes, supabaseUrlFor } from "../../scripts/lib/supabase/routes";
import { APIS_APP, apisStack } from "../golden-apis";
import { readGolden } from "../golden";
import * as F from "./compose-facts";
import { devYml, envOf, type KongDoc, mergeDocs, render } from "./compose-render";

const { cfg, apis } = apisStack();
const env = await composeEnv(cfg, "/state/rendered-docker", [APIS_APP]);
const apisYml = apiComposeYaml(apis);
const doc = mergeDocs(render(devYml, env), render(apisYml, env));
const kongYml = renderKongYaml(apis, cfg.databases[0]!);
const kong = YAML.parse(kongYml) as KongDoc;
const DBS = ["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production", "crm_db"];

/** supabase-js 2.109.0 (dist/index.mjs, SupabaseClient constructor): new URL("rest/v1", ensureTrailingSlash(supabaseUrl)). */
const supabaseJsEndpoint = (supabaseUrl: string, path: string) =>
  new URL(path, supabaseUrl.endsWith("/") ? supabaseUrl : `${supabaseUrl}/`).href;

/** Kong 2.8's prefix routing: the longest route path that prefixes the request; strip_path drops it. */
function kongRoute(path: string): { service: KongDoc["services"][number]; upstream: string } {
  const hits = kong.services.flatMap((s) =>
    s.routes.flatMap((r) => r.paths.filter((p) => path.startsWith(p)).map((p) => ({ s, p }))),
  );
  const best = hits.sort((a, b) => b.p.length - a.p.length)[0]!;
  return { service: best.s, upstream: new URL(path.slice(best.p.length), best.s.url).href };
}

/** The user and database a service logs in as (its URL or DB_* settings). */
function login(e: Record<string, string>) {
  const url = e.GOTRUE_DB_DATABASE_URL ?? e.PGRST_DB_URI ?? e.DATABASE_URL;
  if (url) {
    const u = new URL(url);
    return { user: decodeURIComponent(u.username), host: `${u.hostname}:${u.port}`, db: u.pathname.slice(1) };
  }
  return { user: e.DB_USER!, host: `${e.DB_HOST}:${e.DB_PORT}`, db: e.DB_NAME! };
}

describe("the stack's Supabase-enabled databases each get their own services", () => {
  test("the ladder's three databases and the --supabase app, in the native routes' order", () => {
    expect(apis.map((d) => d.database)).toEqual(DBS);
    expect(supabaseRoutes(cfg, [APIS_APP]).map((r) => r.database)).toEqual(DBS);
    expect(apis.map((d) => d.envFile.replace(`${ROOT_DIR}/`, ""))).toEqual([
      "envs/app/.env.dev",
      "envs/app/.env.staging",
      "envs/app/.env.production",
      "envs/.env.crm",
    ]);
  });
  test("a database name too long for a DNS label (realtime-<name>) is refused, naming it and the limit", () => {
    const long = "a".repeat(55);
    expect(() => apiDatabases(cfg, [{ ...APIS_APP, database: long }])).toThrow(
      `database ${long} (55 characters) is too long for the docker runtime's service host names`,
    );
    expect(apiDatabases(cfg, [{ ...APIS_APP, database: "a".repeat(54) }]).length).toBe(4);
  });
  test("the rendered override and Kong config are the reviewed goldens", () => {
    expect(apisYml).toBe(readGolden("compose-apis", "compose.apis.yml"));
    expect(kongYml).toBe(readGolden("compose-apis", "kong.yml"));
  });
  test("the override is valid Compose with every variable set by compose.env", () => {
    expect(validateCompose(apisYml, env)).toEqual([]);
  });
  for (const db of DBS) {
    const slug = db.replace(/_/g, "-");
    test(`${db}: auth, rest, storage, realtime have every variable upstream requires (0 missing)`, () => {
      for (const kind of ["auth", "rest", "storage", "realtime"]) {
        const e = envOf(doc.services[`${kind}-${slug}`]!);
        const missing = F.REQUIRED_ENV[kind]!.vars.filter(
          (alts) => !alts.some((n) => e[n] !== undefined && e[n] !== ""),
        );
        expect({ kind, missing }).toEqual({ kind, missing: [] });
      }
    });
    test(`${db}: each service logs in to ${db} through HAProxy as its own role`, () => {
      const users = {
        auth: "supabase_auth_admin",
        rest: "authenticator",
        storage: "supabase_storage_admin",
        realtime: "postgres",
      };
      for (const [kind, user] of Object.entries(users))
        expect({ kind, ...login(envOf(doc.services[`${kind}-${slug}`]!)) }).toEqual({
          kind,
          user,
          host: "haproxy:5000",
          db,
        });
    });
    test(`${db}: its own JWT secret everywhere, its own keys for Storage, Storage on its own PostgREST and volume`, () => {
      const jwt = cfg.secrets[`JWT_SECRET_${db.toUpperCase()}` as keyof typeof cfg.secrets];
      const [a, r, s, rt] = ["auth", "rest", "storage", "realtime"].map((k) => envOf(doc.services[`${k}-${slug}`]!));
      expect([a!.GOTRUE_JWT_SECRET, r!.PGRST_JWT_SECRET, s!.PGRST_JWT_SECRET, rt!.API_JWT_SECRET]).toEqual([
        jwt,
        jwt,
        jwt,
        jwt,
      ]);
      expect([s!.ANON_KEY, s!.SERVICE_KEY]).toEqual([env[apiVar("ANON_KEY", db)], env[apiVar("SERVICE_KEY", db)]]);
      expect(s!.POSTGREST_URL).toBe(`http://rest-${slug}:${F.SERVICE_PORTS.rest!.port}`);
      expect(doc.services[`storage-${slug}`]!.volumes).toEqual([`storage-${slug}:/var/lib/storage`]);
      expect(r!.PGRST_DB_SCHEMAS).toBe("public,storage,graphql_public");
    });
    test(`${db}: GoTrue's external URL and mail links are under /${db}/auth/v1 (Kong's open verify route)`, () => {
      const a = envOf(doc.services[`auth-${slug}`]!);
      const base = supabaseUrlFor(cfg, db);
      expect(a.API_EXTERNAL_URL).toBe(supabaseJsEndpoint(base, "auth/v1"));
      for (const k of F.GOTRUE_MAILER_PATHS) {
        const link = F.gotrueMailLink(a.API_EXTERNAL_URL!, a[k]!);
        expect({ k, link }).toEqual({ k, link: `${base}${F.GOTRUE_VERIFY_PATH}` });
        expect(kongRoute(new URL(link).pathname).upstream).toBe(`http://auth-${slug}:9999/verify`);
      }
    });
    test(`${db}: Realtime seeds the tenant Kong's Host names, for ${db}`, () => {
      const rt = doc.services[`realtime-${slug}`]!;
      const { service } = kongRoute(
        new URL(supabaseJsEndpoint(supabaseUrlFor(cfg, db), "realtime/v1")).pathname + "/websocket",
      );
      const host = new URL(service.url).hostname;
      expect(F.REALTIME.tenantOf(host)).toBe(F.REALTIME.seededTenant);
      expect((rt.networks as Record<string, { aliases: string[] }>).stack!.aliases).toEqual([host]);
      expect(envOf(rt).SEED_SELF_HOST).toBe("true");
      expect(envOf(rt).ERL_AFLAGS).toBe(F.REALTIME.ipv4ErlAflags);
    });
  }
});

describe("Kong knows the very keys the env files hold (it compares keys literally)", () => {
  test("apiComposeVars takes each database's keys from its env file while they verify, else signs new ones", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-compose-keys-"));
    try {
      const [dev, staging] = apis;
      // signed a day ago: a fresh signature (this second) would differ
      const keys = await apiKeysFor(cfg, dev!.database, {}, Math.floor(Date.now() / 1000) - 86_400);
      const file = join(dir, ".env.dev");
      writeFileSync(
        file,
        renderEnvFile(cfg, { database: dev!.database, role: dev!.database, password: "pw-0123456789", keys }),
      );
      const vars = await apiComposeVars(cfg, [
        { ...dev!, envFile: file },
        { ...staging!, envFile: join(dir, "none") },
      ]);
      expect([vars[apiVar("ANON_KEY", dev!.database)], vars[apiVar("SERVICE_KEY", dev!.database)]]).toEqual([
        keys.anon,
        keys.serviceRole,
      ]);
      expect(vars[apiVar("JWT_SECRET", staging!.database)]).toBe(cfg.secrets.JWT_SECRET_ORCHESTRATOR_AI_STAGING!);
      expect(
        await verifyApiKey(
          vars[apiVar("ANON_KEY", staging!.database)]!,
          cfg.secrets.JWT_SECRET_ORCHESTRATOR_AI_STAGING!,
          "anon",
        ),
      ).toMatchObject({ ok: true });
      // the env file's SUPABASE_URL is the prefix Kong routes to this database
      const url = /^SUPABASE_URL=(.*)$/m.exec(readFileSync(file, "utf8"))![1]!;
      expect(kongRoute(`${new URL(supabaseJsEndpoint(url, "rest/v1")).pathname}/todos`).upstream).toBe(
        `http://rest-${dev!.slug}:3000/todos`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Kong routes every SUPABASE_URL to its own database's services, as the native nginx does", () => {
  const services = {
    "auth/v1": "auth",
    "rest/v1": "rest",
    "storage/v1": "storage",
    "realtime/v1": "realtime",
  } as const;
  const nativeConf = renderSupabaseRoutes(
    readFileSync(join(ROOT_DIR, "nginx/supabase-routes.conf.tmpl"), "utf8"),
    supabaseRoutes(cfg, [APIS_APP]),
  );
  const nativeLocations = [...nativeConf.matchAll(/location \^~ (\S+) \{/g)].map((m) => m[1]!);
  for (const db of DBS) {
    const slug = db.replace(/_/g, "-");
    test(`${db}: supabase-js's endpoints reach ${slug}'s services, prefix stripped`, () => {
      const base = supabaseUrlFor(cfg, db);
      for (const [path, kind] of Object.entries(services)) {
        // supabase-js appends its own paths: /rest/v1/todos, /auth/v1/token, /realtime/v1/websocket
        const req = `${new URL(supabaseJsEndpoint(base, path)).pathname}/x`;
        const port = F.SERVICE_PORTS[kind]!.port;
        const host = kind === "realtime" ? `realtime-dev.realtime-${slug}` : `${kind}-${slug}`;
        const tail = kind === "realtime" ? "/socket/x" : "/x";
        expect({ req, upstream: kongRoute(req).upstream }).toEqual({ req, upstream: `http://${host}:${port}${tail}` });
        // the same location natively
        expect(nativeLocations).toContain(`/${db}/${path}/`);
      }
    });
    test(`${db}: only its own keys open its routes (ACL groups of its consumers)`, () => {
      for (const path of ["auth/v1", "rest/v1", "realtime/v1"]) {
        const { service } = kongRoute(`/${db}/${path}/x`);
        const acl = service.plugins!.find((p) => p.name === "acl")!;
        expect({ path, allow: acl.config.allow }).toEqual({ path, allow: [`admin-${slug}`, `anon-${slug}`] });
      }
    });
  }
  test("each consumer's key, after Kong's `eval echo`, is its database's key from compose.env", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-compose-apis-"));
    try {
      writeFileSync(join(dir, "kong.yml"), kongYml);
      const kongEnv = envOf(doc.services.kong!);
      const out = await run(["bash", "-c", 'eval "echo \\"$(cat "$KONG_FILE")\\""'], {
        env: { ...kongEnv, KONG_FILE: join(dir, "kong.yml"), PATH: process.env.PATH! },
      });
      const k = YAML.parse(out.stdout) as {
        _format_version: string;
        consumers: { username: string; keyauth_credentials?: { key: string }[] }[];
        acls: { consumer: string; group: string }[];
      };
      expect(k._format_version).toBe("2.1");
      const keyOf = (u: string) => k.consumers.find((c) => c.username === u)!.keyauth_credentials![0]!.key;
      for (const db of DBS) {
        const slug = db.replace(/_/g, "-");
        expect([keyOf(`${slug}-anon`), keyOf(`${slug}-service`)]).toEqual([
          env[apiVar("ANON_KEY", db)]!,
          env[apiVar("SERVICE_KEY", db)]!,
        ]);
      }
      // no key twice (Kong refuses a declarative config with a duplicate credential)
      const keys = k.consumers.flatMap((c) => c.keyauth_credentials ?? []).map((c) => c.key);
      expect(new Set(keys).size).toBe(DBS.length * 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("names Kong requires unique are unique (services, routes, consumers) and every path is absolute", () => {
    const routes = kong.services.flatMap((s) => s.routes as unknown as { name: string; paths: string[] }[]);
    const names = [kong.services.map((s) => s.name), routes.map((r) => r.name)];
    for (const list of names) expect(new Set(list).size).toBe(list.length);
    const paths = routes.flatMap((r) => r.paths);
    expect(new Set(paths).size).toBe(paths.length);
    for (const p of paths) expect(p).toMatch(/^\//);
    expect(kong.services.length).toBe(DBS.length * 7 + 2);
  });
  test("postgres-meta (/pg/) takes the main database's service key, the one Studio is given", () => {
    const { service } = kongRoute("/pg/tables");
    expect(service.plugins!.find((p) => p.name === "acl")!.config.allow).toEqual(["admin-orchestrator-ai-dev"]);
    expect(env.SUPABASE_SERVICE_KEY).toBe(env[apiVar("SERVICE_KEY", "orchestrator_ai_dev")]!);
    expect(envOf(doc.services.studio!).SUPABASE_URL).toBe("http://kong:8000/orchestrator_ai_dev");
  });
});

describe("every compose command passes the override once it is rendered", () => {
  test("compose/dev.yml (+ dev-members.yml) alone, then with compose.apis.yml", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-compose-files-"));
    try {
      const dev = join(ROOT_DIR, "compose", "dev.yml");
      const members = join(ROOT_DIR, "compose", "dev-members.yml"); // DOCKER_PUBLISH_MEMBERS (auto: on here)
      expect(cfg.docker.publishMembers).toBe(process.platform !== "darwin");
      const base = cfg.docker.publishMembers ? ["-f", dev, "-f", members] : ["-f", dev];
      expect(composeFileArgs(cfg, dir)).toEqual(base);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "compose.apis.yml"), apisYml);
      expect(composeFileArgs(cfg, dir)).toEqual([...base, "-f", join(dir, "compose.apis.yml")]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("compose v1 itself merges the overrides over compose/dev.yml (docker-compose 1.29 `config`, no engine)", () => {
  const have = Bun.which("docker-compose") !== null;
  test.skipIf(!have)(
    "every per-database service, Kong's keys added to its own environment, the monitoring services",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "pgp-compose-merge-"));
      try {
        const mon = (await import("../../scripts/lib/monitoring/compose")).monitoringComposeYaml(cfg, dir);
        writeFileSync(
          join(dir, "compose.env"),
          `${Object.entries(env)
            .map(([k, v]) => `${k}=${v}`)
            .join("\n")}\n`,
        );
        writeFileSync(join(dir, "compose.apis.yml"), apisYml);
        writeFileSync(join(dir, "compose.monitoring.yml"), mon);
        const r = await run(
          [
            "docker-compose",
            "-p",
            "pgp-merge",
            ...composeFileArgs(cfg, dir),
            "--env-file",
            join(dir, "compose.env"),
            "config",
          ],
          { nothrow: true, timeoutMs: 60_000 },
        );
        expect({ code: r.code, err: r.code ? r.stderr : "" }).toEqual({ code: 0, err: "" });
        const merged = YAML.parse(r.stdout) as { services: Record<string, { environment?: Record<string, string> }> };
        const perDb = DBS.flatMap((db) =>
          ["auth", "rest", "realtime", "storage"].map((k) => `${k}-${db.replace(/_/g, "-")}`),
        );
        for (const s of [...perDb, "kong", "studio", "meta", "prometheus", "alertmanager", "grafana"])
          expect({ s, there: s in merged.services }).toEqual({ s, there: true });
        const k = merged.services.kong!.environment!;
        // dev.yml's own variables kept, the override's added
        expect(k.KONG_DATABASE).toBe("off");
        for (const db of DBS) expect(k[apiVar("ANON_KEY", db)]).toBe(env[apiVar("ANON_KEY", db)]!);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
