/**
 * new-app against the real cluster: roles and databases in Postgres, the env
 * file, nginx routing a hostname to a real listener, rollback, --remove with
 * its backup, and the interactive flow through a real pseudo-terminal. Every
 * app here is named it_na_* and removed at the end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { appEnvPath, appNginxPath, loadApps, registeredDatabases, registryPath } from "../../scripts/lib/apps";
import { onboardApp, readEnvPassword, type Step } from "../../scripts/lib/onboard/onboard";
import { removeApp, removedBackupDir } from "../../scripts/lib/onboard/remove";
import { connect } from "../../scripts/lib/pg";
import { portFree } from "../../scripts/lib/ports";
import { BUN, runScript, testConfig, TEST_STACK, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const PREFIX = "it_na_";
// Each test spawns real processes against a shared, possibly busy machine: allow more than bun's 5 s default.
const SLOW = 60_000;
const ROOT = join(import.meta.dir, "../..");

async function freePort(from: number): Promise<number> {
  for (let p = from; p < from + 500; p++)
    if ((await portFree("127.0.0.1", p)) && !loadApps(cfg).some((a) => a.port === p)) return p;
  throw new Error("no free port");
}

async function pgState(name: string) {
  const c = await connect(cfg);
  try {
    const r = await c.query(
      "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS role, EXISTS (SELECT 1 FROM pg_database WHERE datname = $2) AS db",
      [name, `${name}_db`],
    );
    return r.rows[0] as { role: boolean; db: boolean };
  } finally {
    await c.end();
  }
}

/** Nothing of the app is left: no role, database, env file, nginx block or registry entry. */
async function expectNothingOf(name: string) {
  expect(await pgState(name)).toEqual({ role: false, db: false });
  expect(existsSync(appEnvPath(cfg, name))).toBe(false);
  expect(existsSync(appNginxPath(cfg, name))).toBe(false);
  expect(loadApps(cfg).some((a) => a.name === name)).toBe(false);
}

async function tryConnect(url: string, database?: string): Promise<string> {
  const u = new URL(url);
  if (database) u.pathname = `/${database}`;
  const c = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 5000 });
  c.on("error", () => {});
  try {
    await c.connect();
    const r = await c.query("SELECT current_user || '@' || current_database() AS who");
    return r.rows[0].who;
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  } finally {
    await c.end().catch(() => {});
  }
}

const envUrl = (name: string, key = "DATABASE_URL") =>
  readFileSync(appEnvPath(cfg, name), "utf8").match(new RegExp(`^${key}=(.*)$`, "m"))![1]!;

async function viaNginx(domain: string): Promise<{ status: number; app: string | null; body: string }> {
  const res = await fetch(`http://${cfg.api.address}:${cfg.api.port}/`, {
    headers: { Host: domain, Connection: "close" },
  });
  return { status: res.status, app: res.headers.get("x-pgplatform-app"), body: await res.text() };
}

async function cleanup() {
  for (const a of loadApps(cfg).filter((x) => x.name.startsWith(PREFIX))) await removeApp(cfg, a.name).catch(() => {});
  for (const n of ["book", "other", "pty", "ctrlc", "fail", "nginxbad", "rot"])
    await removeApp(cfg, PREFIX + n).catch(() => {});
  for (const f of existsSync(removedBackupDir(cfg)) ? readdirSync(removedBackupDir(cfg)) : [])
    if (f.startsWith(PREFIX)) rmSync(join(removedBackupDir(cfg), f), { force: true });
}

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  await cleanup(); // a previous run that was killed may have left some
}, 60_000);

afterAll(async () => {
  await cleanup();
  await waitClusterHealthy(cfg);
}, 60_000);

describe("new-app: onboarding on a real cluster", () => {
  let bookPort = 0;
  const book = `${PREFIX}book`;
  const other = `${PREFIX}other`;

  test(
    "creates role, database, env file (0600), nginx block and registry entry",
    async () => {
      bookPort = await freePort(29100);
      const r = runScript("new-app.ts", [
        book,
        "--yes",
        "--json",
        "--port",
        String(bookPort),
        "--domain",
        "it-na-book.test",
      ]);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.created).toBe(true);
      expect(j.app).toMatchObject({
        name: book,
        database: `${book}_db`,
        role: book,
        port: bookPort,
        domain: "it-na-book.test",
      });
      expect(j.changes.join("\n")).toContain(`role ${book}`);
      expect(await pgState(book)).toEqual({ role: true, db: true });
      expect(statSync(appEnvPath(cfg, book)).mode & 0o777).toBe(0o600);
      expect(appEnvPath(cfg, book)).toEndWith(TEST_STACK === "dev" ? `.env.${book}` : `.env.${TEST_STACK}.${book}`);
      expect(readFileSync(appEnvPath(cfg, book), "utf8")).toContain(`PORT=${bookPort}\n`);
      expect(loadApps(cfg).find((a) => a.name === book)).toMatchObject({ port: bookPort, domain: "it-na-book.test" });
      expect(existsSync(appNginxPath(cfg, book))).toBe(true);
      expect(registeredDatabases(cfg)).toContain(`${book}_db`); // what `make backup` dumps
      // The password never reaches the output, and the server only holds a SCRAM verifier.
      const password = readEnvPassword(appEnvPath(cfg, book))!;
      expect(r.out).not.toContain(password);
      const c = await connect(cfg);
      const v = (await c.query("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [book])).rows[0].rolpassword;
      await c.end();
      expect(v).toStartWith("SCRAM-SHA-256$4096:");
    },
    SLOW,
  );

  test(
    "its role connects to its own database only: refused on another app's and on postgres",
    async () => {
      const r = runScript("new-app.ts", [other, "--yes", "--json", "--port", String(await freePort(bookPort + 1))]);
      expect(r.code).toBe(0);
      const url = envUrl(book);
      expect(await tryConnect(url)).toBe(`${book}@${book}_db`);
      expect(await tryConnect(url, `${other}_db`)).toMatch(/refused: permission denied for database/);
      // DATABASE_URL goes through pgbouncer, which has no pool for postgres; the direct URL reaches the server's refusal.
      expect(await tryConnect(url, "postgres")).toBe("refused: no such database: postgres");
      expect(await tryConnect(envUrl(book, "DIRECT_URL"), "postgres")).toMatch(
        /refused: permission denied for database "postgres"/,
      );
      expect(await tryConnect(envUrl(other), `${book}_db`)).toMatch(/refused: permission denied for database/);
      // It owns its database: it can create tables there.
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query("CREATE TABLE notes (id int PRIMARY KEY, body text)");
      await c.query("INSERT INTO notes VALUES (1, 'kept in the final backup')");
      await c.end();
    },
    SLOW,
  );

  test(
    "nginx routes the app's hostname to its port",
    async () => {
      const server = Bun.serve({
        hostname: "127.0.0.1",
        port: bookPort,
        fetch: (req) => new Response(`hello from ${book} (${req.headers.get("host")})`),
      });
      try {
        const r = await viaNginx("it-na-book.test");
        expect(r.status).toBe(200);
        expect(r.app).toBe(book);
        expect(r.body).toBe(`hello from ${book} (it-na-book.test)`);
        expect((await viaNginx("unknown-host.test")).app).toBeNull();
      } finally {
        server.stop(true);
      }
    },
    SLOW,
  );

  test(
    "db-url prints a working URL for the app's role",
    async () => {
      const r = runScript("db-url.ts", [], { DB: `${book}_db`, ROLE: book });
      expect(r.code).toBe(0);
      expect(await tryConnect(r.stdout.trim())).toBe(`${book}@${book}_db`);
    },
    SLOW,
  );

  test(
    "re-running is a no-op: reports what exists, changes nothing",
    async () => {
      const files = [appEnvPath(cfg, book), appNginxPath(cfg, book), registryPath(cfg)];
      const before = files.map((f) => [readFileSync(f, "utf8"), statSync(f).mtimeMs]);
      const r = runScript("new-app.ts", [book, "--yes", "--json"]);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.changes).toEqual([]);
      expect(j.created).toBe(false);
      expect(j.unchanged).toContain(`role ${book}`);
      expect(files.map((f) => [readFileSync(f, "utf8"), statSync(f).mtimeMs])).toEqual(before);
      // The human output says so too.
      const h = runScript("new-app.ts", [book, "--yes"]);
      expect(h.code).toBe(0);
      expect(h.out).toContain("already exists: nothing to change");
      // A different port for an existing app is refused, not applied.
      const moved = runScript("new-app.ts", [book, "--yes", "--port", String(bookPort + 7)]);
      expect(moved.code).toBe(1);
      expect(moved.out).toContain(`already has port ${bookPort}`);
    },
    SLOW,
  );

  test(
    "--rotate-password: the old password stops working, the new one works",
    async () => {
      const oldUrl = envUrl(book);
      const oldDirect = envUrl(book, "DIRECT_URL");
      const r = runScript("new-app.ts", [book, "--rotate-password", "--yes", "--json"]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).changes).toContain(`new password for role ${book}`);
      const newUrl = envUrl(book);
      expect(newUrl).not.toBe(oldUrl);
      // The pooler got the new verifier too (re-copied and RELOADed): the old password fails on both paths.
      expect(await tryConnect(oldUrl)).toBe("refused: SASL authentication failed");
      expect(await tryConnect(oldDirect)).toMatch(/refused: password authentication failed/);
      expect(await tryConnect(newUrl)).toBe(`${book}@${book}_db`);
      expect(await tryConnect(envUrl(book, "DIRECT_URL"))).toBe(`${book}@${book}_db`);
    },
    SLOW,
  );

  const BAD_NAMES = [
    "Bookwriter",
    "book writer",
    "'; DROP DATABASE postgres; --",
    'x"y',
    "a",
    "1app",
    "book-writer",
    "postgres",
    "template1",
    "anon",
    "authenticator",
    "pg_read_all_data",
    "orchestrator_ai_dev",
    "x".repeat(40),
  ];
  test.each(BAD_NAMES)(
    "bad name %p is rejected before any change",
    async (name) => {
      const registry = readFileSync(registryPath(cfg), "utf8");
      const r = runScript("new-app.ts", [name, "--yes"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/error \[BAD_INPUT\]: .*(\^\[a-z\]\[a-z0-9_\]\{1,30\}\$|reserved)/);
      expect(readFileSync(registryPath(cfg), "utf8")).toBe(registry);
      expect(existsSync(appEnvPath(cfg, name))).toBe(false);
      if (
        /^[a-z]/.test(name) &&
        !["postgres", "template1", "anon", "authenticator", "pg_read_all_data"].includes(name)
      ) {
        expect((await pgState(name)).db).toBe(false);
      }
    },
    SLOW,
  );

  test(
    "bad hostname and port are rejected before any change",
    async () => {
      for (const [args, msg] of [
        [["--domain", "evil.test; }"], "not a valid hostname"],
        [["--port", "80"], "1024-65535"],
        [["--port", String(bookPort)], `already used by app ${book}`],
        [["--port", String(cfg.haproxy.rwPort)], "used by the stack itself"],
      ] as const) {
        const r = runScript("new-app.ts", [`${PREFIX}fail`, "--yes", ...args]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(msg);
      }
      await expectNothingOf(`${PREFIX}fail`);
    },
    SLOW,
  );

  test(
    "no terminal and no name: a clear error, never a hang",
    () => {
      const t0 = Date.now();
      const r = runScript("new-app.ts", []);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("error [MISSING_NAME]");
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(runScript("new-app.ts", ["--help"]).stdout).toContain("--remove");
    },
    SLOW,
  );

  const STEPS: Step[] = ["role", "database", "privileges", "supabase", "env-file", "nginx", "registry", "pool"];
  test.each(STEPS)(
    "a failure injected before step %p leaves nothing behind",
    async (at) => {
      const name = `${PREFIX}fail`;
      const registry = readFileSync(registryPath(cfg), "utf8");
      const port = await freePort(bookPort + 50);
      await expect(
        onboardApp(
          cfg,
          { name, port, supabase: true },
          {
            beforeStep: (s) => {
              if (s === at) throw new Error(`injected at ${s}`);
            },
          },
        ),
      ).rejects.toThrow(new RegExp(`step ${at} failed: injected at ${at}`));
      await expectNothingOf(name);
      expect(readFileSync(registryPath(cfg), "utf8")).toBe(registry);
    },
    SLOW,
  );

  test(
    "Ctrl-C mid-way (the abort signal) stops at the next step and undoes the run",
    async () => {
      const name = `${PREFIX}fail`;
      const ac = new AbortController();
      const err = await onboardApp(
        cfg,
        { name, port: await freePort(bookPort + 70) },
        {
          signal: ac.signal,
          beforeStep: (s) => {
            if (s === "env-file") ac.abort();
          },
        },
      ).catch((e) => e);
      expect(err.code).toBe("INTERRUPTED");
      expect(err.message).toMatch(/step nginx failed: interrupted.*undone: .*database it_na_fail_db, role it_na_fail/);
      await expectNothingOf(name);
    },
    SLOW,
  );

  test(
    "a real failure mid-way (nginx -t rejects the config) is rolled back, and nginx keeps serving",
    async () => {
      const name = `${PREFIX}nginxbad`;
      const broken = join(cfg.stateDir, "nginx", "apps", `${PREFIX}zz-broken.conf`);
      writeFileSync(broken, "server { this is not nginx }\n");
      try {
        const r = runScript("new-app.ts", [name, "--yes", "--port", String(await freePort(bookPort + 60))]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("error [NGINX_INVALID]");
        expect(r.stderr).toMatch(/undone: .*database it_na_nginxbad_db.*role it_na_nginxbad/);
      } finally {
        rmSync(broken, { force: true });
      }
      await expectNothingOf(name);
      expect((await viaNginx("it-na-book.test")).app).toBe(book);
    },
    SLOW,
  );

  test(
    "two runs at once are serialised: both apps created, on different ports from the plan",
    async () => {
      const names = [`${PREFIX}c1`, `${PREFIX}c2`];
      const procs = names.map((n) =>
        Bun.spawn([BUN, "scripts/new-app.ts", n, "--yes", "--json"], {
          cwd: ROOT,
          env: { ...process.env, STACK: TEST_STACK },
          stdout: "pipe",
          stderr: "pipe",
        }),
      );
      const codes = await Promise.all(procs.map((p) => p.exited));
      expect(codes).toEqual([0, 0]);
      const ports = names.map((n) => loadApps(cfg).find((a) => a.name === n)?.port);
      expect(ports.every((p) => typeof p === "number" && p >= 9400 && p % 100 === 0)).toBe(true);
      expect(ports[0]).not.toBe(ports[1]);
      for (const n of names) await removeApp(cfg, n);
      for (const n of names) await expectNothingOf(n);
    },
    SLOW,
  );

  test(
    "a cluster that is down is a clear error",
    async () => {
      const down = { ...cfg, haproxy: { ...cfg.haproxy, rwPort: await freePort(31000) } };
      await expect(onboardApp(down, { name: `${PREFIX}fail` })).rejects.toThrow(
        /cannot reach Postgres through HAProxy/,
      );
      await expectNothingOf(`${PREFIX}fail`);
    },
    SLOW,
  );

  test(
    "--remove: confirms, keeps a verified 0600 backup, then drops everything",
    async () => {
      const noYes = runScript("new-app.ts", [book, "--remove"]);
      expect(noYes.code).toBe(1);
      expect(noYes.stderr).toContain("error [NEEDS_CONFIRMATION]");
      expect(await pgState(book)).toEqual({ role: true, db: true });

      const r = runScript("new-app.ts", [book, "--remove", "--yes", "--json"]);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      const dump = j.backup.path as string;
      expect(dump).toMatch(new RegExp(`/backups/removed/${book}-\\d{8}T\\d{6}Z\\.dump$`));
      expect(statSync(dump).mode & 0o777).toBe(0o600);
      const list = spawnSync(`${cfg.pgBinDir}/pg_restore`, ["--list", dump], { encoding: "utf8" });
      expect(list.status).toBe(0);
      expect(list.stdout).toContain("TABLE DATA public notes");
      await expectNothingOf(book);
      expect((await viaNginx("it-na-book.test")).app).toBeNull();
      // Removing again finds nothing and says so.
      const again = runScript("new-app.ts", [book, "--remove", "--yes"]);
      expect(again.code).toBe(0);
      expect(again.out).toContain("nothing to remove");
    },
    SLOW,
  );
});

describe("new-app: interactive flow through a real pseudo-terminal", () => {
  // A tiny expect(1): waits for each prompt on a real PTY and types the answer.
  const DRIVER = String.raw`
import os, pty, sys, json, re, select, time, fcntl, struct, termios
steps = json.loads(sys.argv[1]); cmd = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a real terminal has a size
    os.execvp(cmd[0], cmd)
buf = b""
ansi = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]")
def text(): return ansi.sub(b"", buf).decode("utf8", "replace")
def pump(timeout):
    global buf
    r, _, _ = select.select([fd], [], [], timeout)
    if not r: return True
    try: d = os.read(fd, 65536)
    except OSError: return False
    if not d: return False
    buf += d
    return True
for expect, send in steps:
    deadline = time.time() + 20
    while not re.search(expect, text()):
        if time.time() > deadline or not pump(0.2):
            sys.stdout.write(text()); print("\n<<NO PROMPT " + expect + ">>"); os.kill(pid, 9); sys.exit(3)
    time.sleep(0.1)
    os.write(fd, send.encode())
while pump(30): pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(text())
print("\n<<EXIT %d>>" % os.waitstatus_to_exitcode(status))
`;
  const drive = (steps: [string, string][], args: string[]) => {
    const env: Record<string, string | undefined> = { ...process.env, STACK: TEST_STACK, TERM: "xterm-256color" };
    delete env.CI; // clack (and our ui) only prompt on a terminal outside CI
    const r = spawnSync("python3", ["-c", DRIVER, JSON.stringify(steps), BUN, "scripts/new-app.ts", ...args], {
      cwd: ROOT,
      env,
      encoding: "utf8",
      timeout: 90_000,
    });
    return r.stdout + r.stderr;
  };

  test(
    "answers typed at the prompts create the app; a bad name is refused at the prompt",
    async () => {
      const name = `${PREFIX}pty`;
      const port = await freePort(29700);
      const out = drive(
        [
          ["App name\\?", "Bad Name\r"],
          ["not a valid app name", "\x15" + name + "\r"], // Ctrl-U clears the line, then the good name
          ["Hostname for", "it-na-pty.test\r"],
          ["Supabase", "y"],
          [`Create ${name}\\?`, "\r"],
        ],
        ["--port", String(port)],
      );
      expect(out).toContain("<<EXIT 0>>");
      expect(out).toContain(`${name} created`);
      expect(out).toContain("next steps");
      const entry = loadApps(cfg).find((a) => a.name === name);
      expect(entry).toMatchObject({ port, domain: "it-na-pty.test", supabase: true });
      const c = await connect(cfg, { database: `${name}_db` });
      const schemas = (
        await c.query("SELECT nspname FROM pg_namespace WHERE nspname IN ('auth','storage','extensions') ORDER BY 1")
      ).rows.map((r) => r.nspname);
      await c.end();
      expect(schemas).toEqual(["auth", "extensions", "storage"]);
      // authenticator (PostgREST's login role) may connect to a --supabase database.
      const auth = await connect(cfg, {
        database: `${name}_db`,
        user: "authenticator",
        password: cfg.secrets.AUTHENTICATOR_PASSWORD,
      });
      await auth.end();
    },
    SLOW,
  );

  test(
    "Ctrl-C at a prompt exits 130 and creates nothing: no database, role, registry entry, env file or nginx block",
    async () => {
      // Every answer given, Ctrl-C at the last question: everything needed to create the app is known by then.
      const name = `${PREFIX}ctrlc`;
      const objects = async () => {
        const c = await connect(cfg);
        try {
          const dbs = (await c.query("SELECT datname FROM pg_database ORDER BY 1")).rows.map(
            (r) => r.datname as string,
          );
          const roles = (await c.query("SELECT rolname FROM pg_roles ORDER BY 1")).rows.map((r) => r.rolname as string);
          return { dbs, roles };
        } finally {
          await c.end();
        }
      };
      const registry = () => (existsSync(registryPath(cfg)) ? readFileSync(registryPath(cfg), "utf8") : null);
      const before = { objects: await objects(), registry: registry() };
      const out = drive(
        [
          ["App name\\?", name + "\r"],
          ["Hostname for", "\r"],
          ["Supabase", "n"],
          [`Create ${name}\\?`, "\x03"],
        ],
        [],
      );
      expect(out).toContain("cancelled: nothing created");
      expect(out).toContain("<<EXIT 130>>");
      expect(await objects()).toEqual(before.objects);
      expect(registry()).toBe(before.registry);
      expect(existsSync(appEnvPath(cfg, name))).toBe(false);
      expect(existsSync(appNginxPath(cfg, name))).toBe(false);
    },
    SLOW,
  );

  test(
    "--remove asks, and answering no removes nothing",
    async () => {
      const name = `${PREFIX}pty`;
      const out = drive([[`Drop ${name}\\?`, "\r"]], [name, "--remove"]); // default is No
      expect(out).toContain("cancelled: nothing removed");
      expect(await pgState(name)).toEqual({ role: true, db: true });
    },
    SLOW,
  );
});
