#!/usr/bin/env bun
/**
 * Development check: do upstream GoTrue's and Storage's own migrations apply
 * to a database our preparation made? Not part of CI (upstream's SQL is not
 * committed here and CI cannot fetch it). How to run it:
 *
 *   # export the tags compose/dev.yml pins (supabase/gotrue:v2.164.0, supabase/storage-api:v1.11.13)
 *   mkdir -p /tmp/up/auth /tmp/up/storage
 *   git --git-dir <supabase/auth clone>/.git archive v2.164.0 migrations | tar -x -C /tmp/up/auth
 *   git --git-dir <supabase/storage clone>/.git archive v1.11.13 migrations | tar -x -C /tmp/up/storage
 *   STACK=<stack> bun scripts/dev/supabase-upstream-migrations.ts --auth /tmp/up/auth --storage /tmp/up/storage [--db <database>]
 *
 * Without --db it creates a scratch database, prepares it with the same
 * functions dev-up uses (scripts/lib/supabase/prepare.ts), applies the
 * migrations and drops it. With --db (e.g. orchestrator_ai_staging) it uses a
 * database dev-up prepared and leaves the services' tables there.
 * Prints one line per migration; exits 1 when one failed, with the server's words.
 */
import { loadConfig } from "../lib/config";
import { runMain, ToolkitError } from "../lib/errors";
import { parseFlags } from "../lib/flags";
import { connect, quoteIdent } from "../lib/pg";
import { ensureSupabaseRoles } from "../lib/supabase/roles";
import { ensureClusterFacts, ensureDatabaseFacts } from "../lib/supabase/prepare";
import { applyAuthMigrations, applyStorageMigrations, type MigrationOutcome } from "../lib/supabase/upstream-check";

const USAGE =
  "usage: STACK=<stack> bun scripts/dev/supabase-upstream-migrations.ts --auth <supabase/auth checkout> --storage <supabase/storage checkout> [--db <database>]";
const SCRATCH = "supabase_upstream_check";

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { auth: "string", storage: "string", db: "string" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  if (!flags.auth || !flags.storage)
    throw new ToolkitError(
      "MISSING_CHECKOUT",
      "--auth and --storage (exported upstream checkouts) are required",
      USAGE,
    );
  const cfg = loadConfig();
  const database = flags.db ?? SCRATCH;
  const admin = await connect(cfg);
  const results: MigrationOutcome[] = [];
  try {
    if (!flags.db) {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(SCRATCH)} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${quoteIdent(SCRATCH)}`);
      await ensureSupabaseRoles(cfg, admin);
      const target = { database, owner: "postgres" };
      await ensureClusterFacts(admin, target);
      const db = await connect(cfg, { database, catalogOnly: true });
      await ensureDatabaseFacts(db, target).finally(() => db.end());
    }
    const auth = await connect(cfg, {
      database,
      user: "supabase_auth_admin",
      password: cfg.secrets.SUPABASE_AUTH_ADMIN_PASSWORD,
    });
    results.push(...(await applyAuthMigrations(auth, flags.auth).finally(() => auth.end())));
    const storage = await connect(cfg, {
      database,
      user: "supabase_storage_admin",
      password: cfg.secrets.SUPABASE_STORAGE_ADMIN_PASSWORD,
    });
    results.push(...(await applyStorageMigrations(storage, flags.storage).finally(() => storage.end())));
  } finally {
    if (!flags.db) await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(SCRATCH)} WITH (FORCE)`).catch(() => {});
    await admin.end().catch(() => {});
  }
  for (const r of results)
    console.log(`${r.service.padEnd(8)} ${r.ok ? "ok    " : "FAILED"} ${r.file}${r.error ? `: ${r.error}` : ""}`);
  const failed = results.filter((r) => !r.ok);
  console.log(
    `${database}: ${results.length - failed.length}/${results.length} applied${failed.length ? `, failed: ${failed.map((f) => `${f.service}/${f.file}`).join(", ")}` : ""}`,
  );
  if (failed.length) process.exitCode = 1;
});
