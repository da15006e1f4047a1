/**
 * Issue 19 / issue 10 items 13-16: what an ordinary user on a workstation meets
 * (a login PATH without /usr/sbin, make's own output, flags the help promises,
 * clean leaving references behind, fixes that fit the error).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  readdirSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, ROOT_DIR, type Config } from "../../scripts/lib/config";
import { resolveProgram, run } from "../../scripts/lib/exec";
import { checkBinaries } from "../../scripts/lib/native/specs";
import { missingPackages } from "../../scripts/lib/setup";
import { formatLag, routeCell } from "../../scripts/lib/status";
import { knownDatabases, portTarget, requireKnownDatabase } from "../../scripts/lib/dburl";
import { applyClean, planClean } from "../../scripts/lib/clean";
import { badInputError, requestIssues } from "../../scripts/lib/onboard/plan";
import { inputIssues } from "../../scripts/lib/onboard/onboard";
import type { AppEntry } from "../../scripts/lib/apps";
import {
  ensureRuntimeDir,
  runtimeDirFor,
  scratchSocketName,
  socketPathBytes,
  SUN_PATH_MAX,
} from "../../scripts/lib/rundir";
import { scratchFor } from "../../scripts/lib/backup/scratch";
import { renderStack } from "../../scripts/lib/stack-files";
import { SECRET_KEYS } from "../../scripts/lib/secrets";
import { assertStackOwnership, misownedPaths, permissionError } from "../../scripts/lib/ownership";

const BUN = process.execPath;
/** A normal Debian user's login PATH (and cron's is shorter still): no /usr/sbin, no /sbin. */
const USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";
const TEST_ENV = readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8");
const entry = (name: string, port: number, domain = `${name}.localhost`): AppEntry => ({
  name,
  database: `${name}_db`,
  role: name,
  port,
  domain,
  supabase: false,
  created: "2026-01-01T00:00:00Z",
});

/** A config on an address block where nothing listens (127.0.70.2xx), rooted at `rootDir`. */
const cfgAt = (
  stack: string,
  rootDir: string,
  secrets: Record<string, string> = { POSTGRES_PASSWORD: "pw-for-tests" },
): Config =>
  parseConfig(TEST_ENV.replace(/127\.0\.1\.1(\d)\b/g, "127.0.70.2$1").replace(/127\.0\.1\.1\b/g, "127.0.70.200"), {
    file: `envs/${stack}.env`,
    stack,
    rootDir,
    isRoot: false,
    secrets,
  });

function withPath<T>(path: string, fn: () => T): T {
  const saved = process.env.PATH;
  process.env.PATH = path;
  try {
    return fn();
  } finally {
    process.env.PATH = saved;
  }
}

describe("programs are found where their packages install them, whatever the PATH", () => {
  test("nginx and haproxy resolve to /usr/sbin with a user's login PATH", () => {
    expect(resolveProgram("nginx", USER_PATH)).toBe("/usr/sbin/nginx");
    expect(resolveProgram("haproxy", "/usr/bin:/bin")).toBe("/usr/sbin/haproxy");
    expect(resolveProgram("etcd", "/usr/bin:/bin")).toBe("/usr/bin/etcd");
    expect(resolveProgram("no-such-program-pgp", USER_PATH)).toBeUndefined();
  });
  test("PATH still wins over the system dirs", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-path-"));
    writeFileSync(join(dir, "nginx"), "#!/bin/sh\n", { mode: 0o755 });
    try {
      expect(resolveProgram("nginx", `${dir}:/usr/bin`)).toBe(join(dir, "nginx"));
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
  test("setup's 'missing' and dev-up's binary check agree with what run() starts", async () => {
    await withPath("/usr/bin:/bin", async () => {
      expect(await missingPackages()).toEqual([]);
      await checkBinaries(cfgAt("ut-path", ROOT_DIR)); // throws MISSING_BINARY when a lookup misses
      // and it does throw: the same check with a Postgres folder that is not there names it and its package
      await expect(checkBinaries({ ...cfgAt("ut-path", ROOT_DIR), pgBinDir: "/nonexistent/bin" })).rejects.toThrow(
        "missing: /nonexistent/bin/postgres (package postgresql-15)",
      );
      const r = await run(["nginx", "-v"]); // the runner starts what the check found
      expect(r.stderr).toContain("nginx version:");
    });
  });
  test("`setup --check` and `setup` with PATH=/usr/bin:/bin: all present, nothing installed (no apt-get)", () => {
    const env = { ...process.env, PATH: "/usr/bin:/bin" };
    const check = spawnSync(BUN, ["scripts/setup.ts", "--check"], { cwd: ROOT_DIR, env, encoding: "utf8" });
    expect(check.stdout.trim()).toBe("all OS packages present");
    expect(check.status).toBe(0);
    const setup = spawnSync(BUN, ["scripts/setup.ts"], { cwd: ROOT_DIR, env, encoding: "utf8" });
    expect(setup.stdout.trim()).toBe("all OS packages present: nothing installed");
    expect(setup.stderr).not.toContain("apt-get");
    expect(setup.status).toBe(0);
  });
});

describe("make status: units and routing words", () => {
  test("lag carries its unit (bytes of WAL); the leader has none", () => {
    expect(formatLag("sync_standby", 0)).toBe("0 B");
    expect(formatLag("replica", 3 * 1024 * 1024)).toBe("3.0 MB");
    expect(formatLag("replica", "unknown")).toBe("unknown");
    expect(formatLag("leader", 0)).toBe("");
  });
  test("a healthy replica is 'not routed' in the read-write column, never DOWN", () => {
    expect(routeCell("sync_standby", "postgres_rw", "DOWN")).toBe("not routed (replica)");
    expect(routeCell("replica", "postgres_rw", "DOWN")).toBe("not routed (replica)");
    expect(routeCell("leader", "postgres_ro", "DOWN")).toBe("not routed (leader)");
    expect(routeCell("leader", "postgres_rw", "UP")).toBe("UP");
    expect(routeCell("leader", "postgres_rw", "DOWN")).toBe("DOWN"); // a real fault stays DOWN
    expect(routeCell("replica", "postgres_ro", "DOWN")).toBe("DOWN");
    expect(routeCell("replica", "postgres_rw", "UP")).toBe("UP (unexpected)");
  });
});

describe("make front door (real make, a throwaway stack whose cluster is not running)", () => {
  const stack = "ut-front";
  const envFile = join(ROOT_DIR, "envs", `${stack}.env`);
  const secretsFile = join(ROOT_DIR, "envs", `.secrets.${stack}.env`);
  const make = (...args: string[]) =>
    spawnSync("make", ["-s", ...args, `STACK=${stack}`], {
      cwd: ROOT_DIR,
      encoding: "utf8",
      env: { ...process.env, PORT: "3000" },
    });
  beforeAll(() => {
    writeFileSync(
      envFile,
      TEST_ENV.replace(/127\.0\.1\.1(\d)\b/g, "127.0.70.2$1").replace(/127\.0\.1\.1\b/g, "127.0.70.200"),
    );
    writeFileSync(secretsFile, "POSTGRES_PASSWORD=pw-for-tests\n", { mode: 0o600 });
  });
  afterAll(() => {
    rmSync(envFile, { force: true });
    rmSync(secretsFile, { force: true });
  });
  test("db-url PORT=ro gives the read-only port; a PORT exported by the shell does not", () => {
    const ro = make("db-url", "DB=orchestrator_ai_dev", "PORT=ro");
    expect(ro.stdout.trim()).toBe("postgresql://postgres:pw-for-tests@127.0.70.200:16013/orchestrator_ai_dev");
    const rw = make("db-url", "DB=orchestrator_ai_dev"); // PORT=3000 in the environment only
    expect(rw.stdout.trim()).toBe("postgresql://postgres:pw-for-tests@127.0.70.200:16012/orchestrator_ai_dev");
    const bad = make("db-url", "DB=orchestrator_ai_dev", "PORT=5432");
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('error [BAD_PORT]: PORT="5432" is not a route: use rw');
  });
  test("db-url DB=nope fails, names the database and lists the known ones", () => {
    const r = make("db-url", "DB=nope");
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`error [UNKNOWN_DATABASE]: database "nope" is not on stack ${stack}`);
    expect(r.stderr).toContain(
      "fix: pick one of: postgres, orchestrator_ai_dev, orchestrator_ai_staging, orchestrator_ai_production;",
    );
  });
  test("status ARGS=--json through make is pure JSON", () => {
    const r = make("status", "ARGS=--json");
    const parsed = JSON.parse(r.stdout);
    expect(parsed.stack).toBe(stack);
    expect(parsed.health.ok).toBe(false);
  });
  test("every flag clean --help advertises is accepted", () => {
    const help = spawnSync(BUN, ["scripts/clean.ts", "--help"], {
      cwd: ROOT_DIR,
      encoding: "utf8",
      env: { ...process.env, STACK: stack },
    });
    const flags = [...new Set(help.stdout.match(/--[a-z][a-z-]+/g) ?? [])];
    expect(flags.sort()).toEqual(["--purge-secrets", "--yes"]);
    for (const f of flags) {
      const r = spawnSync(BUN, ["scripts/clean.ts", f, "--help"], {
        cwd: ROOT_DIR,
        encoding: "utf8",
        env: { ...process.env, STACK: stack },
      });
      expect(`${f}: ${r.stderr}`).toBe(`${f}: `);
      expect(r.status).toBe(0);
    }
  });
});

describe("db-url's database check", () => {
  test("known: the ladder, postgres, registered apps; unknown with the cluster down lists them", async () => {
    const root = mkdtempSync(join(tmpdir(), "pgp-dburl-"));
    mkdirSync(join(root, "envs"));
    writeFileSync(
      join(root, "envs", "apps.ut.yaml"),
      "apps:\n  - {name: book, database: book_db, role: book, port: 9200, domain: book.localhost, supabase: false, created: '2026-01-01T00:00:00Z'}\n",
    );
    const cfg = cfgAt("ut", root);
    try {
      expect(knownDatabases(cfg)).toEqual([
        "postgres",
        "orchestrator_ai_dev",
        "orchestrator_ai_staging",
        "orchestrator_ai_production",
        "book_db",
      ]);
      await requireKnownDatabase(cfg, "book_db");
      await expect(requireKnownDatabase(cfg, "nope")).rejects.toThrow(
        'database "nope" is not on stack ut (the cluster did not answer; checked the env file and app registry)',
      );
      expect(portTarget(cfg, "ro")).toEqual({ host: "127.0.70.200", port: 16013 });
    } finally {
      rmSync(root, { recursive: true });
    }
  });
});

describe("clean leaves nothing that refers to what it deleted", () => {
  test("a test/local stack: registry and the stack's app env files go; other stacks' files and secrets stay", () => {
    const root = mkdtempSync(join(tmpdir(), "pgp-clean-"));
    const envs = join(root, "envs");
    mkdirSync(envs);
    writeFileSync(
      join(envs, "apps.ut.yaml"),
      "apps:\n  - {name: book, database: book_db, role: book, port: 9200, domain: book.localhost, supabase: false, created: '2026-01-01T00:00:00Z'}\n",
    );
    for (const f of [".env.ut.book", ".env.ut.orphan", ".env.other.book", ".env.book", ".secrets.ut.env"])
      writeFileSync(join(envs, f), "X=1\n");
    const cfg = cfgAt("ut", root);
    mkdirSync(cfg.stateDir, { recursive: true });
    try {
      const plan = planClean(cfg);
      expect(plan.dirs).toEqual([cfg.stateDir]);
      expect(plan.appEnvFiles).toEqual([join(envs, ".env.ut.book"), join(envs, ".env.ut.orphan")]);
      expect(plan.registry).toEqual({ path: join(envs, "apps.ut.yaml"), action: "delete", apps: ["book"] });
      expect(plan.kept.map((k) => k.path)).toEqual([join(envs, ".secrets.ut.env")]);
      applyClean(cfg, plan);
      expect(
        ["apps.ut.yaml", ".env.ut.book", ".env.ut.orphan", ".env.other.book", ".env.book", ".secrets.ut.env"].filter(
          (f) => existsSync(join(envs, f)),
        ),
      ).toEqual([".env.other.book", ".env.book", ".secrets.ut.env"]);
      expect(existsSync(cfg.stateDir)).toBe(false);
    } finally {
      rmSync(root, { recursive: true });
    }
  });
  test("the environments' env files of the stack go too (their roles go with the data); another stack's stay", () => {
    const root = mkdtempSync(join(tmpdir(), "pgp-clean-"));
    const cfg = cfgAt("ut", root);
    for (const d of ["app.ut", "app.other"]) mkdirSync(join(root, "envs", d), { recursive: true });
    for (const f of ["app.ut/.env.dev", "app.ut/.env.staging", "app.other/.env.dev"])
      writeFileSync(join(root, "envs", f), "X=1\n");
    try {
      const plan = planClean(cfg);
      expect(plan.appEnvFiles).toEqual([
        join(root, "envs", "app.ut", ".env.dev"),
        join(root, "envs", "app.ut", ".env.staging"),
      ]);
      applyClean(cfg, plan);
      expect(
        ["app.ut/.env.dev", "app.ut/.env.staging", "app.other/.env.dev"].filter((f) =>
          existsSync(join(root, "envs", f)),
        ),
      ).toEqual(["app.other/.env.dev"]);
      // The stack's folder goes with its last file; another stack's stays.
      expect(["app.ut", "app.other"].filter((d) => existsSync(join(root, "envs", d)))).toEqual(["app.other"]);
    } finally {
      rmSync(root, { recursive: true });
    }
  });
  test("the environments' folder stays when something else lives in it", () => {
    const root = mkdtempSync(join(tmpdir(), "pgp-clean-"));
    const cfg = cfgAt("ut", root);
    mkdirSync(join(root, "envs", "app.ut"), { recursive: true });
    for (const f of [".env.dev", "notes.txt"]) writeFileSync(join(root, "envs", "app.ut", f), "X=1\n");
    try {
      applyClean(cfg, planClean(cfg));
      expect(readdirSync(join(root, "envs", "app.ut"))).toEqual(["notes.txt"]);
    } finally {
      rmSync(root, { recursive: true });
    }
  });
  test("the dev stack's committed registry is emptied, its apps' env files deleted", () => {
    const root = mkdtempSync(join(tmpdir(), "pgp-clean-"));
    const envs = join(root, "envs");
    mkdirSync(envs);
    writeFileSync(
      join(envs, "apps.yaml"),
      "apps:\n  - {name: book, database: book_db, role: book, port: 9200, domain: book.localhost, supabase: false, created: '2026-01-01T00:00:00Z'}\n",
    );
    writeFileSync(join(envs, ".env.book"), "X=1\n");
    const cfg = cfgAt("dev", root);
    try {
      const plan = planClean(cfg);
      expect(plan.registry?.action).toBe("empty");
      applyClean(cfg, plan);
      expect(existsSync(join(envs, ".env.book"))).toBe(false);
      expect(readFileSync(join(envs, "apps.yaml"), "utf8")).toContain("apps: []");
    } finally {
      rmSync(root, { recursive: true });
    }
  });
});

describe("new-app: each error carries its own fix", () => {
  const cfg = cfgAt("ut", ROOT_DIR);
  test("port, domain and conflict errors do not get the app-name rule", () => {
    const apps = [entry("a", 9400, "shared.example.com"), entry("bookwriter", 9200)];
    const port = badInputError(requestIssues(cfg, { name: "notes", port: 9400 }, apps));
    expect(port.message).toBe("port 9400 is already used by app a");
    expect(port.fix).toBe(
      "pick another port, e.g. --port 9500 (make: PORT=...), or leave it out to get the next free one from the plan; nothing was changed",
    );
    const domain = badInputError(requestIssues(cfg, { name: "notes", domain: "bad_host!" }, apps));
    expect(domain.fix).toBe("pass a hostname like --domain notes.localhost (make: DOMAIN=...); nothing was changed");
    const clash = badInputError(requestIssues(cfg, { name: "notes", domain: "shared.example.com" }, apps));
    expect(clash.fix).toBe(
      "give notes its own hostname with --domain (make: DOMAIN=...), e.g. notes.localhost; nothing was changed",
    );
    const moved = badInputError(requestIssues(cfg, { name: "bookwriter", port: 9300 }, apps));
    expect(moved.fix).toBe(
      "re-run without it to keep the app as it is, or move it: `bun scripts/new-app.ts bookwriter --remove` (takes a final backup) and create it again; nothing was changed",
    );
    const name = badInputError(requestIssues(cfg, { name: "Bad Name" }, apps));
    expect(name.fix).toContain("app names: lowercase letter first");
    for (const e of [port, domain, clash, moved]) expect(e.fix).not.toContain("lowercase letter first");
  });
  test("--port held by another listener is refused, naming the port and the listener", async () => {
    const srv: Server = createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const issues = await inputIssues(cfg, { name: "notes", port }, []);
      expect(issues.map((i) => i.problem)).toEqual([`port ${port} is already in use by bun (pid ${process.pid})`]);
      // the registered app's own port is its own (its app may well be running)
      expect(await inputIssues(cfg, { name: "notes", port }, [entry("notes", port)])).toEqual([]);
    } finally {
      srv.close();
    }
  });
});

describe("sockets live under a short runtime folder, whatever the checkout's depth", () => {
  const deep =
    "/home/a-developer-with-a-long-name/src/github.com/some-organisation/some-project-with-a-long-name/worktrees/feature-branch-name";
  test("root: /run/pgplatform/<stack>; anyone else: /tmp/pgp-<uid>/<stack>", () => {
    expect(runtimeDirFor("dev", true)).toBe("/run/pgplatform/dev");
    expect(runtimeDirFor("dev", false, 1000)).toBe("/tmp/pgp-1000/dev");
  });
  test("a checkout 130 characters deep: member and scratch sockets fit in sun_path", () => {
    expect(deep.length).toBeGreaterThan(120);
    const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}`]));
    const cfg = parseConfig(TEST_ENV, {
      file: "envs/test.env",
      stack: "a-stack-name-thirty-one-chars-x",
      rootDir: deep,
      isRoot: false,
      secrets,
    });
    for (const m of cfg.members) {
      expect(m.socketDir.startsWith(cfg.runtimeDir + "/")).toBe(true);
      expect(socketPathBytes(m.socketDir, 65535)).toBeLessThanOrEqual(SUN_PATH_MAX);
    }
    const s = scratchFor(cfg, "verify-20261130T163652Z-20261130T163652Z");
    expect(s.dir.startsWith(deep)).toBe(true); // data stays in the checkout
    expect(s.socketDir).toBe(join(cfg.runtimeDir, scratchSocketName("verify-20261130T163652Z-20261130T163652Z")));
    expect(socketPathBytes(s.socketDir, 65535)).toBeLessThanOrEqual(SUN_PATH_MAX);
    // Patroni gets the same folder pgBackRest and the toolkit use
    const patroni = renderStack({ ...cfg, rootDir: ROOT_DIR }, "native").find(
      (f) => f.path === "pg1/patroni.yml",
    )!.content;
    expect(patroni).toContain(`unix_socket_directories: '${cfg.members[0]!.socketDir}'`);
  });
  test("a runtime folder made by another user, or a symlink, is refused, naming the owner", () => {
    const base = mkdtempSync(join(tmpdir(), "pgp-rt-"));
    const asRoot = process.getuid?.() === 0;
    try {
      const theirs = join(base, "theirs");
      mkdirSync(theirs);
      mkdirSync(join(theirs, "stack"));
      if (asRoot) {
        chownSync(theirs, 65534, 65534); // nobody
        expect(() => ensureRuntimeDir(join(theirs, "stack"), true)).toThrow(
          `${theirs} is owned by nobody (uid 65534), not root (uid 0): another user could read or replace the sockets in it`,
        );
      }
      const link = join(base, "link");
      symlinkSync(theirs, link);
      expect(() => ensureRuntimeDir(join(link, "stack"), asRoot)).toThrow(
        `${link} is a symlink: refusing to put sockets there`,
      );
      // ours: made with the exact modes, and a loosened one is tightened
      const ours = join(base, "ours", "stack");
      ensureRuntimeDir(ours, asRoot);
      expect(statSync(join(base, "ours")).mode & 0o777).toBe(asRoot ? 0o711 : 0o700);
      chmodSync(ours, 0o777);
      ensureRuntimeDir(ours, asRoot);
      expect(statSync(ours).mode & 0o777).toBe(asRoot ? 0o711 : 0o700);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe("a stack touched by `sudo make` and plain `make`", () => {
  const NOBODY = 65534;
  /** A checkout-like tree: envs, .state/<stack> with logs, members, secrets; every path owned by `uid`. */
  function tree(stack: string, isRoot: boolean, uid: number) {
    const root = mkdtempSync(join(tmpdir(), "pgp-own-"));
    chmodSync(root, 0o755);
    const cfg = parseConfig(TEST_ENV, {
      file: `envs/${stack}.env`,
      stack,
      rootDir: root,
      isRoot,
      secrets: { POSTGRES_PASSWORD: "x" },
    });
    for (const d of [join(root, "envs"), join(cfg.stateDir, "logs"), join(cfg.stateDir, "pids"), cfg.members[0]!.dir])
      mkdirSync(d, { recursive: true });
    writeFileSync(join(cfg.stateDir, "logs", "pg1.log"), "x");
    writeFileSync(cfg.secretsFile, "POSTGRES_PASSWORD=x\n", { mode: 0o600 });
    spawnSync("chown", ["-R", `${uid}:${uid}`, root]);
    return { root, cfg };
  }
  test("a user's stack with root-owned files: who owns what, and the one chown that repairs it", () => {
    const { root, cfg } = tree("ut", false, NOBODY);
    try {
      expect(() => assertStackOwnership(cfg, NOBODY)).not.toThrow();
      chownSync(join(cfg.stateDir, "logs", "pg1.log"), 0, 0);
      chownSync(cfg.secretsFile, 0, 0);
      let err: any;
      try {
        assertStackOwnership(cfg, NOBODY);
      } catch (e) {
        err = e;
      }
      expect(err?.code).toBe("OWNED_BY_OTHER_USER");
      expect(err.message).toBe(
        "stack ut has files of another user (a `sudo make …` ran here?): root owns .state/ut/logs/pg1.log, envs/.secrets.ut.env; you are nobody",
      );
      expect(err.fix).toBe("sudo chown -R nobody: .state/ut envs/.secrets.ut.env");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  test("a stack whose processes run as root (started with sudo): stop it with sudo first, then chown", () => {
    const { root, cfg } = tree("ut", false, NOBODY);
    const sleeper = Bun.spawn(["sleep", "60"]); // a process of root's, as after `sudo make dev-up`
    try {
      writeFileSync(join(cfg.stateDir, "pids", "haproxy.pid"), `${sleeper.pid}\n`);
      chownSync(join(cfg.stateDir, "pids", "haproxy.pid"), 0, 0);
      let err: any;
      try {
        assertStackOwnership(cfg, NOBODY);
      } catch (e) {
        err = e;
      }
      expect(err?.message).toBe(
        `stack ut has files of another user (a \`sudo make …\` ran here?): root owns .state/ut/pids/haproxy.pid; haproxy (pid ${sleeper.pid}) runs as root; you are nobody`,
      );
      expect(err.fix).toBe(
        "first `sudo make dev-down STACK=ut` (its processes run as another user), then sudo chown -R nobody: .state/ut",
      );
    } finally {
      sleeper.kill();
      rmSync(root, { recursive: true, force: true });
    }
  });
  test("`sudo make` over a user's stack is refused: run it as that user", () => {
    const { root, cfg } = tree("ut", true, NOBODY);
    try {
      let err: any;
      try {
        assertStackOwnership(cfg, 0);
      } catch (e) {
        err = e;
      }
      expect(err?.code).toBe("OWNED_BY_OTHER_USER");
      expect(err.message).toStartWith(
        "stack ut belongs to nobody (brought up without sudo), and this command runs as root: nobody owns .state/ut",
      );
      expect(err.fix).toBe(
        "run it as nobody, without sudo: `make … STACK=ut` (make setup is the only target that needs root, and it asks sudo itself)",
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  test("as root, member dirs belong to postgres: that is expected, not reported", () => {
    const { root, cfg } = tree("ut", true, 0);
    try {
      const pg = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim();
      chownSync(cfg.members[0]!.dir, Number(pg), Number(pg));
      expect(misownedPaths(cfg, 0)).toEqual([]);
      // nginx (as root) makes its temp dirs as its worker user, nobody: root's own stack, not another user's
      mkdirSync(join(cfg.stateDir, "nginx", "tmp", "client"), { recursive: true });
      chownSync(join(cfg.stateDir, "nginx", "tmp", "client"), NOBODY, NOBODY);
      expect(() => assertStackOwnership(cfg, 0)).not.toThrow();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  test("a permission error that reaches an entry point is PERMISSION_DENIED with the owner, never INTERNAL", () => {
    const stack = "ut-perm";
    const envFile = join(ROOT_DIR, "envs", `${stack}.env`);
    writeFileSync(envFile, TEST_ENV);
    try {
      // status as nobody: the secrets file of this stack is root's 0600 (a `sudo make` made it)
      const secrets = join(ROOT_DIR, "envs", `.secrets.${stack}.env`);
      writeFileSync(secrets, "POSTGRES_PASSWORD=x\n", { mode: 0o600 });
      const r = spawnSync(
        "setpriv",
        [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", BUN, "scripts/status.ts"],
        { cwd: ROOT_DIR, encoding: "utf8", env: { ...process.env, STACK: stack, HOME: "/tmp" } },
      );
      rmSync(secrets);
      expect(r.stderr).not.toContain("INTERNAL");
      expect(r.stderr).toContain(
        `error [OWNED_BY_OTHER_USER]: stack ${stack} has files of another user (a \`sudo make …\` ran here?): root owns envs/.secrets.${stack}.env`,
      );
      expect(r.status).toBe(1);
      const e = permissionError(
        Object.assign(new Error("EACCES: permission denied, open '/etc/shadow'"), {
          code: "EACCES",
          syscall: "open",
          path: "/etc/shadow",
        }),
      )!;
      expect(e.format()).toContain(
        "error [PERMISSION_DENIED]: open /etc/shadow: permission denied (EACCES); it belongs to root",
      );
    } finally {
      rmSync(envFile, { force: true });
    }
  });
});

describe("make deps after a `sudo make` made node_modules", () => {
  test("a root-owned node_modules is named with the chown that repairs it, before npm's EACCES", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-deps-"));
    try {
      chmodSync(dir, 0o777);
      for (const f of ["Makefile", "package.json", "package-lock.json"])
        writeFileSync(join(dir, f), readFileSync(join(ROOT_DIR, f)));
      mkdirSync(join(dir, "node_modules")); // root's, as after `sudo make dev-up`
      const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "make", "-s", "deps"], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, HOME: "/tmp" },
      });
      expect(r.stderr).toContain(
        "error [OWNED_BY_OTHER_USER]: node_modules belongs to root (a sudo make ran here first?), you are nobody\n  fix: sudo chown -R nobody: node_modules",
      );
      expect(r.status).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
