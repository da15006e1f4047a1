#!/usr/bin/env bun
/** make -s db-url DB=<name> [ROLE=<role>]: a connection URL through the HAProxy read-write port. */
import { existsSync, readFileSync } from "node:fs";
import { parse } from "dotenv";
import { appEnvPath } from "./lib/apps";
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { dbUrl, poolTarget } from "./lib/pg";

const USAGE = "usage: make -s db-url DB=<database> [ROLE=<role>] [PORT=rw|ro] [POOL=1]\nPrints postgresql://ROLE:PASSWORD@HAPROXY/DB (default role: the cluster superuser); POOL=1: through pgbouncer (transaction pooling).";
const SERVICE_ROLES: Record<string, "AUTHENTICATOR_PASSWORD" | "SUPABASE_AUTH_ADMIN_PASSWORD" | "SUPABASE_STORAGE_ADMIN_PASSWORD"> = {
  authenticator: "AUTHENTICATOR_PASSWORD",
  supabase_auth_admin: "SUPABASE_AUTH_ADMIN_PASSWORD",
  supabase_storage_admin: "SUPABASE_STORAGE_ADMIN_PASSWORD",
};
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { db: "string", role: "string", port: "string", pool: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const db = flags.db ?? process.env.DB;
  if (!db) throw new ToolkitError("MISSING_DB", "DB is required", USAGE);
  if (!cfg.secrets.POSTGRES_PASSWORD) throw new ToolkitError("NO_SECRETS", `${cfg.secretsFile} does not exist yet`, "run `make dev-up` first");
  const role = flags.role ?? process.env.ROLE ?? "postgres";
  const portKind = flags.port ?? process.env.PORT_KIND ?? "rw";
  const pooled = flags.pool || ["1", "true", "yes"].includes(process.env.POOL ?? "");
  if (pooled && portKind === "ro") throw new ToolkitError("BAD_INPUT", "POOL=1 and PORT=ro together: pgbouncer pools the read-write port only", "drop one of them");
  const target = pooled ? poolTarget(cfg) : { host: cfg.haproxy.address, port: portKind === "ro" ? cfg.haproxy.roPort : cfg.haproxy.rwPort };
  let password: string | undefined;
  if (role === "postgres") password = cfg.secrets.POSTGRES_PASSWORD;
  else if (SERVICE_ROLES[role]) password = cfg.secrets[SERVICE_ROLES[role]];
  else {
    // An app role: its password lives in the app's env file written by new-app.
    const appEnv = appEnvPath(cfg, role);
    if (existsSync(appEnv)) {
      const url = parse(readFileSync(appEnv)).DATABASE_URL;
      if (url) password = decodeURIComponent(new URL(url).password);
    }
  }
  if (!password) throw new ToolkitError("UNKNOWN_ROLE", `no password known for role ${role}`, "use postgres, authenticator, supabase_auth_admin, supabase_storage_admin, or an app created with scripts/new-app.ts");
  console.log(dbUrl(cfg, db, role, password, target));
});
