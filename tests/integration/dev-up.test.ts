import { describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { connect, roTarget, rwTarget } from "../../scripts/lib/pg";
import { runScript, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();

describe("dev-up: a real 3-member cluster", () => {
  test("3 members running, exactly 1 leader, 1 sync standby", async () => {
    const h = await waitClusterHealthy(cfg);
    expect(h.running).toBe(3);
    expect(h.leader).toMatch(/^pg[123]$/);
    expect(h.syncStandby).toMatch(/^pg[123]$/);
    expect(h.syncStandby).not.toBe(h.leader);
  });

  test("a write through the read-write port is readable through the read-only port", async () => {
    const rw = await connect(cfg, { target: rwTarget(cfg), database: "orchestrator_ai_dev" });
    const marker = `m-${Date.now()}-${Math.random()}`;
    try {
      expect((await rw.query("SELECT pg_is_in_recovery() AS r")).rows[0].r).toBe(false);
      await rw.query("CREATE TABLE IF NOT EXISTS it_roundtrip (v text PRIMARY KEY)");
      await rw.query("INSERT INTO it_roundtrip VALUES ($1)", [marker]);
    } finally {
      await rw.end();
    }
    const ro = await connect(cfg, { target: roTarget(cfg), database: "orchestrator_ai_dev" });
    try {
      expect((await ro.query("SELECT pg_is_in_recovery() AS r")).rows[0].r).toBe(true);
      // Synchronous commit guarantees the sync standby has it; the other replica may lag a moment.
      let found = 0;
      for (let i = 0; i < 50 && !found; i++) {
        found = (await ro.query("SELECT count(*)::int AS n FROM it_roundtrip WHERE v = $1", [marker])).rows[0].n;
        if (!found) await Bun.sleep(100);
      }
      expect(found).toBe(1);
    } finally {
      await ro.end();
    }
  });

  test("environment databases and Supabase roles exist; scram-sha-256 only", async () => {
    const c = await connect(cfg);
    try {
      const dbs = (await c.query("SELECT datname FROM pg_database")).rows.map((r) => r.datname);
      for (const d of cfg.databases) expect(dbs).toContain(d);
      const roles = (await c.query("SELECT rolname FROM pg_roles")).rows.map((r) => r.rolname);
      for (const r of [
        "anon",
        "authenticated",
        "service_role",
        "authenticator",
        "supabase_auth_admin",
        "supabase_storage_admin",
      ])
        expect(roles).toContain(r);
      const hba = (await c.query("SELECT DISTINCT auth_method FROM pg_hba_file_rules")).rows.map((r) => r.auth_method);
      expect(hba).toEqual(["scram-sha-256"]);
      expect((await c.query("SHOW data_checksums")).rows[0].data_checksums).toBe("on");
      expect((await c.query("SHOW password_encryption")).rows[0].password_encryption).toBe("scram-sha-256");
    } finally {
      await c.end();
    }
  });

  test("an ordinary login role cannot connect to the environment databases or postgres", async () => {
    const c = await connect(cfg);
    const pw = `pw-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    try {
      await c.query("DROP ROLE IF EXISTS it_outsider");
      await c.query(`CREATE ROLE it_outsider LOGIN PASSWORD '${pw}'`);
      for (const db of [...cfg.databases, "postgres"]) {
        await expect(connect(cfg, { user: "it_outsider", password: pw, database: db })).rejects.toThrow(
          /permission denied for database/,
        );
      }
      // Supabase's service roles keep their way in.
      const ok = (
        await c.query("SELECT has_database_privilege('authenticator', $1, 'CONNECT') AS ok", [cfg.databases[0]])
      ).rows[0].ok;
      expect(ok).toBe(true);
    } finally {
      await c.query("DROP ROLE IF EXISTS it_outsider");
      await c.end();
    }
  });

  test("a wrong password is refused", async () => {
    await expect(connect(cfg, { password: "not-the-password" })).rejects.toThrow(/password authentication failed/);
  });

  test("secrets file is 0600 and no secret appears in any log", () => {
    expect(statSync(cfg.secretsFile).mode & 0o777).toBe(0o600);
    const out = runScript("logs.ts", ["--lines", "400"]).out;
    for (const s of Object.values(cfg.secrets)) expect(out).not.toContain(s);
  });

  test("dev-up again is a no-op", () => {
    const r = runScript("dev-up.ts", ["--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.started).toEqual([]);
    expect(j.restarted).toEqual([]);
    expect(j.changes).toEqual([]);
  });

  test("status --json parses and reports a healthy cluster", () => {
    const r = runScript("status.ts", ["--json"]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.health.ok).toBe(true);
    expect(s.members.length).toBe(3);
    expect(s.haproxy.filter((b: any) => b.proxy === "postgres_rw" && b.status === "UP").length).toBe(1);
    expect(s.processes.every((p: any) => p.pid > 0)).toBe(true);
  });

  test("db-url prints a URL that connects", async () => {
    const r = runScript("db-url.ts", [], { DB: "orchestrator_ai_staging" });
    expect(r.code).toBe(0);
    const pg = (await import("pg")).default;
    const c = new pg.Client({ connectionString: r.stdout.trim() });
    await c.connect();
    expect((await c.query("SELECT current_database() AS d")).rows[0].d).toBe("orchestrator_ai_staging");
    await c.end();
  });

  test("dev-down then dev-up keeps data", async () => {
    const c = await connect(cfg, { database: "orchestrator_ai_production" });
    await c.query("CREATE TABLE IF NOT EXISTS it_keep (v int)");
    await c.query("INSERT INTO it_keep VALUES (42)");
    await c.end();
    const down = runScript("dev-down.ts");
    expect(down.code).toBe(0);
    expect(down.out).toContain("data kept");
    expect(runScript("status.ts", ["--json"]).code).toBe(1);
    const said = (r: { code: number; out: string }) =>
      `exited ${r.code}: ${r.out.trim().split("\n").slice(-15).join(" | ")}`;
    const up = runScript("dev-up.ts", ["--json"]);
    // A CI log shows only the failure: carry dev-up's own words (component, reason, log lines) in it.
    if (up.code !== 0) throw new Error(`dev-up after dev-down ${said(up)}`);
    const c2 = await connect(cfg, { database: "orchestrator_ai_production" });
    expect((await c2.query("SELECT count(*)::int AS n FROM it_keep WHERE v = 42")).rows[0].n).toBeGreaterThanOrEqual(1);
    await c2.end();
    await waitClusterHealthy(cfg);
  }, 240_000);
});
