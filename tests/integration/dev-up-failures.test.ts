/**
 * dev-up's bad-input paths on throwaway stacks (their own addresses inside the
 * running test stack's block, e.g. 127.0.1.1xx for STACK=test): each is a clear
 * error and leaves nothing running.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, ROOT_DIR } from "../../scripts/lib/config";
import { allSpecs, procSpecs } from "../../scripts/lib/native/specs";
import { portFree } from "../../scripts/lib/ports";
import { runningPid } from "../../scripts/lib/procs";
import { runScript, testConfig } from "./stack";

/** The running test stack's /24 (127.0.1 for STACK=test): throwaway stacks take .100 and up in it, never another stack's block. */
const BLOCK = testConfig().haproxy.address.split(".").slice(0, 3).join(".");

const made: string[] = [];
function throwawayStack(name: string, block: number, edit: (env: string) => string = (e) => e): string {
  const stack = `local-it-${name}`;
  const env = readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8")
    .replace(/^CLUSTER_NAME=.*$/m, `CLUSTER_NAME=pgplatform-it-${name}`)
    .replace(
      /^MEMBER_ADDRESSES=.*$/m,
      `MEMBER_ADDRESSES=${BLOCK}.${block + 1},${BLOCK}.${block + 2},${BLOCK}.${block + 3}`,
    )
    .replace(/^HAPROXY_ADDRESS=.*$/m, `HAPROXY_ADDRESS=${BLOCK}.${block}`)
    .replace(/^API_ADDRESS=.*$/m, `API_ADDRESS=${BLOCK}.${block}`);
  writeFileSync(join(ROOT_DIR, `envs/${stack}.env`), edit(env));
  made.push(stack);
  return stack;
}

/** Nothing of the stack runs and none of its ports is held. */
async function assertNothingRunning(stack: string) {
  const cfg = loadConfig(stack);
  for (const s of allSpecs(procSpecs(cfg))) expect(runningPid(s)).toBeUndefined();
  for (const m of cfg.members) {
    expect(await portFree(m.address, m.pgPort)).toBe(true);
    expect(await portFree(m.address, m.restPort)).toBe(true);
    expect(await portFree(m.address, m.etcdClientPort)).toBe(true);
  }
  expect(await portFree(cfg.haproxy.address, cfg.haproxy.rwPort)).toBe(true);
}

afterAll(() => {
  for (const stack of made) {
    runScript("clean.ts", ["--yes", "--purge-secrets"], { STACK: stack });
    rmSync(join(ROOT_DIR, `envs/${stack}.env`), { force: true });
  }
});

describe("dev-up refuses bad input before anything starts", () => {
  test("a port already in use is named with its holder", async () => {
    const stack = throwawayStack("port", 100);
    const cfg = loadConfig(stack);
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(cfg.haproxy.rwPort, cfg.haproxy.address, () => r()));
    try {
      const r = runScript("dev-up.ts", ["--no-install"], { STACK: stack });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `error [PORT_IN_USE]: ${cfg.haproxy.address}:${cfg.haproxy.rwPort} (HAProxy read-write) is already in use by`,
      );
      expect(r.stderr).toMatch(/pid \d+/);
      expect(r.stderr).toContain(`envs/${stack}.env`);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    await assertNothingRunning(stack);
  });

  test("a missing binary names its Debian package", async () => {
    const stack = throwawayStack("bin", 110);
    // Programs are found on PATH and in the dirs Debian installs them to (/usr/sbin...): empty both.
    const r = runScript("dev-up.ts", ["--no-install"], {
      STACK: stack,
      PATH: "/nonexistent",
      PGPLATFORM_SYSTEM_BIN_DIRS: "",
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error [MISSING_BINARY]");
    expect(r.stderr).toContain("haproxy (package haproxy)");
    expect(r.stderr).toContain("patroni (package patroni)");
    expect(r.stderr).toContain("make setup");
    await assertNothingRunning(stack);
  });

  test("a malformed env value names the file, key and value", () => {
    const stack = throwawayStack("env", 120, (e) =>
      e.replace(/^PATRONI_RETRY_TIMEOUT=.*$/m, "PATRONI_RETRY_TIMEOUT=9"),
    );
    const r = runScript("dev-up.ts", ["--no-install"], { STACK: stack });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error [BAD_CONFIG]: envs/${stack}.env: PATRONI_TTL: loop_wait + 2*retry_timeout must be <= ttl (1 + 2*9 = 19 > 10)`,
    );
    expect(existsSync(join(ROOT_DIR, ".state", stack))).toBe(false); // nothing rendered, nothing started
  });
});

describe("a failure during bring-up", () => {
  test("names the member, shows its log, and stops everything that run started", async () => {
    // Real Postgres binaries, except a pg_ctl that fails (Patroni 3.0 bootstraps through
    // `pg_ctl initdb`): Patroni cannot bootstrap and exits.
    const bin = mkdtempSync(join(tmpdir(), "pgplatform-it-bin-"));
    chmodSync(bin, 0o755);
    for (const f of readdirSync("/usr/lib/postgresql/15/bin")) {
      if (f !== "pg_ctl") symlinkSync(`/usr/lib/postgresql/15/bin/${f}`, join(bin, f));
    }
    writeFileSync(join(bin, "pg_ctl"), "#!/bin/sh\necho 'pg_ctl: injected failure for the test' >&2\nexit 1\n", {
      mode: 0o755,
    });
    const stack = throwawayStack("boot", 130, (e) => e.replace(/^PG_BIN_DIR=.*$/m, `PG_BIN_DIR=${bin}`));
    try {
      const r = runScript("dev-up.ts", ["--no-install"], { STACK: stack });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/error \[UP_FAILED\]: pg[123]: pg[123] exited during start-up/);
      expect(r.stderr).toContain("stopped what this run started: etcd1, etcd2, etcd3, pg1, pg2, pg3");
      expect(r.stderr).toContain("last lines of");
      expect(r.stderr).toContain("Failed to bootstrap cluster");
      await assertNothingRunning(stack);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  }, 180_000);
});
