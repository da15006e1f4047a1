/**
 * A statement that fails is written to the Postgres log with its text
 * (log_min_error_statement = error). If the toolkit sent PASSWORD '<plain>',
 * anyone who can read a log would hold the password. The attack: make one of
 * the toolkit's own password statements fail (a Supabase role is missing, the
 * session is read-only), then read every member's log, as a log reader would.
 * Run last by make test, so the grep also covers every flow before it.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { connect } from "../../scripts/lib/pg";
import { ensureSupabaseRoles } from "../../scripts/lib/supabase-db";
import { testConfig } from "./stack";

const cfg = testConfig();
const memberLogs = () => cfg.members.map((m) => join(cfg.logsDir, `${m.name}.log`)).filter(existsSync);

/** Every password the toolkit generated for this stack: its secrets file, and the apps' env files that still exist. */
function generatedPasswords(): string[] {
  const out = Object.values(cfg.secrets).filter(Boolean) as string[];
  const envs = join(cfg.rootDir, "envs");
  for (const f of readdirSync(envs).filter((f) => f.startsWith(`.env.${cfg.stack}.`))) {
    const url = parseDotenv(readFileSync(join(envs, f))).DATABASE_URL;
    const pw = url && decodeURIComponent(new URL(url).password);
    if (pw) out.push(pw);
  }
  return out;
}

describe("no password reaches the Postgres log", () => {
  test("attack: a failing CREATE ROLE of the toolkit puts the role's password in the log", async () => {
    const c = await connect(cfg);
    try {
      await c.query("ALTER ROLE supabase_storage_admin RENAME TO pgp_rolesec_storage_hidden");
      await c.query("SET default_transaction_read_only = on");
      // The toolkit's own code path, failing on the server: the statement lands in the log.
      await expect(ensureSupabaseRoles(cfg, c)).rejects.toThrow(
        "cannot execute CREATE ROLE in a read-only transaction",
      );
    } finally {
      await c.query("SET default_transaction_read_only = off").catch(() => {});
      await c.query("ALTER ROLE pgp_rolesec_storage_hidden RENAME TO supabase_storage_admin").catch(() => {});
      await c.end();
    }
    // The failed statement did reach a log (else this test proves nothing) and carries a SCRAM verifier.
    let logged = "";
    for (let i = 0; i < 50 && !logged; i++) {
      logged =
        memberLogs()
          .map((f) => readFileSync(f, "utf8"))
          .join("\n")
          .split("\n")
          .filter((l) => /STATEMENT:\s+CREATE ROLE "supabase_storage_admin"/.test(l))
          .at(-1) ?? "";
      if (!logged) await Bun.sleep(100);
    }
    expect(logged).toMatch(/PASSWORD 'SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+'$/);
  });

  test("attack: a log reader greps every member's Postgres log for the stack's generated passwords", () => {
    const logs = memberLogs();
    expect(logs.length).toBe(cfg.members.length);
    const passwords = generatedPasswords();
    expect(passwords.length).toBeGreaterThanOrEqual(8);
    const found: string[] = [];
    for (const f of logs) {
      const text = readFileSync(f, "utf8");
      for (const [i, pw] of passwords.entries()) if (text.includes(pw)) found.push(`${f}: generated password #${i}`);
      // Any password statement at all must carry a verifier, whoever's password it is.
      for (const l of text.split("\n"))
        if (/PASSWORD\s+'(?!SCRAM-SHA-256\$)/i.test(l)) found.push(`${f}: plain PASSWORD statement`);
    }
    expect(found).toEqual([]);
  });
});
