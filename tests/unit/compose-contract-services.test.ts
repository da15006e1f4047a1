/**
 * The compose files against upstream's facts, part 2: the database each service needs (against
 * scripts/lib/supabase/requirements.ts when it is there), Realtime's tenant and distribution,
 * Studio and postgres-meta, the client deploys' routes, WAL archiving, GoTrue's mailer, and image
 * names from settings (issue 13 items 5-9, issue 21).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { apiSlug } from "../../scripts/lib/compose-apis";
import { monitoringComposeYaml } from "../../scripts/lib/monitoring/compose";
import { IMAGE_KEYS } from "../../scripts/lib/compose-settings";
import { renderSites } from "../../scripts/lib/deploy/nginx";
import { dockerPgbackrestConf, ensureDockerStanza, STANZA_SNIPPET } from "../../scripts/lib/compose-pgbackrest";
import * as F from "./compose-facts";
import {
  cfg,
  clients,
  config,
  dev,
  devEnvText,
  devYml,
  envOf,
  rendered,
  RENDERED,
  root,
  service,
  kong,
  renderDev,
  apisYml,
  ENV_DBS,
  mainPath,
} from "./compose-render";
import { ensureSecrets, readSecrets } from "../../scripts/lib/secrets";
import { parseConfig } from "../../scripts/lib/config";
import { acme } from "../golden";

/** The user and database each service logs in as (from its URL or DB_* settings). */
function login(e: Record<string, string>): { user: string; host: string; db: string } | undefined {
  const url = e.GOTRUE_DB_DATABASE_URL ?? e.PGRST_DB_URI ?? e.DATABASE_URL;
  if (url) {
    const u = new URL(url);
    return { user: decodeURIComponent(u.username), host: `${u.hostname}:${u.port}`, db: u.pathname.slice(1) };
  }
  if (e.DB_USER) return { user: e.DB_USER, host: `${e.DB_HOST}:${e.DB_PORT}`, db: e.DB_NAME! };
  if (e.PG_META_DB_USER)
    return { user: e.PG_META_DB_USER, host: `${e.PG_META_DB_HOST}:${e.PG_META_DB_PORT}`, db: e.PG_META_DB_NAME! };
  return undefined;
}

const requirementsPath = join(root, "scripts/lib/supabase/requirements.ts");
const req = existsSync(requirementsPath) ? await import(requirementsPath) : undefined;

describe("item 5: the database each service needs (schemas, roles)", () => {
  const byService = {
    auth: "gotrue",
    rest: "postgrest",
    storage: "storage",
    realtime: "realtime",
    meta: "meta",
  } as const;
  test("every database client logs in to the main environment database through HAProxy's read-write port", () => {
    for (const svc of F.DATABASE_CLIENTS)
      expect({ svc, ...login(envOf(service(svc))) }).toMatchObject({
        svc,
        host: "haproxy:5000",
        db: cfg.databases[0]!,
      });
  });
  test("PostgREST's db-schemas are all schemas the prepared database has (else PGRST002 on every request)", () => {
    const schemas = envOf(service("rest")).PGRST_DB_SCHEMAS!.split(",");
    expect(schemas).toEqual(["public", "storage", "graphql_public"]);
    if (!req)
      return console.log(
        `requirements.ts not on this branch: the database must have schemas ${schemas.join(", ")} (USAGE for anon, authenticated, service_role)`,
      );
    const have = (req.SCHEMAS as { schema: string }[]).map((s) => s.schema);
    for (const s of schemas) expect(have).toContain(s);
  });
  test("each service's login role and schemas match the database side's requirements", () => {
    const listed = F.DATABASE_CLIENTS.map((svc) => ({ svc, user: login(envOf(service(svc)))!.user }));
    if (!req) {
      console.log(
        "requirements.ts not on this branch; the database must provide:\n" +
          listed.map((l) => `  ${l.svc}: login ${l.user}`).join("\n") +
          "\n  auth: schema auth owned by supabase_auth_admin, its search_path auth\n  storage: CREATE on the database (or schema storage owned by supabase_storage_admin), member of authenticator\n  realtime: schema _realtime, publication supabase_realtime, wal_level logical",
      );
      expect(listed).toEqual([
        { svc: "auth", user: "supabase_auth_admin" },
        { svc: "rest", user: "authenticator" },
        { svc: "realtime", user: "postgres" },
        { svc: "storage", user: "supabase_storage_admin" },
        { svc: "meta", user: "postgres" },
      ]);
      return;
    }
    for (const l of listed)
      expect({ svc: l.svc, user: l.user }).toEqual({
        svc: l.svc,
        user: req.SERVICE_NEEDS[byService[l.svc as keyof typeof byService]].connectsAs,
      });
    expect(envOf(service("realtime")).DB_AFTER_CONNECT_QUERY).toBe(
      `SET search_path TO ${req.SERVICE_NEEDS.realtime.schemas[0]}`,
    );
  });
});

describe("item 6: Realtime finds its tenant and starts on an IPv4 network", () => {
  test("the Host Kong sends (its upstream's host name) names the seeded tenant, and reaches the realtime service", () => {
    const url = new URL(
      kong.services.find((s) => s.routes.some((r) => r.paths.includes(mainPath("/realtime/v1/"))))!.url,
    );
    expect(F.REALTIME.tenantOf(url.hostname)).toBe(F.REALTIME.seededTenant);
    const aliases = Object.values(
      (service("realtime").networks ?? {}) as Record<string, { aliases?: string[] }>,
    ).flatMap((n) => n?.aliases ?? []);
    expect(aliases).toContain(url.hostname);
    expect(envOf(service("realtime")).SEED_SELF_HOST).toBe("true");
  });
  test("the image's IPv6 distribution flags are overridden", () => {
    const e = envOf(service("realtime"));
    expect(e.ERL_AFLAGS).toBe(F.REALTIME.ipv4ErlAflags);
    expect(e.ERL_AFLAGS).not.toBe(F.REALTIME.imageErlAflags);
    expect(e.DNS_NODES).toBe("''");
  });
});

describe("item 7: Studio is routed and reaches postgres-meta with a working connection", () => {
  test("dev: nginx / -> Kong, Kong / -> studio:3000 behind basic-auth", () => {
    expect(rendered("nginx/nginx.conf")).toMatch(/upstream supabase_gateway \{\s+server kong:8000;/);
    const dash = kong.services.find((s) => s.routes.some((r) => r.paths.includes("/")))!;
    expect(dash.url).toBe("http://studio:3000/");
    expect(dash.plugins!.map((p) => p.name)).toContain("basic-auth");
  });
  const docs = [{ env: "dev", doc: dev }, ...clients.map((c) => ({ env: c.env, doc: c.doc }))];
  test("Studio encrypts the connection with the key meta decrypts, to the database meta serves, as a role that exists", () => {
    for (const { env, doc } of docs) {
      const s = envOf(doc.services.studio!);
      const m = envOf(doc.services.meta!);
      expect({
        env,
        key: s.PG_META_CRYPTO_KEY,
        host: `${s.POSTGRES_HOST}:${s.POSTGRES_PORT}`,
        db: s.POSTGRES_DB,
        user: s.POSTGRES_USER_READ_WRITE,
      }).toEqual({
        env,
        key: m.CRYPTO_KEY,
        host: `${m.PG_META_DB_HOST}:${m.PG_META_DB_PORT}`,
        db: m.PG_META_DB_NAME,
        user: "postgres",
      });
      expect(s.PG_META_CRYPTO_KEY).not.toBe("SAMPLE_KEY");
      expect(new URL(s.STUDIO_PG_META_URL!).port).toBe(String(m.PG_META_PORT));
    }
  });
});

describe("item 8: client deploys route the API to services that answer; WAL archiving under docker", () => {
  const sites = renderSites(root, acme(), { tlsCert: "/c", tlsKey: "/k", webroot: "/w" });
  test("staging/production: /rest/v1/ and /auth/v1/ go to the environment's own PostgREST and GoTrue; nothing goes to the native placeholder", () => {
    for (const c of clients) {
      const site = sites.find((s) => s.env === c.env)!.content;
      expect(site).toContain(`location /rest/v1/ {\n        proxy_pass http://127.0.0.1:${c.vars.REST_PORT}/;`);
      expect(site).toContain(`location /auth/v1/ {\n        proxy_pass http://127.0.0.1:${c.vars.AUTH_PORT}/;`);
      expect(String(envOf(c.doc.services.rest!).PGRST_SERVER_PORT)).toBe(c.vars.REST_PORT!);
      expect(String(envOf(c.doc.services.auth!).PORT)).toBe(c.vars.AUTH_PORT!);
      // the stack's own nginx gateway (natively a placeholder answering 502) is no longer an upstream
      expect(site).not.toMatch(/_supabase\b/);
    }
  });
  test("services a client environment does not run answer 503 with a reason, not a 502 from a placeholder", () => {
    for (const s of sites.filter((x) => x.env)) {
      const down = s.env === "dev" ? "rest\\|auth\\|realtime\\|storage" : "realtime\\|storage";
      expect(s.content).toMatch(
        new RegExp(
          `location ~ \\^/\\(${down}\\)/v1/ \\{\\n\\s+default_type application/json;\\n\\s+return 503 '\\{"error":"[^"]+"\\}';`,
        ),
      );
    }
  });
  test("archive_command's pgBackRest config path exists in the member containers", () => {
    const cmd = /archive_command: '([^']+)'/.exec(rendered("pg1/patroni.yml"))![1]!;
    const conf = /--config="\$PWD\/([^"]+)"/.exec(cmd)![1]!;
    const data = (YAML.parse(rendered("pg1/patroni.yml")) as { postgresql: { data_dir: string } }).postgresql.data_dir;
    const resolved = join(data, conf);
    for (const m of ["pg1", "pg2", "pg3"]) {
      const targets = (dev.services[m]!.volumes ?? []).map((v) => v.split(":")[1]!);
      expect({ m, mounted: targets.some((t) => resolved === t || resolved.startsWith(t + "/")) }).toEqual({
        m,
        mounted: true,
      });
    }
    expect(dockerPgbackrestConf(cfg)).toMatch(new RegExp(`\\[${cfg.clusterName}\\]\\n(#.*\\n)*pg1-path=${data}\\n`));
  });
});

describe("item 8: the pgBackRest stanza is created on the leader under docker", () => {
  // `<compose> exec -T <member>` is replaced by running the same snippet under the real dash, with a stand-in
  // pgbackrest on PATH that answers like a replica on pg1 and checks the password it was given (stdin, not argv).
  const pw = cfg.secrets.POSTGRES_PASSWORD;
  const bin = mkdtempSync(join(tmpdir(), "pgp-compose-stanza-"));
  writeFileSync(
    join(bin, "pgbackrest"),
    `#!/bin/sh\ncase " $FAIL " in *" $MEMBER "*) echo "ERROR: [056]: unable to find primary cluster - cannot proceed" >&2; exit 56;; esac\n[ "$PGPASSWORD" = "${pw}" ] || { echo "wrong password" >&2; exit 9; }\ncase "$*" in *" check") [ -z "$NOARCHIVE" ] || { echo "ERROR: [082]: WAL segment 000000010000000000000003 was not archived before the 60000ms timeout" >&2; exit 82; };; esac\necho "$@" >> "${bin}/args-$MEMBER"\n`,
    { mode: 0o755 },
  );
  const fake =
    (fail: string, noArchive = "") =>
    (...a: string[]) => {
      expect(a.slice(0, 4)).toEqual(["exec", "-T", a[2]!, "sh"]);
      return [
        "env",
        `MEMBER=${a[2]}`,
        `FAIL=${fail}`,
        `NOARCHIVE=${noArchive}`,
        `PATH=${bin}:${process.env.PATH}`,
        "dash",
        ...a.slice(4),
      ];
    };
  afterAll(() => rmSync(bin, { recursive: true, force: true }));
  test("tried member by member; the first that can (the primary) creates it", async () => {
    expect(await ensureDockerStanza(cfg, fake("pg1"))).toBe(
      `pgBackRest stanza ${cfg.backup.stanza} (on pg2); WAL archiving checked`,
    );
    // then `pgbackrest check` on the same member: a WAL switch archived through Patroni's archive_command
    expect(readFileSync(join(bin, "args-pg2"), "utf8")).toBe(
      `--config=/home/pgbackrest/pgbackrest.conf --stanza=${cfg.backup.stanza} stanza-create\n` +
        `--config=/home/pgbackrest/pgbackrest.conf --stanza=${cfg.backup.stanza} --archive-timeout=60 check\n`,
    );
    rmSync(join(bin, "args-pg2"));
    expect(STANZA_SNIPPET).not.toContain(pw);
  });
  test("the stanza exists but WAL does not reach the repository: ARCHIVE_FAILED with pgBackRest's own words", async () => {
    await expect(ensureDockerStanza(cfg, fake("", "1"))).rejects.toThrow(
      `pgBackRest stanza ${cfg.backup.stanza} exists but WAL archiving does not work (pgbackrest check on pg1): ERROR: [082]: WAL segment 000000010000000000000003 was not archived before the 60000ms timeout`,
    );
  });
  test("no member can: STANZA_FAILED with pgBackRest's own words", async () => {
    await expect(ensureDockerStanza(cfg, fake("pg1 pg2 pg3"))).rejects.toThrow(
      `pgBackRest could not create stanza ${cfg.backup.stanza} on any member: ERROR: [056]: unable to find primary cluster - cannot proceed`,
    );
  });
});

describe("item 9: GoTrue's mail links, SMTP and site URL", () => {
  const e = envOf(service("auth"));
  test("mail links land on the database's own open verify route (GoTrue's default /verify is not routed)", () => {
    const main = cfg.databases[0]!;
    const verify = kong.services.find((s) => s.url.endsWith("/verify") && s.url.includes(apiSlug(main)))!;
    for (const k of F.GOTRUE_MAILER_PATHS) {
      const link = F.gotrueMailLink(e.API_EXTERNAL_URL!, e[k]!);
      expect({ k, link }).toEqual({ k, link: `http://127.0.0.1:${cfg.api.port}/${main}${F.GOTRUE_VERIFY_PATH}` });
      expect(verify.routes[0]!.paths).toEqual([new URL(link).pathname]);
    }
    for (const c of clients)
      for (const k of F.GOTRUE_MAILER_PATHS)
        expect({ env: c.env, k, v: envOf(c.doc.services.auth!)[k] }).toEqual({
          env: c.env,
          k,
          v: F.GOTRUE_VERIFY_PATH,
        });
  });
  test("SMTP settings are passed (from settings; no host: sign-ups confirmed at once)", () => {
    for (const k of F.GOTRUE_SMTP) expect(Object.keys(e)).toContain(k);
    expect({ host: e.GOTRUE_SMTP_HOST, autoconfirm: e.GOTRUE_MAILER_AUTOCONFIRM }).toEqual({
      host: "",
      autoconfirm: "true",
    });
  });
  test("the site URL and SMTP host come from the stack's settings", async () => {
    const c2 = config("\nSUPABASE_SITE_URL=https://app.example.com\nSMTP_HOST=mail.example.com\nSMTP_PORT=2525\n");
    const e2 = envOf((await renderDev(c2)).services[`auth-${apiSlug(c2.databases[0]!)}`]!);
    expect({
      site: e2.GOTRUE_SITE_URL,
      host: e2.GOTRUE_SMTP_HOST,
      port: String(e2.GOTRUE_SMTP_PORT),
      autoconfirm: e2.GOTRUE_MAILER_AUTOCONFIRM,
    }).toEqual({ site: "https://app.example.com", host: "mail.example.com", port: "2525", autoconfirm: "false" });
    expect(e.GOTRUE_SITE_URL).toBe("http://127.0.0.1:6100");
  });
});

describe("ports are published on the stack's own addresses (dev-up probes HAProxy there)", () => {
  test("HAPROXY_ADDRESS and the loopback API address of the env file", async () => {
    const text = devEnvText
      .replace("\nHAPROXY_ADDRESS=127.0.0.1\n", "\nHAPROXY_ADDRESS=127.0.25.1\n")
      .replace("\nAPI_ADDRESS=127.0.0.1\n", "\nAPI_ADDRESS=127.0.25.1\n");
    const c2 = parseConfig(text, {
      file: "envs/dev.env",
      stack: "dev",
      rootDir: root,
      isRoot: false,
      secrets: cfg.secrets,
    });
    expect(c2.haproxy.address).toBe("127.0.25.1");
    const d2 = await renderDev(c2);
    expect(d2.services.haproxy!.ports).toEqual([
      `127.0.25.1:${c2.haproxy.rwPort}:5000`,
      `127.0.25.1:${c2.haproxy.roPort}:5001`,
      `127.0.25.1:${c2.haproxy.statsPort}:7000`,
    ]);
    expect(d2.services.nginx!.ports).toEqual([`127.0.25.1:${c2.api.port}:8080`]);
    expect(envOf(d2.services[`auth-${apiSlug(c2.databases[0]!)}`]!).API_EXTERNAL_URL).toBe(
      `http://127.0.25.1:${c2.api.port}/${c2.databases[0]}/auth/v1`,
    );
  });
});

describe("item 9: SMTP_PASS lives in the stack's secrets file", () => {
  test("ensureSecrets keeps it (never generates it), and it reaches GoTrue", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-compose-secrets-"));
    try {
      const file = join(dir, ".secrets.dev.env");
      writeFileSync(file, "SMTP_PASS=smtp-password-0123456789\n", { mode: 0o600 });
      const { secrets, created } = ensureSecrets(file, ENV_DBS);
      expect(created).not.toContain("SMTP_PASS");
      expect(readFileSync(file, "utf8")).toContain("\nSMTP_PASS=smtp-password-0123456789\n");
      expect(readSecrets(file)).toMatchObject({ SMTP_PASS: "smtp-password-0123456789" });
      const c2 = parseConfig(devEnvText, {
        file: "envs/dev.env",
        stack: "dev",
        rootDir: root,
        isRoot: false,
        secrets: { ...secrets },
      });
      expect(envOf((await renderDev(c2)).services[`auth-${apiSlug(c2.databases[0]!)}`]!).GOTRUE_SMTP_PASS).toBe(
        "smtp-password-0123456789",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("issue 21: image names come from settings, defaulting to the pinned upstream images", () => {
  const pinned = (text: string) =>
    Object.fromEntries([...text.matchAll(/image: "?\$\{(IMAGE_[A-Z_]+):-([^}]+)\}/g)].map((m) => [m[1]!, m[2]!]));
  test("every image: line of every compose file reads an IMAGE_* variable with a pinned default", () => {
    const monYml = monitoringComposeYaml(cfg, RENDERED);
    for (const text of [devYml, apisYml, monYml, ...clients.map((c) => c.text)]) {
      const lines = text.split("\n").filter((l) => /^\s+image:/.test(l));
      for (const l of lines) expect(l).toMatch(/image: "?\$\{IMAGE_[A-Z_]+:-[^}]+:[\w.-]*\d[\w.-]*\}"?$/);
    }
    expect(Object.keys(pinned(devYml + apisYml + monYml)).sort()).toEqual([...IMAGE_KEYS].sort());
    expect(pinned(devYml + apisYml)).toMatchObject({
      IMAGE_GOTRUE: "supabase/gotrue:v2.164.0",
      IMAGE_POSTGREST: "postgrest/postgrest:v12.2.3",
      IMAGE_REALTIME: "supabase/realtime:v2.33.58",
      IMAGE_KONG: "kong:2.8.1",
    });
  });
  test("IMAGE_PATRONI=localhost/pgp-patroni:15 in the env file changes the rendered image and nothing else", async () => {
    const c2 = config("\nIMAGE_PATRONI=localhost/pgp-patroni:15\n");
    const d2 = await renderDev(c2);
    expect([d2.services.pg1!.image, d2.services.pg2!.image, d2.services.pg3!.image]).toEqual(
      Array(3).fill("localhost/pgp-patroni:15"),
    );
    expect(d2.services.etcd1!.image).toBe(dev.services.etcd1!.image!);
    expect(() => config("\nIMAGE_KONG=Kong Latest\n")).toThrow(
      "IMAGE_KONG: must be an image reference like registry/name:tag",
    );
  });
});
