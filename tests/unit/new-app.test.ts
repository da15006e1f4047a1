import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appEnvPath, appNginxPath, loadApps, registryPath, saveApps, type AppEntry } from "../../scripts/lib/apps";
import { parseConfig, ROOT_DIR, type Config } from "../../scripts/lib/config";
import { withAppsLock, appsLockPath } from "../../scripts/lib/onboard/lock";
import {
  appEnvFile,
  appNameProblem,
  defaultDomain,
  domainProblem,
  nextAppPort,
  nginxTestCmd,
  pgDumpCmd,
  pgRestoreListCmd,
  planApp,
  portProblem,
  renderAppNginx,
  requestProblems,
  sql,
  utcStamp,
} from "../../scripts/lib/onboard/plan";
import { scramMatches, scramVerifier } from "../../scripts/lib/scram";

const cfgFor = (stack: string, rootDir = ROOT_DIR): Config => {
  const c = parseConfig(readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8"), {
    file: "envs/test.env",
    stack,
    rootDir,
    isRoot: false,
  });
  c.secrets = { POSTGRES_PASSWORD: "pw-postgres-0123456789" } as Config["secrets"];
  return c;
};
const cfg = cfgFor("test");
const entry = (name: string, port: number, domain = `${name}.localhost`): AppEntry => ({
  name,
  database: `${name}_db`,
  role: name,
  port,
  domain,
  supabase: false,
  created: "2026-01-01T00:00:00Z",
});

describe("app names", () => {
  test.each(["bookwriter", "hyperarchy", "research_ai", "a1", "x_2_y", "a".repeat(31)])("accepts %p", (name) => {
    expect(appNameProblem(name, cfg)).toBeUndefined();
  });
  // The rule is in every message, so the user knows what to type instead.
  test.each([
    ["", "not a valid app name"],
    ["a", "not a valid app name"],
    ["Bookwriter", "not a valid app name"],
    ["book writer", "not a valid app name"],
    ["book-writer", "not a valid app name"],
    ["1app", "not a valid app name"],
    ["_app", "not a valid app name"],
    ["'; DROP DATABASE postgres; --", "not a valid app name"],
    ['x"y', "not a valid app name"],
    ["app;", "not a valid app name"],
    ["é_app", "not a valid app name"],
    ["a".repeat(32), "not a valid app name"],
    ["postgres", "reserved"],
    ["template0", "reserved"],
    ["template1", "reserved"],
    ["public", "reserved"],
    ["replicator", "reserved"],
    ["rewind_user", "reserved"],
    ["pg_monitor", "pg_"],
    ["anon", "Supabase"],
    ["authenticated", "Supabase"],
    ["service_role", "Supabase"],
    ["authenticator", "Supabase"],
    ["supabase_admin", "Supabase"],
    ["orchestrator_ai_dev", "environment database"],
  ])("rejects %p", (name, why) => {
    const p = appNameProblem(name, cfg);
    expect(p).toContain(why);
    if (why === "not a valid app name") expect(p).toContain("^[a-z][a-z0-9_]{1,30}$");
  });
});

describe("hostnames", () => {
  test.each(["bookwriter.example.com", "app.localhost", "a", "x-1.y-2.z"])("accepts %p", (d) =>
    expect(domainProblem(d)).toBeUndefined(),
  );
  test.each([
    "",
    "Book.example.com",
    "a b",
    "a;b",
    "evil.com; }",
    "-a.com",
    "a-.com",
    "a..b",
    "a_b.com",
    "x".repeat(64) + ".com",
    "host:80",
  ])("rejects %p", (d) => {
    expect(domainProblem(d)).toContain("not a valid hostname");
  });
  // An address (or "localhost") as an app's server_name takes the stack's own plain-HTTP server:
  // `new-app x --domain 127.0.120.1` sent /healthz and /cluster to the app, and every later dev-up
  // failed with "nginx /healthz: not ready after 15 s".
  test.each(["127.0.0.1", "127.0.120.1", "10.1.2.3", "localhost", "1.2"])(
    "rejects the address or machine name %p",
    (d) => {
      expect(domainProblem(d)).toBe(
        `${JSON.stringify(d)} is an address or the machine's own name, not an app's hostname: the stack's own server answers to it (/healthz, /cluster); use a name such as app.localhost`,
      );
    },
  );
  test("default hostname turns underscores into dashes", () => {
    expect(defaultDomain("research_ai")).toBe("research-ai.localhost");
    expect(domainProblem(defaultDomain("research_ai"))).toBeUndefined();
  });
});

describe("port plan", () => {
  // The operator's plan lives in the stack's settings (APP_PORT_PLAN in envs/dev.env), not in library code.
  const PLAN = parseConfig(readFileSync(`${import.meta.dir}/../../envs/dev.env`, "utf8"), {
    file: "envs/dev.env",
    stack: "dev",
    rootDir: "/repo",
    isRoot: false,
  }).appPortPlan;
  test("the dev stack's plan: the seeds' ports", () => {
    expect(PLAN).toEqual({ hyperarchy: 9100, bookwriter: 9200, research_ai: 9300 });
  });
  test("without a plan, every app gets the next free port", () => {
    expect(nextAppPort("hyperarchy", [])).toBe(9400);
  });
  test("seed apps get their planned ports", () => {
    expect(nextAppPort("hyperarchy", [], [], PLAN)).toBe(9100);
    expect(nextAppPort("bookwriter", [], [], PLAN)).toBe(9200);
    expect(nextAppPort("research_ai", [], [], PLAN)).toBe(9300);
  });
  test("other apps get the next free port from 9400 in steps of 100, never a seed's", () => {
    expect(nextAppPort("notes", [], [], PLAN)).toBe(9400);
    expect(nextAppPort("notes", [entry("a", 9400), entry("b", 9500)], [], PLAN)).toBe(9600);
    expect(nextAppPort("notes", [entry("hyperarchy", 9100)], [], PLAN)).toBe(9400);
    expect(nextAppPort("notes", [entry("a", 9400)], [9500], PLAN)).toBe(9600);
  });
  test("a seed whose port is taken moves to the next free one", () => {
    expect(nextAppPort("bookwriter", [entry("other", 9200)], [], PLAN)).toBe(9400);
  });
  test("an app's own entry does not block its port", () => {
    expect(nextAppPort("bookwriter", [entry("bookwriter", 9200)], [], PLAN)).toBe(9200);
  });
  test("port problems", () => {
    expect(portProblem(80, "x", [], cfg)).toContain("1024-65535");
    expect(portProblem(70000, "x", [], cfg)).toContain("1024-65535");
    expect(portProblem(9200.5, "x", [], cfg)).toContain("whole number");
    expect(portProblem(9200, "x", [entry("bookwriter", 9200)], cfg)).toBe(
      "port 9200 is already used by app bookwriter",
    );
    expect(portProblem(cfg.haproxy.rwPort, "x", [], cfg)).toContain("used by the stack itself");
    expect(portProblem(9200, "bookwriter", [entry("bookwriter", 9200)], cfg)).toBeUndefined();
  });
});

describe("planning a request", () => {
  test("infers database, role, port and hostname", () => {
    const a = planApp(cfg, { name: "bookwriter" }, [], new Date("2026-11-21T21:00:00.123Z"));
    expect(a).toEqual({
      name: "bookwriter",
      database: "bookwriter_db",
      role: "bookwriter",
      port: 9200,
      domain: "bookwriter.localhost",
      supabase: false,
      created: "2026-11-21T21:00:00Z",
    });
  });
  test("flags win; an existing entry keeps its values", () => {
    expect(planApp(cfg, { name: "bookwriter", port: 9999, domain: "b.example.com", supabase: true }, []).port).toBe(
      9999,
    );
    const existing = { ...entry("bookwriter", 9200, "b.example.com"), supabase: true };
    expect(planApp(cfg, { name: "bookwriter" }, [existing])).toEqual(existing);
  });
  test("re-running with a different port or hostname is refused, not applied", () => {
    const apps = [entry("bookwriter", 9200)];
    expect(requestProblems(cfg, { name: "bookwriter", port: 9300 }, apps)).toEqual([
      "bookwriter already has port 9200 (asked for 9300)",
    ]);
    expect(requestProblems(cfg, { name: "bookwriter", domain: "x.example.com" }, apps)).toEqual([
      "bookwriter already has hostname bookwriter.localhost (asked for x.example.com)",
    ]);
    expect(requestProblems(cfg, { name: "bookwriter", port: 9200 }, apps)).toEqual([]);
  });
  test("a hostname already used by another app is refused", () => {
    expect(
      requestProblems(cfg, { name: "notes", domain: "shared.example.com" }, [entry("a", 9400, "shared.example.com")]),
    ).toEqual(["hostname shared.example.com is already used by app a"]);
  });
  test("a bad name short-circuits the other checks", () => {
    expect(requestProblems(cfg, { name: "Bad Name", port: 1 }, [])).toHaveLength(1);
  });
});

describe("SQL is built from checked names, identifiers quoted", () => {
  test("exact statements", () => {
    expect(sql.createRole("bookwriter", "SCRAM-SHA-256$4096:c2FsdA==$a:b")).toBe(
      `CREATE ROLE "bookwriter" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'`,
    );
    expect(sql.createDatabase("bookwriter_db", "bookwriter")).toBe(
      `CREATE DATABASE "bookwriter_db" OWNER "bookwriter"`,
    );
    expect(sql.revokePublic("bookwriter_db")).toBe(`REVOKE ALL ON DATABASE "bookwriter_db" FROM PUBLIC`);
    expect(sql.dropDatabase("bookwriter_db")).toBe(`DROP DATABASE IF EXISTS "bookwriter_db" WITH (FORCE)`);
    expect(sql.dropRole("bookwriter")).toBe(`DROP ROLE IF EXISTS "bookwriter"`);
  });
});

describe("SCRAM verifiers", () => {
  test("RFC 7677 test vector (user/pencil, salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations)", () => {
    // Server key and stored key from the RFC's example exchange, as Postgres stores them.
    const v = scramVerifier("pencil", Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"), 4096);
    expect(v).toBe(
      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    );
  });
  test("fresh salt each time; matches only the right password", () => {
    const a = scramVerifier("correct-horse-battery");
    expect(a).not.toBe(scramVerifier("correct-horse-battery"));
    expect(scramMatches("correct-horse-battery", a)).toBe(true);
    expect(scramMatches("wrong", a)).toBe(false);
    expect(scramMatches("x", "md5abc")).toBe(false);
  });
  test("non-ASCII passwords are refused rather than hashed wrongly", () => {
    expect(() => scramVerifier("pässword")).toThrow("printable ASCII");
  });
});

describe("files", () => {
  const app = entry("bookwriter", 9200, "bookwriter.example.com");
  test("env file: pooled DATABASE_URL (pgbouncer), DIRECT_URL and read-only URL through HAProxy, Supabase URL, port", () => {
    const text = appEnvFile(cfg, app, "s3cret_pw-x");
    expect(text).toContain(`\nDATABASE_URL=postgresql://bookwriter:s3cret_pw-x@127.0.1.1:16015/bookwriter_db\n`);
    expect(text).toContain(`\nDIRECT_URL=postgresql://bookwriter:s3cret_pw-x@127.0.1.1:16012/bookwriter_db\n`);
    expect(text).toContain(
      `DATABASE_READONLY_URL=postgresql://bookwriter:s3cret_pw-x@${cfg.haproxy.address}:${cfg.haproxy.roPort}/bookwriter_db\n`,
    );
    expect(text).toContain(`SUPABASE_URL=http://${cfg.api.address}:${cfg.api.port}\n`);
    expect(text).toContain("PORT=9200\n");
  });
  test("env file path: plain on dev, per stack elsewhere", () => {
    expect(appEnvPath(cfgFor("dev"), "bookwriter")).toBe(join(ROOT_DIR, "envs/.env.bookwriter"));
    expect(appEnvPath(cfg, "bookwriter")).toBe(join(ROOT_DIR, "envs/.env.test.bookwriter"));
    expect(appNginxPath(cfg, "bookwriter")).toBe(join(cfg.stateDir, "nginx/apps/bookwriter.conf"));
  });
  test("nginx block: listens where the API does, routes the hostname to the app's port", () => {
    const conf = renderAppNginx(cfg, readFileSync(join(ROOT_DIR, "nginx/app.conf.tmpl"), "utf8"), app);
    expect(conf).toContain(`listen ${cfg.api.address}:${cfg.api.port};`);
    expect(conf).toContain("server_name bookwriter.example.com;");
    expect(conf).toContain("proxy_pass http://127.0.0.1:9200;");
    expect(conf).toContain("add_header X-Pgplatform-App bookwriter always;");
    expect(conf).not.toContain("${");
  });
  test("commands as exact argument arrays", () => {
    expect(nginxTestCmd(cfg).join(" ")).toBe(
      `nginx -t -q -p ${cfg.stateDir}/nginx -c ${cfg.stateDir}/rendered/nginx/nginx.conf`,
    );
    expect(pgDumpCmd(cfg, "bookwriter_db", "/b/x.dump").join(" ")).toBe(
      `/usr/lib/postgresql/15/bin/pg_dump --format=custom --no-password --host ${cfg.haproxy.address} --port ${cfg.haproxy.rwPort} --username postgres --dbname bookwriter_db --file /b/x.dump`,
    );
    expect(pgRestoreListCmd(cfg, "/b/x.dump")).toEqual([
      "/usr/lib/postgresql/15/bin/pg_restore",
      "--list",
      "/b/x.dump",
    ]);
    expect(utcStamp(new Date("2026-11-21T21:45:00.999Z"))).toBe("20261121T214500Z");
  });
});

describe("registry and lock (temp folder)", () => {
  test("registry round-trips per stack; the dev one is envs/apps.yaml", () => {
    const root = mkdtempSync(join(tmpdir(), "newapp-"));
    try {
      mkdirSync(join(root, "envs"));
      const c = cfgFor("demo", root);
      expect(registryPath(c)).toBe(join(root, "envs/apps.demo.yaml"));
      expect(registryPath(cfgFor("dev", root))).toBe(join(root, "envs/apps.yaml"));
      expect(loadApps(c)).toEqual([]);
      saveApps(c, [entry("bookwriter", 9200)]);
      expect(loadApps(c)).toEqual([entry("bookwriter", 9200)]);
      writeFileSync(registryPath(c), "apps:\n  - name: BAD\n");
      expect(() => loadApps(c)).toThrow(`envs/apps.demo.yaml: app "BAD": name: Invalid`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  test("the lock serialises runs and is released after an error; a dead holder's lock is taken over", async () => {
    const root = mkdtempSync(join(tmpdir(), "newapp-lock-"));
    try {
      const c = { stateDir: root };
      const order: string[] = [];
      const a = withAppsLock(c, async () => {
        order.push("a-in");
        await Bun.sleep(150);
        order.push("a-out");
      });
      await Bun.sleep(20);
      const b = withAppsLock(c, async () => {
        order.push("b-in");
      });
      await Promise.all([a, b]);
      expect(order).toEqual(["a-in", "a-out", "b-in"]);
      await expect(
        withAppsLock(c, async () => {
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      expect(existsSync(appsLockPath(c))).toBe(false);
      writeFileSync(appsLockPath(c), "999999999\n"); // no such pid
      expect(await withAppsLock(c, async () => "ran")).toBe("ran");
      writeFileSync(appsLockPath(c), `${process.pid}\n`); // held by a live process
      await expect(withAppsLock(c, async () => "x", 300)).rejects.toThrow(/another new-app run/);
      expect(statSync(appsLockPath(c)).isFile()).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
