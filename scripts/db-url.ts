#!/usr/bin/env bun
/** make -s db-url DB=<name> [ROLE=<role>] [PORT=rw|ro]: a connection URL through HAProxy. */
import { loadConfig } from "./lib/config";
import { connectionUrl } from "./lib/dburl";
import { runMain, ToolkitError } from "./lib/errors";
import { parseFlags } from "./lib/flags";

const USAGE = `usage: make -s db-url DB=<database> [ROLE=<role>] [PORT=rw|ro] [POOL=1]
       bun scripts/db-url.ts --db <database> [--role <role>] [--port rw|ro] [--pool]
Prints postgresql://ROLE:PASSWORD@HAPROXY/DB (default role: the cluster superuser; an app's role
reads its password from the app's env file). PORT=rw (default) reaches the leader, PORT=ro the replicas;
POOL=1 goes through pgbouncer (transaction pooling; read-write only).
A database the stack does not know is an error that lists the known ones.`;
await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    { db: "string", role: "string", port: "string", pool: "boolean" },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const db = flags.db ?? process.env.DB;
  if (!db) throw new ToolkitError("MISSING_DB", "DB is required", USAGE);
  if (!cfg.secrets.POSTGRES_PASSWORD)
    throw new ToolkitError("NO_SECRETS", `${cfg.secretsFile} does not exist yet`, "run `make dev-up` first");
  const role = flags.role ?? process.env.ROLE ?? "postgres";
  // PORT_KIND: the old, undocumented name, still read so existing scripts keep working.
  const port = flags.port ?? process.env.PORT_KIND ?? "rw";
  const pool = Boolean(flags.pool) || ["1", "true", "yes"].includes(process.env.POOL ?? "");
  console.log(await connectionUrl(cfg, { db, role, port, pool }));
});
