/**
 * The integration suite shares one real native cluster per run: `make
 * test-integration` brings up STACK (default `test`, envs/test.env: its own
 * addresses and ports), runs every tests/integration file against it, and
 * tears it down. A test that disturbs the cluster must leave it healthy.
 */
import { spawnSync } from "node:child_process";
import { loadConfig, type Config } from "../../scripts/lib/config";
import { waitHealthy } from "../../scripts/lib/cluster-ops";
import { ensureSecrets } from "../../scripts/lib/secrets";

export const TEST_STACK = process.env.STACK ?? "test";
if (TEST_STACK === "dev")
  throw new Error("integration tests never run against the dev stack: use STACK=test (make test-integration)");

export function testConfig(): Config {
  const cfg = loadConfig(TEST_STACK);
  ensureSecrets(cfg.secretsFile); // registers the secrets for redaction
  return loadConfig(TEST_STACK);
}

export const BUN = process.execPath;

/** Run one of our scripts the way a user would, against the test stack. */
export function runScript(script: string, args: string[] = [], env: Record<string, string> = {}, input?: string) {
  const r = spawnSync(BUN, [`scripts/${script}`, ...args], {
    cwd: `${import.meta.dir}/../..`,
    env: { ...process.env, STACK: TEST_STACK, ...env },
    encoding: "utf8",
    input,
    timeout: 600_000,
  });
  return {
    code: r.status ?? -1,
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? "",
    out: (r.stdout ?? "") + (r.stderr ?? ""),
  };
}

/** Wait until the cluster is back to 3 members, 1 leader, 1 sync standby. */
export const waitClusterHealthy = (cfg: Config, timeoutMs = 90_000) => waitHealthy(cfg, timeoutMs);
