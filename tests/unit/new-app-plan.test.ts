/**
 * The onboarding plan's guards that new-app.test.ts leaves open (found by make
 * mutation): every reserved name, the edges of the hostname and port rules,
 * which registry entry a request is judged against, and the exact SQL and files.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { AppEntry } from "../../scripts/lib/apps";
import { parseConfig, ROOT_DIR, type Config } from "../../scripts/lib/config";
import {
  appEnvFile,
  appNameProblem,
  badInputError,
  domainProblem,
  FIRST_FREE_PORT,
  nextAppPort,
  planApp,
  portHeldIssue,
  portProblem,
  renderAppNginx,
  requestIssues,
  requestProblems,
  sql,
} from "../../scripts/lib/onboard/plan";

const cfg: Config = parseConfig(readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8"), {
  file: "envs/test.env",
  stack: "test",
  rootDir: ROOT_DIR,
  isRoot: false,
});
const entry = (name: string, port: number, domain = `${name}.localhost`): AppEntry => ({
  name,
  database: `${name}_db`,
  role: name,
  port,
  domain,
  supabase: false,
  created: "2026-01-01T00:00:00Z",
});

describe("reserved names", () => {
  test.each([
    "postgres",
    "replicator",
    "rewind_user",
    "patroni",
    "admin",
    "public",
    "none",
    "current_role",
    "current_user",
    "session_user",
    "all",
    "template0",
    "template1",
    "samerole",
    "samegroup",
    "replication",
  ])("%p is reserved by Postgres or the platform", (name) =>
    expect(appNameProblem(name, cfg)).toBe(`${name} is reserved by Postgres or the platform`),
  );
});

describe("hostname and port edges", () => {
  // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters: the longest name DNS allows.
  const longest = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
  test("253 characters is a hostname, 254 is not", () => {
    expect(longest.length).toBe(253);
    expect(domainProblem(longest)).toBeUndefined();
    expect(domainProblem(longest + "e")).toBe(
      `"${longest}e" is not a valid hostname: lowercase letters, digits, dashes and dots, e.g. bookwriter.example.com`,
    );
  });

  test("only a numeric last label is an address: a bare number and a two-digit last part are refused, a label starting with digits is not", () => {
    for (const d of ["8080", "10.0.0.10"])
      expect(domainProblem(d)).toBe(
        `"${d}" is an address or the machine's own name, not an app's hostname: the stack's own server answers to it (/healthz, /cluster); use a name such as app.localhost`,
      );
    for (const d of ["1password.example.com", "app.9lives.localhost"]) expect(domainProblem(d)).toBeUndefined();
  });

  test("ports 1024 and 65535 are allowed, 1023, 65536 and fractions are not", () => {
    expect(portProblem(1024, "x", [], cfg)).toBeUndefined();
    expect(portProblem(65535, "x", [], cfg)).toBeUndefined();
    for (const p of [1023, 65536, 9400.5])
      expect(portProblem(p, "x", [], cfg)).toBe(`port ${p} must be a whole number 1024-65535`);
  });

  test("only an app holding that very port blocks it", () => {
    expect(portProblem(9500, "new", [entry("a", 9400)], cfg)).toBeUndefined();
    expect(portProblem(9400, "new", [entry("a", 9400)], cfg)).toBe("port 9400 is already used by app a");
    expect(portProblem(cfg.haproxy.rwPort, "new", [], cfg)).toBe(
      `port ${cfg.haproxy.rwPort} is used by the stack itself (see envs/test.env)`,
    );
  });

  test("when every planned port is taken, the plan says so", () => {
    const all: number[] = [];
    for (let p = FIRST_FREE_PORT; p <= 65535; p += 100) all.push(p);
    expect(() => nextAppPort("x", [], all)).toThrow("no free port left in the plan");
    expect(nextAppPort("x", [], all.slice(0, -1))).toBe(all.at(-1)!);
  });
});

describe("a request is judged against its own registry entry only", () => {
  const apps = [entry("bookwriter", 9200), entry("notes", 9400, "notes.example.com")];

  test("planning a new app next to others takes nothing from them", () => {
    expect(planApp(cfg, { name: "diary" }, apps, new Date("2026-11-21T21:00:00.123Z"))).toEqual({
      name: "diary",
      database: "diary_db",
      role: "diary",
      port: 9500,
      domain: "diary.localhost",
      supabase: false,
      created: "2026-11-21T21:00:00Z",
    });
  });

  test("a new app, or an existing one asked for what it has, has no problem", () => {
    expect(requestProblems(cfg, { name: "diary" }, apps)).toEqual([]);
    expect(requestProblems(cfg, { name: "diary" }, [])).toEqual([]);
    expect(requestProblems(cfg, { name: "diary", port: 9600 }, apps)).toEqual([]);
    expect(requestProblems(cfg, { name: "notes" }, apps)).toEqual([]);
    expect(requestProblems(cfg, { name: "notes", port: 9400, domain: "notes.example.com" }, apps)).toEqual([]);
  });

  test("a bad name is the only problem reported; bad hostname and port are each reported", () => {
    expect(requestProblems(cfg, { name: "Bad Name", port: 1, domain: "a b" }, apps)).toEqual([
      `"Bad Name" is not a valid app name: lowercase letter first, then 1-30 lowercase letters, digits or underscores (^[a-z][a-z0-9_]{1,30}$)`,
    ]);
    expect(requestProblems(cfg, { name: "diary", domain: "a b" }, apps)).toEqual([
      `"a b" is not a valid hostname: lowercase letters, digits, dashes and dots, e.g. bookwriter.example.com`,
    ]);
    expect(requestProblems(cfg, { name: "diary", port: 80 }, apps)).toEqual([
      "port 80 must be a whole number 1024-65535",
    ]);
    expect(requestProblems(cfg, { name: "diary", port: 9200, domain: "notes.example.com" }, apps)).toEqual([
      "port 9200 is already used by app bookwriter",
      "hostname notes.example.com is already used by app notes",
    ]);
  });
});

describe("exact SQL and files", () => {
  test("a password change", () => {
    expect(sql.setPassword("bookwriter", "SCRAM-SHA-256$4096:c2FsdA==$a:b")).toBe(
      `ALTER ROLE "bookwriter" PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'`,
    );
  });

  test("the env file, whole", () => {
    const h = cfg.haproxy;
    expect(appEnvFile(cfg, entry("bookwriter", 9200, "bookwriter.example.com"), "s3cret_pw-x")).toBe(
      [
        "# bookwriter on stack test: written by scripts/new-app.ts. Private: mode 0600, gitignored.",
        "# Re-run `bun scripts/new-app.ts bookwriter --rotate-password` to replace the password.",
        "# DATABASE_URL goes through pgbouncer (transaction pooling: no session state between transactions,",
        "# see the README on prepared statements); DIRECT_URL goes to the leader through HAProxy, for",
        "# migrations and session-level work (Prisma's directUrl, LISTEN, advisory locks, SET).",
        `DATABASE_URL=postgresql://bookwriter:s3cret_pw-x@${cfg.pool.address}:${cfg.pool.port}/bookwriter_db`,
        `DIRECT_URL=postgresql://bookwriter:s3cret_pw-x@${h.address}:${h.rwPort}/bookwriter_db`,
        `DATABASE_READONLY_URL=postgresql://bookwriter:s3cret_pw-x@${h.address}:${h.roPort}/bookwriter_db`,
        `SUPABASE_URL=http://${cfg.api.address}:${cfg.api.port}`,
        "PORT=9200",
        "APP_DOMAIN=bookwriter.example.com",
        "",
      ].join("\n"),
    );
  });

  test("a placeholder the nginx block cannot fill names the template", () => {
    expect(() => renderAppNginx(cfg, "server_name ${APP_DOMAIN}; ${NOPE}", entry("bookwriter", 9200))).toThrow(
      "nginx/app.conf.tmpl: no value for ${NOPE}",
    );
  });
});

describe("access level: written only when chosen, kept on re-runs", () => {
  const at = new Date("2026-11-21T21:00:00Z");
  test("a new app asked for public access gets it; one asked for nothing gets no access key", () => {
    expect(planApp(cfg, { name: "diary", access: "public" }, [], at)).toStrictEqual({
      name: "diary",
      database: "diary_db",
      role: "diary",
      port: 9400,
      domain: "diary.localhost",
      supabase: false,
      access: "public",
      created: "2026-11-21T21:00:00Z",
    });
    expect(Object.keys(planApp(cfg, { name: "diary" }, [], at))).not.toContain("access");
  });

  test("a re-run without --access keeps the registered level; one with it replaces it", () => {
    const registered: AppEntry = { ...entry("diary", 9400), access: "none" };
    expect(planApp(cfg, { name: "diary" }, [registered], at)).toStrictEqual(registered);
    expect(planApp(cfg, { name: "diary", access: "public" }, [registered], at)).toStrictEqual({
      ...registered,
      access: "public",
    });
  });
});

describe("each problem carries its own fix, exactly", () => {
  test("a bad name: the name rule, and nothing else is checked", () => {
    expect(requestIssues(cfg, { name: "Bad Name", domain: "a b" }, [])).toEqual([
      {
        problem: `"Bad Name" is not a valid app name: lowercase letter first, then 1-30 lowercase letters, digits or underscores (^[a-z][a-z0-9_]{1,30}$)`,
        fix: "app names: lowercase letter first, then 1-30 lowercase letters, digits or underscores (^[a-z][a-z0-9_]{1,30}$), not a reserved name",
      },
    ]);
  });

  test("a bad hostname: an example built from the app's name", () => {
    expect(requestIssues(cfg, { name: "research_ai", domain: "a b" }, [])).toEqual([
      {
        problem: `"a b" is not a valid hostname: lowercase letters, digits, dashes and dots, e.g. bookwriter.example.com`,
        fix: "pass a hostname like --domain research-ai.localhost (make: DOMAIN=...)",
      },
    ]);
  });

  test("a taken port: a registered app is pointed at its own port, a new one at the next free port", () => {
    const apps = [entry("a", 9500), entry("notes", 9600)];
    const portFix = (p: number) =>
      `pick another port, e.g. --port ${p} (make: PORT=...), or leave it out to get the next free one from the plan`;
    expect(requestIssues(cfg, { name: "diary", port: 9500 }, apps)).toEqual([
      { problem: "port 9500 is already used by app a", fix: portFix(9400) },
    ]);
    expect(requestIssues(cfg, { name: "notes", port: 9500 }, apps)).toEqual([
      { problem: "port 9500 is already used by app a", fix: portFix(9600) },
      {
        problem: "notes already has port 9600 (asked for 9500)",
        fix: "re-run without it to keep the app as it is, or move it: `bun scripts/new-app.ts notes --remove` (takes a final backup) and create it again",
      },
    ]);
  });

  test("the error lists every problem and each distinct fix once", () => {
    const apps = [entry("bookwriter", 9200), entry("a", 9400, "shared.example.com")];
    const move =
      "re-run without it to keep the app as it is, or move it: `bun scripts/new-app.ts bookwriter --remove` (takes a final backup) and create it again";
    const e = badInputError(requestIssues(cfg, { name: "bookwriter", port: 9300, domain: "shared.example.com" }, apps));
    expect([e.code, e.message, e.fix]).toEqual([
      "BAD_INPUT",
      "bookwriter already has port 9200 (asked for 9300); bookwriter already has hostname bookwriter.localhost (asked for shared.example.com); hostname shared.example.com is already used by app a",
      `${move}; give bookwriter its own hostname with --domain (make: DOMAIN=...), e.g. bookwriter.localhost; nothing was changed`,
    ]);
  });

  test("a port another program listens on names the port and the listener", () => {
    expect(portHeldIssue(9400, "nginx (pid 12)")).toEqual({
      problem: "port 9400 is already in use by nginx (pid 12)",
      fix: "stop that program, or pick another port with --port (make: PORT=...), or leave it out to get the next free one from the plan",
    });
  });
});
