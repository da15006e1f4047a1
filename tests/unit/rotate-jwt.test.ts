/** make rotate-jwt, run as a user would: one environment's secret replaced, the others and the file mode kept, old keys refused. */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { signApiKey, verifyApiKey } from "../../scripts/lib/jwt";
import { ensureSecrets } from "../../scripts/lib/secrets";

const ROOT = join(import.meta.dir, "../..");
const STACK = `local-rsrot${process.pid}`; // envs/local-*.env and envs/.secrets.* are gitignored
const envFile = join(ROOT, "envs", `${STACK}.env`);
const secretsFile = join(ROOT, "envs", `.secrets.${STACK}.env`);
afterAll(() => {
  rmSync(envFile, { force: true });
  rmSync(secretsFile, { force: true });
});

const rotate = (...args: string[]) => {
  const r = spawnSync(process.execPath, ["scripts/rotate-jwt.ts", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, STACK, CI: "true" },
  });
  return { code: r.status, out: (r.stdout + r.stderr).replace(/^\S+Z /gm, "") };
};

describe("make rotate-jwt", () => {
  copyFileSync(join(ROOT, "envs/test.env"), envFile);
  const before = ensureSecrets(secretsFile, [
    "orchestrator_ai_dev",
    "orchestrator_ai_staging",
    "orchestrator_ai_production",
  ]).secrets;

  test("refuses an unknown database and, without a terminal, asks for YES=1", () => {
    expect(rotate("hyperarchy_db", "--yes")).toEqual({
      code: 1,
      out: `error [UNKNOWN_DB]: DB="hyperarchy_db" is not an environment database of stack ${STACK} (orchestrator_ai_dev, orchestrator_ai_staging, orchestrator_ai_production)\n  fix: pick one of DATABASES in envs/${STACK}.env\n`,
    });
    expect(rotate("orchestrator_ai_production").code).toBe(1);
    expect(parseDotenv(readFileSync(secretsFile))).toEqual(before);
  });

  test("replaces production's secret only; a key signed before is refused, one signed after verifies", async () => {
    const old = await signApiKey(before.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION!, "service_role");
    const r = rotate("orchestrator_ai_production", "--yes");
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `orchestrator_ai_production: JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION rotated in envs/.secrets.${STACK}.env (0600)\n` +
        "orchestrator_ai_production: anon and service_role keys are signed from the new secret whenever they are issued (make dev-up); keys signed before are refused\n",
    );
    const after = parseDotenv(readFileSync(secretsFile));
    expect(statSync(secretsFile).mode & 0o777).toBe(0o600);
    expect(after.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION).not.toBe(before.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION);
    expect({ ...after, JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION: "-" }).toEqual({
      ...before,
      JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION: "-",
    });
    expect(await verifyApiKey(old, after.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION!, "service_role")).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET",
    });
  });
});
