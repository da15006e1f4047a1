/**
 * The anon and service_role API keys of one database, signed with that
 * database's own JWT secret (JWT_SECRET_<DATABASE>). A key already in an env
 * file is kept while it verifies against the current secret and has more than
 * 30 days left, so re-running dev-up rewrites nothing; a rotated secret or a
 * key near its end gets a fresh one.
 */
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { apiKeyLifetimeS, signApiKey, verifyApiKey } from "../jwt";
import { jwtSecretFor } from "../secrets";

export interface ApiKeys {
  anon: string;
  serviceRole: string;
}

const RENEW_BEFORE_S = 30 * 24 * 3600;

async function keep(token: string | undefined, secret: string, role: string, now: number): Promise<boolean> {
  if (!token) return false;
  const check = await verifyApiKey(token, secret, role, now);
  return check.ok && (check.exp ?? 0) - now > RENEW_BEFORE_S;
}

export async function apiKeysFor(
  cfg: Config,
  database: string,
  existing: Partial<ApiKeys> = {},
  now = Math.floor(Date.now() / 1000),
): Promise<ApiKeys> {
  const secret = jwtSecretFor(cfg, database);
  const life = apiKeyLifetimeS(cfg.apiKeyTtlDays);
  return {
    anon: (await keep(existing.anon, secret, "anon", now))
      ? existing.anon!
      : await signApiKey(secret, "anon", now, life),
    serviceRole: (await keep(existing.serviceRole, secret, "service_role", now))
      ? existing.serviceRole!
      : await signApiKey(secret, "service_role", now, life),
  };
}

/** The ladder database an ENV= names: its environment (dev, staging, production) or the database itself. */
export function environmentDatabase(
  cfg: Pick<Config, "databases" | "file">,
  env: string,
  envNameOf: (db: string) => string | undefined,
): string {
  const db = cfg.databases.find((d) => envNameOf(d) === env || d === env);
  if (!db) {
    const known = cfg.databases.map((d) => envNameOf(d) ?? d).join(", ");
    throw new ToolkitError(
      "UNKNOWN_ENV",
      `ENV=${JSON.stringify(env)} is not an environment of this stack (${known})`,
      `pick one of ${known}; the ladder is DATABASES in ${cfg.file}`,
    );
  }
  return db;
}
