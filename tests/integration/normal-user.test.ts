/**
 * Issue 19: the README followed by an ordinary user. The test creates a user
 * with passwordless sudo (a sudoers.d file it removes again), copies the
 * checkout (tracked files + node_modules) to a long path under that user's
 * home, and runs the README's commands as that user with its login PATH (no
 * /usr/sbin): dev-up, status, backup (verified), new-app, clean, dev-up and
 * backup again. Its stack has its own address block, 127.0.71.x, so it never
 * meets another stack. User, home, sudoers file, runtime folder and every
 * process are removed afterwards, also after a failure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT_DIR } from "../../scripts/lib/config";
import { osUserIds } from "../../scripts/lib/exec";

const USER = "pgp-user-it";
const HOME = `/home/${USER}`;
const CHECKOUT = join(
  HOME,
  "src",
  "github.com",
  "a-small-business",
  "platform-experiments",
  "pgplatform-followed-word-for-word",
  "worktrees",
  "connect-your-app",
);
const STACK = "it-user";
const SUDOERS = `/etc/sudoers.d/${USER}`;
const BLOCK = "127.0.71";

let loginPath = "";
let uid = -1;

const sh = (cmd: string[], opts: { cwd?: string; timeout?: number } = {}) => {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", timeout: opts.timeout ?? 120_000, cwd: opts.cwd });
  return {
    code: r.status ?? -1,
    out: (r.stdout ?? "") + (r.stderr ?? ""),
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? "",
  };
};

/** One command as the user, with exactly its login environment's PATH (argv, no shell). */
function asUser(args: string[], timeout = 600_000) {
  const env = [
    "env",
    "-i",
    `HOME=${HOME}`,
    `USER=${USER}`,
    `LOGNAME=${USER}`,
    `PATH=${loginPath}`,
    "LANG=C.UTF-8",
    "SHELL=/bin/bash",
  ];
  return sh(["runuser", "-u", USER, "--", ...env, ...args], { cwd: CHECKOUT, timeout });
}
const make = (...args: string[]) => asUser(["make", ...args, `STACK=${STACK}`]);

/** Every process the test user still has: only this test started any. Killed by pid. */
function killUserProcesses() {
  if (uid < 0) return;
  for (let round = 0; round < 20; round++) {
    const pids = sh(["ps", "-u", String(uid), "-o", "pid="])
      .stdout.split("\n")
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, round < 5 ? "SIGTERM" : "SIGKILL");
      } catch {}
    }
    Bun.sleepSync(500);
  }
}

function removeEverything() {
  if (existsSync(CHECKOUT) && loginPath) make("clean", "YES=1", "ARGS=--purge-secrets");
  killUserProcesses();
  rmSync(SUDOERS, { force: true });
  if (osUserIds(USER)) sh(["userdel", "-r", "-f", USER]);
  rmSync(HOME, { recursive: true, force: true });
  if (uid >= 0) rmSync(`/tmp/pgp-${uid}`, { recursive: true, force: true });
}

beforeAll(() => {
  if (osUserIds(USER)) removeEverything(); // a previous run that was killed
  const add = sh(["useradd", "--create-home", "--home-dir", HOME, "--shell", "/bin/bash", USER]);
  if (add.code !== 0) throw new Error(`useradd: ${add.out}`);
  uid = osUserIds(USER)!.uid;
  writeFileSync(SUDOERS, `${USER} ALL=(ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
  const visudo = sh(["visudo", "-c", "-f", SUDOERS]);
  if (visudo.code !== 0) throw new Error(`sudoers: ${visudo.out}`);
  loginPath = sh(["runuser", "-l", USER, "-c", 'printf %s "$PATH"']).stdout;

  // The checkout: what git tracks (plus new files not yet committed), then node_modules.
  const files = sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT_DIR })
    .stdout.split("\0")
    .filter(Boolean);
  for (const f of files) {
    const from = join(ROOT_DIR, f);
    if (!existsSync(from)) continue;
    mkdirSync(dirname(join(CHECKOUT, f)), { recursive: true });
    cpSync(from, join(CHECKOUT, f));
  }
  const cp = sh(["cp", "-a", join(ROOT_DIR, "node_modules"), join(CHECKOUT, "node_modules")], { timeout: 300_000 });
  if (cp.code !== 0) throw new Error(`copy node_modules: ${cp.out}`);
  writeFileSync(join(CHECKOUT, "node_modules", ".installed"), ""); // newer than package.json: make does not re-run npm ci
  const env = readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8")
    .replace(/^CLUSTER_NAME=.*$/m, "CLUSTER_NAME=pgplatform-it-user")
    .replace(/^MEMBER_ADDRESSES=.*$/m, `MEMBER_ADDRESSES=${BLOCK}.11,${BLOCK}.12,${BLOCK}.13`)
    .replace(/^HAPROXY_ADDRESS=.*$/m, `HAPROXY_ADDRESS=${BLOCK}.1`)
    .replace(/^API_ADDRESS=.*$/m, `API_ADDRESS=${BLOCK}.1`);
  writeFileSync(join(CHECKOUT, "envs", `${STACK}.env`), env);
  const own = sh(["chown", "-R", `${USER}:${USER}`, HOME]);
  if (own.code !== 0) throw new Error(`chown: ${own.out}`);
  chmodSync(HOME, 0o700);
}, 600_000);

afterAll(() => removeEverything(), 600_000);

describe("the README as an ordinary user (login PATH, long checkout path under $HOME)", () => {
  test("the setting is what a user has: no /usr/sbin on PATH, a checkout path over 120 characters, passwordless sudo", () => {
    expect(loginPath.split(":")).not.toContain("/usr/sbin");
    expect(loginPath.split(":")).not.toContain("/sbin");
    expect(CHECKOUT.length).toBeGreaterThan(120);
    expect(
      join(
        CHECKOUT,
        ".state",
        STACK,
        "members",
        "scratch",
        "verify-20261130T163652Z-20261130T163652Z",
        "run",
        ".s.PGSQL.5432",
      ).length,
    ).toBeGreaterThan(107);
    expect(asUser(["sudo", "-n", "true"]).code).toBe(0);
  });

  test("make dev-up: the stack comes up, nothing installed, no apt-get", () => {
    const r = make("dev-up");
    expect(r.out).not.toContain("apt-get");
    expect(r.out).not.toContain("installing");
    expect(r.out).not.toContain("INTERNAL");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`Postgres read-write  ${BLOCK}.1:16012`);
    // Everything runs as the user; sockets live in its own short runtime folder.
    expect(readFileSync(join(CHECKOUT, ".state", STACK, "members", "pg1", "patroni.yml"), "utf8")).toContain(
      `unix_socket_directories: '/tmp/pgp-${uid}/${STACK}/pg1'`,
    );
  }, 600_000);

  test("make status: healthy; ARGS=--json is pure JSON", () => {
    const r = make("status");
    expect(r.stdout).toContain(`stack ${STACK}: healthy`);
    expect(r.stdout).toContain("not routed (replica)");
    expect(r.code).toBe(0);
    const j = make("status", "ARGS=--json");
    expect(JSON.parse(j.stdout).health.ok).toBe(true);
  }, 120_000);

  test("make backup: verified by a restore into a scratch instance (its socket fits, whatever the depth)", () => {
    const r = make("backup");
    expect(r.out).not.toContain("did not start");
    expect(r.out).toContain("verified     yes");
    expect(r.code).toBe(0);
  }, 600_000);

  test("make new-app: nginx found and reloaded without /usr/sbin on PATH", () => {
    const r = make("new-app", "NAME=bookwriter", "YES=1");
    expect(r.out).not.toContain("Executable not found");
    expect(r.code).toBe(0);
    expect(existsSync(join(CHECKOUT, "envs", `.env.${STACK}.bookwriter`))).toBe(true);
    const url = asUser(["make", "-s", "db-url", "DB=bookwriter_db", "ROLE=bookwriter", "PORT=ro", `STACK=${STACK}`]);
    expect(url.stdout.trim()).toMatch(
      new RegExp(`^postgresql://bookwriter:[^@]+@${BLOCK.replace(/\./g, "\\.")}\\.1:16013/bookwriter_db$`),
    );
  }, 300_000);

  test("`sudo make status` over the user's stack stops before acting and says to run it as the user", () => {
    const r = asUser(["sudo", "-n", "make", "status", `STACK=${STACK}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `error [OWNED_BY_OTHER_USER]: stack ${STACK} belongs to ${USER} (brought up without sudo), and this command runs as root`,
    );
    expect(r.stderr).not.toContain("INTERNAL");
    // and nothing of root's was left in the checkout
    const rootOwned = sh([
      "find",
      CHECKOUT,
      "-path",
      join(CHECKOUT, "node_modules"),
      "-prune",
      "-o",
      "-user",
      "root",
      "-print",
    ]).stdout.trim();
    expect(rootOwned).toBe("");
  }, 120_000);

  test("make clean leaves nothing that refers to what it deleted; dev-up and backup work again", () => {
    const c = make("clean", "YES=1");
    expect(c.code).toBe(0);
    expect(existsSync(join(CHECKOUT, "envs", `apps.${STACK}.yaml`))).toBe(false);
    expect(existsSync(join(CHECKOUT, "envs", `.env.${STACK}.bookwriter`))).toBe(false);
    expect(existsSync(join(CHECKOUT, ".state", STACK))).toBe(false);
    expect(existsSync(`/tmp/pgp-${uid}/${STACK}`)).toBe(false);
    expect(existsSync(join(CHECKOUT, "envs", `.secrets.${STACK}.env`))).toBe(true); // kept, and said so
    expect(c.out).toContain(`kept envs/.secrets.${STACK}.env`);
    const up = make("dev-up");
    expect(up.code).toBe(0);
    const b = make("backup");
    expect(b.out).not.toContain("UNKNOWN_DATABASE");
    expect(b.out).toContain("verified     yes");
    expect(b.code).toBe(0);
  }, 900_000);
});
