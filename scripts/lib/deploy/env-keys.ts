/**
 * An environment's signed keys as deployed on the target: its env file in a
 * release (client/env/<env>.env, what its app and services read), whether a
 * key verifies (HS256, role, iss, exp) against that environment's own
 * JWT_SECRET, and every way the deployed keys are wrong (a key that does not
 * verify, a secret shared with another environment, another environment's
 * service key verifying here). on-target.ts's health checks report it; moved
 * out of on-target.ts, which re-exports it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { jwtSecretOf, verifyApiKey, type KeyCheck } from "./client-secrets";
import { ENVIRONMENTS, type EnvName } from "./settings";

/** One environment's env file in a release (client/env/<env>.env): what its app and services read. */
export function releaseEnv(releaseDir: string, env: EnvName): Record<string, string> {
  return parseDotenv(readFileSync(join(releaseDir, "client", "env", `${env}.env`)));
}

/**
 * The environment's verifier on the target: does `token` verify (HS256, role,
 * iss, exp) against the JWT_SECRET its own env file holds? A key signed with
 * another environment's secret is refused with the signature error.
 */
export async function verifyEnvironmentKey(
  releaseDir: string,
  env: EnvName,
  token: string,
  role: string,
): Promise<KeyCheck> {
  const secret = releaseEnv(releaseDir, env).JWT_SECRET;
  if (!secret) return { ok: false, problem: `client/env/${env}.env has no JWT_SECRET` };
  const r = await verifyApiKey(token, secret, role);
  return r.problem ? { ...r, problem: r.problem.replace(/against JWT_SECRET$/, `against ${jwtSecretOf(env)}`) } : r;
}

/** What is wrong with an environment's keys as deployed (empty: nothing). */
export async function environmentKeyProblems(releaseDir: string, env: EnvName): Promise<string[]> {
  const problems: string[] = [];
  const own = releaseEnv(releaseDir, env);
  for (const [k, role] of [
    ["ANON_KEY", "anon"],
    ["SERVICE_ROLE_KEY", "service_role"],
  ] as const) {
    const v = await verifyEnvironmentKey(releaseDir, env, own[k] ?? "", role);
    if (!v.ok) problems.push(`${env}.env ${k}: ${v.problem}`);
  }
  for (const other of ENVIRONMENTS.filter((e) => e !== env)) {
    const theirs = releaseEnv(releaseDir, other);
    if (theirs.JWT_SECRET === own.JWT_SECRET) problems.push(`${env}.env and ${other}.env hold the same JWT_SECRET`);
    else if ((await verifyEnvironmentKey(releaseDir, env, theirs.SERVICE_ROLE_KEY ?? "", "service_role")).ok)
      problems.push(`${other}'s SERVICE_ROLE_KEY verifies in ${env}`);
  }
  return problems;
}
