/**
 * deploy-client over real SSH: our own sshd on 127.0.7.1:2227 (own config,
 * host key and authorized_keys in a temp dir), a generated client key, and a
 * client stack on 127.0.7.11-13 / 127.0.7.1 deployed with the native runtime.
 * Never touches the dev or test stacks; tears everything down in afterAll.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parse as parseDotenv } from "dotenv";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { ToolkitError } from "../../scripts/lib/errors";
import { readClientSecrets } from "../../scripts/lib/deploy/client-secrets";
import { TOOLKIT_PATHS } from "../../scripts/lib/deploy/bundle";
import { deployClient } from "../../scripts/lib/deploy/deploy";
import { loadClientSettings, remoteLayout } from "../../scripts/lib/deploy/settings";

const ROOT = resolve(import.meta.dir, "../..");
const BUN = process.execPath;
const NAME = "it7";
const SSH_ADDR = "127.0.7.1";
const SSH_PORT = 2227;
const REMOTE_DIR = `/var/tmp/pgplatform-clients/${NAME}`;
const tmp = mkdtempSync(join(tmpdir(), "pgp-deploy-it-"));
const clientsDir = join(tmp, "clients");
const key = join(tmp, "id_ed25519");
/**
 * A frozen copy of the toolkit: the working tree may change while this file
 * runs, and a release's digest covers the toolkit, so the same bundle must
 * come from the same files. Its own scripts/deploy-client.ts is what we run.
 */
const src = join(tmp, "src");
let sshd: ChildProcess | undefined;

const sh = (cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) => {
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    encoding: "utf8",
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    timeout: 600_000,
  });
  return {
    code: r.status ?? -1,
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? "",
    out: (r.stdout ?? "") + (r.stderr ?? ""),
  };
};

/** The user's way in: the entry script with Make's variables as flags. */
const deployScript = (args: string[]) =>
  sh([BUN, "scripts/deploy-client.ts", "--client", NAME, ...args], {
    cwd: src,
    env: { CLIENTS_DIR: clientsDir, CI: "true" },
  });

/**
 * A run that must succeed: on failure the error itself carries the exit code
 * and the output's last lines, so a CI log that shows only the summary at its
 * end still says why.
 */
function succeeded(r: ReturnType<typeof sh>, what: string) {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.out.trim().split("\n").slice(-6).join(" | ")}`);
  return r;
}
const json = (r: ReturnType<typeof sh>, what: string) => JSON.parse(succeeded(r, what).stdout);

function copyToolkit(to: string, from = ROOT) {
  for (const p of TOOLKIT_PATHS) if (existsSync(join(from, p))) cpSync(join(from, p), join(to, p), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(to, "node_modules"));
}

/**
 * Last resort after clean.ts: any process still running from this test's
 * remote dir (member data live under it too) or temp dirs: only processes
 * this file started have them on their command line.
 */
async function stopLeftovers(marks: string[], keep?: number) {
  const mine = () =>
    readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .filter((pid) => {
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
          return pid !== process.pid && pid !== keep && marks.some((m) => cmd.includes(m.endsWith("-") ? m : `${m}/`));
        } catch {
          return false;
        }
      });
  for (const pid of mine())
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      /* gone */
    }
  for (let i = 0; i < 100 && mine().length; i++) await Bun.sleep(100);
  for (const pid of mine())
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
}

async function waitPort(host: string, port: number, ms: number) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((res) => {
      const s = require("node:net").connect({ host, port }, () => {
        s.end();
        res(true);
      });
      s.on("error", () => res(false));
    });
    if (ok) return;
    await Bun.sleep(100);
  }
  throw new Error(`${host}:${port} not listening`);
}

function startSshd() {
  const dir = join(tmp, "sshd");
  mkdirSync(dir, { recursive: true });
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // sshd's privilege-separation dir (Debian's unit creates it)
  expect(sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_ed25519")]).code).toBe(0);
  expect(sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-client-it", "-f", key]).code).toBe(0);
  writeFileSync(join(dir, "authorized_keys"), readFileSync(`${key}.pub`), { mode: 0o600 });
  const conf = join(dir, "sshd_config");
  writeFileSync(
    conf,
    [
      `Port ${SSH_PORT}`,
      `ListenAddress ${SSH_ADDR}`,
      `HostKey ${join(dir, "host_ed25519")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      `PidFile ${join(dir, "sshd.pid")}`,
      "Subsystem sftp internal-sftp",
      "LogLevel ERROR",
    ].join("\n") + "\n",
  );
  sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", conf], { stdio: ["ignore", "ignore", "pipe"] });
  sshd.stderr!.on("data", () => {});
}

function writeClient() {
  mkdirSync(join(clientsDir, NAME), { recursive: true });
  writeFileSync(
    join(clientsDir, NAME, "client.env"),
    [
      `CLIENT_NAME=${NAME}`,
      `HOST=root@${SSH_ADDR}`,
      `SSH_PORT=${SSH_PORT}`,
      `SSH_IDENTITY=${key}`,
      `DOMAIN=${NAME}.internal`,
      "ACCESS=internal",
      "PROFILE=16",
      "PG_SHARED_BUFFERS=128MB",
      `REMOTE_DIR=${REMOTE_DIR}`,
      "KEEP_RELEASES=3",
      "RUNTIME=native",
      "MEMBER_ADDRESSES=127.0.7.11,127.0.7.12,127.0.7.13",
      `HAPROXY_ADDRESS=${SSH_ADDR}`,
      "HAPROXY_RW_PORT=9012",
      "HAPROXY_RO_PORT=9013",
      "HAPROXY_STATS_PORT=9014",
      `API_ADDRESS=${SSH_ADDR}`,
      "API_PORT=9010",
    ].join("\n") + "\n",
  );
}

const secrets = () => readClientSecrets(join(clientsDir, NAME, ".secrets.env"));
const envDb = async (env: string, password: string, database = `orchestrator_ai_${env}`) => {
  const c = new pg.Client({
    host: SSH_ADDR,
    port: 9012,
    user: `orchestrator_ai_${env}_app`,
    password,
    database,
    connectionTimeoutMillis: 5000,
  });
  await c.connect();
  try {
    return (await c.query("SELECT current_database() AS d")).rows[0].d as string;
  } finally {
    await c.end();
  }
};

/**
 * The client stack this file deploys, gone: with the toolkit's own clean
 * (STACK=client-it7 only), then whatever a killed earlier run left behind.
 */
async function removeTarget() {
  if (existsSync(`${REMOTE_DIR}/current`)) {
    sh([
      "env",
      "-C",
      `${REMOTE_DIR}/current`,
      `STACK=client-${NAME}`,
      "node_modules/.bin/bun",
      "scripts/clean.ts",
      "--yes",
    ]);
  }
  // An sshd of a killed earlier run of this file (its config lives in that run's temp dir) would answer
  // on our port with that run's key.
  await stopLeftovers([REMOTE_DIR, join(tmpdir(), "pgp-deploy-it-")], sshd?.pid);
  rmSync(REMOTE_DIR, { recursive: true, force: true });
}

beforeAll(async () => {
  // A run killed half-way (a CI timeout, a closed session) must not decide this one's release numbers.
  await removeTarget();
  copyToolkit(src);
  startSshd();
  await waitPort(SSH_ADDR, SSH_PORT, 10_000);
  await Bun.sleep(200);
  if (sshd!.exitCode !== null)
    throw new Error(`our sshd exited (${sshd!.exitCode}): is ${SSH_ADDR}:${SSH_PORT} held by another program?`);
  writeClient();
});

afterAll(async () => {
  await removeTarget();
  if (sshd?.pid && sshd.exitCode === null) {
    const exited = new Promise((r) => sshd!.once("exit", r));
    process.kill(sshd.pid, "SIGTERM");
    await exited;
  }
  rmSync(join(ROOT, ".state", "clients", NAME), { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
}, 120_000);

describe("deploy-client over ssh to 127.0.7.1 (native runtime)", () => {
  test("PLAN=1: bundle validated, preflight table passes, nothing changed on the target", () => {
    // First contact: the host key is recorded in the client's own known_hosts only because we ask (TRUST_NEW_HOST).
    const j = json(deployScript(["--plan", "--json", "--trust-new-host"]), "deploy-client --plan --trust-new-host");
    const hostKey = readFileSync(join(tmp, "sshd", "host_ed25519.pub"), "utf8")
      .trim()
      .split(" ")
      .slice(0, 2)
      .join(" ");
    expect(readFileSync(join(clientsDir, NAME, "known_hosts"), "utf8")).toContain(
      `[${SSH_ADDR}]:${SSH_PORT} ${hostKey}`,
    );
    expect(j.hostKeyRecorded).toStartWith(`recorded the host key of [${SSH_ADDR}]:${SSH_PORT} (ED25519 SHA256:`);
    expect(j.preflight.target).toBe(`root@${SSH_ADDR}:${SSH_PORT}`);
    expect(j.preflight.blockers).toBe(0);
    expect(j.preflight.rows.map((x: any) => x.check)).toEqual([
      "reach",
      "architecture",
      "os",
      "user",
      "runtime",
      "memory",
      "disk",
      "ports",
      "addresses",
      "clock",
    ]);
    expect(j.plan.validations.map((v: any) => v.check)).toEqual([
      "stack env",
      "compose staging",
      "compose production",
      "nginx -t",
    ]);
    expect(existsSync(REMOTE_DIR)).toBe(false);
  }, 60_000);

  test("deploy: environments up, every health check passes", async () => {
    const r = deployScript(["--yes", "--json"]);
    const j = json(r, "first deploy");
    expect(j.release).toBe(1);
    expect(j.newRelease).toBe(true);
    expect(j.apply.ok).toBe(true);
    const checks = j.apply.health.map((h: any) => h.check);
    for (const env of ["dev", "staging", "production"])
      for (const c of ["database", "pooled", "isolation", "nginx TLS", "signed key"])
        expect(checks).toContain(`${env}: ${c}`);
    expect(j.apply.health.every((h: any) => h.ok)).toBe(true);
    // Each environment's keys verify against its own secret on the target, the others' are refused there (issue 11, item 4).
    expect(j.apply.health.find((h: any) => h.check === "production: signed key").detail).toBe(
      "ANON_KEY and SERVICE_ROLE_KEY of production.env verify (HS256, role, iss, exp) against its own JWT_SECRET (JWT_SECRET_PRODUCTION), dev's and staging's service keys are refused, and orchestrator_ai_production does not hold it (PostgREST not running natively: signature and claims checked)",
    );
    const deployedJwt = (env: string) =>
      parseDotenv(readFileSync(`${REMOTE_DIR}/current/client/env/${env}.env`)).JWT_SECRET;
    expect(["dev", "staging", "production"].map(deployedJwt)).toEqual([
      secrets().JWT_SECRET_DEV,
      secrets().JWT_SECRET_STAGING,
      secrets().JWT_SECRET_PRODUCTION,
    ]);
    expect(new Set(["dev", "staging", "production"].map(deployedJwt)).size).toBe(3);
    expect(readFileSync(`${REMOTE_DIR}/current/client/digest`, "utf8").trim()).toBe(j.plan.digest);
    for (const v of Object.values(secrets())) expect(r.out).not.toContain(v!);
  }, 300_000);

  test("from outside: each environment reaches only its own database; nginx answers over TLS with the client's CA", async () => {
    const s = secrets();
    expect(await envDb("staging", s.DB_PASSWORD_STAGING!)).toBe("orchestrator_ai_staging");
    await expect(envDb("staging", s.DB_PASSWORD_STAGING!, "orchestrator_ai_production")).rejects.toThrow(
      /permission denied/,
    );
    await expect(envDb("dev", s.DB_PASSWORD_STAGING!)).rejects.toThrow(/password authentication failed/);
    const ca = readFileSync(join(clientsDir, NAME, ".tls", "ca.crt"), "utf8");
    // The certificate names the hostnames (production: the domain); we dial the address with that name.
    const res = await fetch(`https://${SSH_ADDR}:9000/healthz`, {
      tls: { ca, serverName: `${NAME}.internal` },
    } as RequestInit);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { environment: string }).environment).toBe("production");
    expect(res.headers.get("strict-transport-security")).toContain("max-age=");
    // Without the client's CA the certificate is not trusted.
    await expect(fetch(`https://${SSH_ADDR}:7100/healthz`)).rejects.toThrow();
  }, 60_000);

  test("re-deploying the same bundle changes nothing", () => {
    const j = json(deployScript(["--yes", "--json"]), "second deploy");
    // One comparison, so a failure prints everything that moved.
    const moved = {
      release: j.release,
      newRelease: j.newRelease,
      changed: j.changed,
      started: j.up.started,
      restarted: j.up.restarted,
      upChanges: j.up.changes,
      applyChanges: j.apply.changes,
    };
    if (
      JSON.stringify(moved) !==
      JSON.stringify({
        release: 1,
        newRelease: false,
        changed: false,
        started: [],
        restarted: [],
        upChanges: [],
        applyChanges: [],
      })
    ) {
      throw new Error(
        `the second deploy of the same bundle changed something: ${JSON.stringify(moved)} (digest ${j.plan.digest})`,
      );
    }
  }, 180_000);

  test("a broken release fails its health check and rolls back to the previous one", async () => {
    // A toolkit copy whose Supabase SQL is broken: dev-up on the target fails on it.
    // Copied from the frozen snapshot, so the only difference from release 1 is the broken file.
    const broken = join(tmp, "broken-src");
    copyToolkit(broken, src);
    writeFileSync(join(broken, "supabase", "roles.sql"), "SELECT this is not sql;\n");
    const s = loadClientSettings(NAME, clientsDir);
    const err = await deployClient(s, { sourceDir: broken, clientsBase: clientsDir }).then(
      () => undefined,
      (e) => e,
    );
    const said = err instanceof ToolkitError ? `[${err.code}] ${err.message}` : String(err);
    if (!said.startsWith("[DEPLOY_FAILED]") || !said.includes("rolled back to release 1 (healthy)")) {
      throw new Error(`the broken release should fail and roll back to release 1; deployClient said: ${said}`);
    }
    expect(sh(["readlink", remoteLayout(s).current]).stdout.trim()).toBe("releases/1");
    expect(existsSync(`${REMOTE_DIR}/releases/2/FAILED`)).toBe(true);
    expect(await envDb("production", secrets().DB_PASSWORD_PRODUCTION!)).toBe("orchestrator_ai_production");
  }, 300_000);

  test("ROTATE=DB_PASSWORD_DEV deploys a new release that uses the new password; ROLLBACK=1 goes back", async () => {
    const old = secrets().DB_PASSWORD_DEV!;
    const j = json(deployScript(["--yes", "--json", "--rotate", "DB_PASSWORD_DEV"]), "deploy --rotate");
    expect(j.release).toBe(3);
    expect(j.plan.secretsRotated).toEqual(["DB_PASSWORD_DEV"]);
    expect(j.apply.changes).toContain("password of orchestrator_ai_dev_app updated");
    const fresh = secrets().DB_PASSWORD_DEV!;
    expect(fresh).not.toBe(old);
    expect(await envDb("dev", fresh)).toBe("orchestrator_ai_dev");
    await expect(envDb("dev", old)).rejects.toThrow(/password authentication failed/);
    expect(readFileSync(`${REMOTE_DIR}/current/client/env/dev.env`, "utf8")).toContain(`DB_PASSWORD=${fresh}`);

    // By hand, as a user would (human output): release 2 is marked FAILED and skipped.
    const back = succeeded(deployScript(["--rollback", "--yes"]), "deploy --rollback");
    expect(back.out).toContain("rolled back: release 3 -> 1");
    for (const v of Object.values(secrets())) expect(back.out).not.toContain(v!);
    await expect(envDb("dev", old)).resolves.toBe("orchestrator_ai_dev"); // release 1's password is back
    expect(sh(["readlink", `${REMOTE_DIR}/current`]).stdout.trim()).toBe("releases/1");
  }, 300_000);

  test("a new client from flags: client.env written with the size profile detected from the target's memory", () => {
    const r = sh(
      [
        BUN,
        "scripts/deploy-client.ts",
        "--client",
        "fresh7",
        "--host",
        "local",
        "--domain",
        "fresh7.internal",
        "--access",
        "internal",
        "--plan",
        "--json",
      ],
      { cwd: src, env: { CLIENTS_DIR: clientsDir, CI: "true" } },
    );
    const env = readFileSync(join(clientsDir, "fresh7", "client.env"), "utf8");
    const kb = Number(readFileSync("/proc/meminfo", "utf8").match(/^MemTotal:\s+(\d+)/m)![1]);
    const gb = kb / 1024 / 1024;
    expect(env).toContain(`PROFILE=${gb >= 60 ? 64 : gb >= 30 ? 32 : 16}\n`);
    expect(env).toContain("DOMAIN=fresh7.internal\n");
    // PLAN ran the preflight on this host (its verdict depends on what else runs here) and changed nothing.
    expect(JSON.parse(r.stdout).preflight.rows.length).toBe(10);
    expect(existsSync("/opt/pgplatform/fresh7")).toBe(false);
  }, 60_000);

  test("without a terminal, a missing answer and a missing confirmation are clear errors", () => {
    const r = sh([BUN, "scripts/deploy-client.ts", "--client", "newone"], {
      cwd: src,
      env: { CLIENTS_DIR: clientsDir, CI: "true" },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error [MISSING_ANSWER]: host is required without a terminal");
    const c = deployScript([]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain("NEEDS_CONFIRMATION");
  }, 60_000);
});
