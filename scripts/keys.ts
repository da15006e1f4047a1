#!/usr/bin/env bun
/**
 * make keys [ENV=staging]: the anon key of one environment (default dev), and
 * where its service_role key is. The service_role key bypasses row-level
 * security, so it is never printed: it stays in the env file (0600).
 */
import { existsSync, readFileSync } from "node:fs";
import { parse as parseDotenv } from "dotenv";
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { envFilePath } from "./lib/supabase/environments";
import { environmentDatabase } from "./lib/supabase/keys";
import { envNameOf } from "./lib/supabase/routes";

const USAGE = `usage: make keys [ENV=dev|staging|production]   (bun scripts/keys.ts [--env <env>])
Prints the environment's SUPABASE_URL and anon key, and names the file holding its service_role key (never printed).`;

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { env: "string" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const database = environmentDatabase(cfg, flags.env ?? process.env.ENV ?? "dev", envNameOf);
  const path = envFilePath(cfg, database);
  const rel = path.replace(cfg.rootDir + "/", "");
  if (!existsSync(path))
    throw new ToolkitError(
      "NO_ENV_FILE",
      `${rel} does not exist yet`,
      `run \`make dev-up${cfg.stack === "dev" ? "" : ` STACK=${cfg.stack}`}\` (it writes one env file per environment)`,
    );
  const v = parseDotenv(readFileSync(path));
  if (!v.SUPABASE_ANON_KEY)
    throw new ToolkitError(
      "NO_ANON_KEY",
      `${rel} has no SUPABASE_ANON_KEY`,
      "delete the file and re-run `make dev-up` to write it again",
    );
  console.log(`environment       ${envNameOf(database) ?? database} (database ${database})`);
  console.log(`SUPABASE_URL      ${v.SUPABASE_URL}`);
  console.log(`SUPABASE_ANON_KEY ${v.SUPABASE_ANON_KEY}`);
  console.log(
    `service_role key  not printed (it bypasses row-level security): SUPABASE_SERVICE_ROLE_KEY in ${rel} (mode 0600)`,
  );
});
