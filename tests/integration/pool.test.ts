/**
 * pgbouncer on the shared test stack: the pooled DATABASE_URL works and is
 * confined like the direct one, what prepared statements do through
 * transaction pooling, and switchovers inside PAUSE/RESUME. Apps here are
 * named it_pool_* and removed at the end; the cluster is left healthy.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import pg from "pg";
import { appEnvPath, loadApps } from "../../scripts/lib/apps";
import { onboardApp } from "../../scripts/lib/onboard/onboard";
import { removeApp } from "../../scripts/lib/onboard/remove";
import { dbUrl, poolTarget } from "../../scripts/lib/pg";

import { planSwitchover, runMaintenance } from "../../scripts/lib/maintenance";
import { clusterView } from "../../scripts/lib/patroni";
import { procSpecs } from "../../scripts/lib/native/specs";
import { connect } from "../../scripts/lib/pg";
import { ensurePool, poolAdmin, poolIniPath, poolUsage } from "../../scripts/lib/pool";
import { startProc, stopProc } from "../../scripts/lib/procs";
import { portFree } from "../../scripts/lib/ports";
import { runScript, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const PREFIX = "it_pool_";
const A = `${PREFIX}a`;
const B = `${PREFIX}b`;
const SLOW = 120_000;

const envVar = (app: string, key: string) =>
  readFileSync(appEnvPath(cfg, app), "utf8").match(new RegExp(`^${key}=(.*)$`, "m"))![1]!;

async function freePort(from: number): Promise<number> {
  for (let p = from; p < from + 500; p++)
    if ((await portFree("127.0.0.1", p)) && !loadApps(cfg).some((a) => a.port === p)) return p;
  throw new Error("no free port");
}

async function client(url: string, database?: string): Promise<pg.Client> {
  const u = new URL(url);
  if (database) u.pathname = `/${database}`;
  const c = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 5000 });
  c.on("error", () => {});
  await c.connect();
  return c;
}

async function tryConnect(url: string, database?: string): Promise<string> {
  let c: pg.Client | undefined;
  try {
    c = await client(url, database);
    const r = await c.query("SELECT current_user || '@' || current_database() AS who");
    return r.rows[0].who;
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  } finally {
    await c?.end().catch(() => {});
  }
}

async function cleanup() {
  for (const a of loadApps(cfg).filter((x) => x.name.startsWith(PREFIX))) await removeApp(cfg, a.name).catch(() => {});
}

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  await cleanup();
  await onboardApp(cfg, { name: A, port: await freePort(29500) });
  await onboardApp(cfg, { name: B, port: await freePort(29501) });
}, SLOW);

afterAll(async () => {
  await cleanup();
  await waitClusterHealthy(cfg);
}, SLOW);

describe("pooled DATABASE_URL", () => {
  test("new-app writes a pooled DATABASE_URL (pgbouncer) and a DIRECT_URL (HAProxy read-write), same role and password", () => {
    const pooled = new URL(envVar(A, "DATABASE_URL"));
    const direct = new URL(envVar(A, "DIRECT_URL"));
    expect(`${pooled.hostname}:${pooled.port}${pooled.pathname}`).toBe(`${cfg.pool.address}:${cfg.pool.port}/${A}_db`);
    expect(`${direct.hostname}:${direct.port}${direct.pathname}`).toBe(
      `${cfg.haproxy.address}:${cfg.haproxy.rwPort}/${A}_db`,
    );
    expect(pooled.username).toBe(A);
    expect(pooled.password).toBe(direct.password);
  });

  test("works through the pooler, to the leader, and the pool shows up per database", async () => {
    const c = await client(envVar(A, "DATABASE_URL"));
    const r = await c.query("SELECT current_user || '@' || current_database() AS who, pg_is_in_recovery() AS rec");
    await c.end();
    expect(r.rows[0]).toEqual({ who: `${A}@${A}_db`, rec: false });
    const usage = await poolUsage(cfg);
    expect(usage.map((u) => `${u.database}/${u.user}`)).toContain(`${A}_db/${A}`);
  });

  test("confined like the direct URL: refused on another app's database, the ladder and postgres", async () => {
    const a = envVar(A, "DATABASE_URL");
    const aDirect = envVar(A, "DIRECT_URL");
    expect(await tryConnect(a, `${B}_db`)).toBe(`refused: permission denied for database "${B}_db"`);
    expect(await tryConnect(aDirect, `${B}_db`)).toBe(`refused: permission denied for database "${B}_db"`);
    expect(await tryConnect(a, "orchestrator_ai_dev")).toBe(
      `refused: permission denied for database "orchestrator_ai_dev"`,
    );
    expect(await tryConnect(envVar(B, "DATABASE_URL"), `${A}_db`)).toBe(
      `refused: permission denied for database "${A}_db"`,
    );
    // postgres has no pool at all: the pooler refuses before any server login.
    expect(await tryConnect(a, "postgres")).toBe(`refused: no such database: postgres`);
    const wrong = new URL(a);
    wrong.password = "not-the-password-0123456789";
    // pgbouncer checks the password itself, against the verifier: its own message, not the server's.
    expect(await tryConnect(wrong.toString())).toBe("refused: SASL authentication failed");
  });

  test(
    "a removed app's pool is gone (new-app --remove re-renders and RELOADs)",
    async () => {
      const name = `${PREFIX}gone`;
      await onboardApp(cfg, { name, port: await freePort(29520) });
      const url = envVar(name, "DATABASE_URL");
      expect(await tryConnect(url)).toBe(`${name}@${name}_db`);
      await removeApp(cfg, name);
      // Its role's verifier left the auth_file, and the database its pool.
      expect(await tryConnect(url)).toBe("refused: SASL authentication failed");
      expect(
        await tryConnect(
          dbUrl(cfg, "postgres", "postgres", cfg.secrets.POSTGRES_PASSWORD, poolTarget(cfg)),
          `${name}_db`,
        ),
      ).toBe(`refused: no such database: ${name}_db`);
      expect(readFileSync(poolIniPath(cfg), "utf8")).not.toContain(name);
    },
    SLOW,
  );
});

describe("prepared statements through transaction pooling (pgbouncer 1.18)", () => {
  test("unnamed statements (node-postgres' parameterised queries) work across transactions and server connections", async () => {
    const url = envVar(A, "DATABASE_URL");
    const c1 = await client(url);
    const c2 = await client(url);
    try {
      const out: number[] = [];
      for (let i = 0; i < 5; i++) {
        // c2 holds a server connection in an open transaction, so c1 is moved to another one.
        await c2.query("BEGIN");
        await c2.query("SELECT $1::int AS n", [i]);
        out.push((await c1.query("SELECT $1::int + 100 AS n", [i])).rows[0].n);
        await c2.query("COMMIT");
        out.push((await c1.query("SELECT $1::int + 200 AS n", [i])).rows[0].n);
      }
      expect(out).toEqual([100, 200, 101, 201, 102, 202, 103, 203, 104, 204]);
    } finally {
      await c1.end();
      await c2.end();
    }
  });

  test("a named statement is prepared on one server connection only: reused on another, it fails", async () => {
    const url = envVar(A, "DATABASE_URL");
    const c1 = await client(url);
    const c2 = await client(url);
    try {
      const q = { name: "pool_probe", text: "SELECT $1::int AS n", values: [1] };
      expect((await c1.query(q)).rows[0].n).toBe(1); // parsed on server connection S1, which goes back to the pool
      await c2.query("BEGIN");
      await c2.query("SELECT 1"); // c2 now holds S1
      // node-postgres remembers it prepared pool_probe and sends only Bind/Execute; this server connection never saw it.
      const err = await c1.query({ ...q, values: [2] }).catch((e) => e);
      expect(err.message).toBe('prepared statement "pool_probe" does not exist');
      expect(err.code).toBe("26000");
      await c2.query("COMMIT");
    } finally {
      await c1.end();
      await c2.end();
    }
  });
});

/** RESUME on the admin console: pgbouncer's own answer says whether it was paused. */
async function pausedState(): Promise<string> {
  const a = await poolAdmin(cfg);
  try {
    const r = await a.query("RESUME").then(
      () => "was paused",
      (e) => (e as Error).message,
    );
    return r;
  } finally {
    await a.end().catch(() => {});
  }
}

describe("switchover inside PAUSE/RESUME", () => {
  test(
    "under a concurrent writer through the pooler: 0 failed statements, every acknowledged row kept, new leader",
    async () => {
      const url = envVar(A, "DATABASE_URL");
      const setup = await client(url);
      await setup.query("CREATE TABLE IF NOT EXISTS sw_writes (id int PRIMARY KEY, at timestamptz DEFAULT now())");
      await setup.query("TRUNCATE sw_writes");
      await setup.end();
      const w = await client(url);
      let stop = false;
      let next = 0;
      const acked: number[] = [];
      const failed: string[] = [];
      let longestMs = 0;
      const writer = (async () => {
        while (!stop) {
          const id = ++next;
          const t = Date.now();
          try {
            await w.query("INSERT INTO sw_writes (id) VALUES ($1)", [id]);
            acked.push(id);
          } catch (e) {
            failed.push(`${id}: ${(e as Error).message}`);
          }
          longestMs = Math.max(longestMs, Date.now() - t);
          await Bun.sleep(10);
        }
      })();
      await Bun.sleep(500);
      const view = await clusterView(cfg);
      const plan = planSwitchover(view!);
      const r = await runMaintenance(cfg, plan);
      await Bun.sleep(500);
      stop = true;
      await writer;
      await w.end();
      expect(failed).toEqual([]);
      expect(r.steps.map((s) => s.step)).toEqual([
        "preflight",
        "checkpoint",
        "pause",
        "switchover",
        "wait-route",
        "resume",
      ]);
      const after = await clusterView(cfg);
      expect(after!.members.find((m) => m.role === "leader")!.name).toBe(plan.candidate!);
      const c = await client(envVar(A, "DIRECT_URL"));
      const kept = (await c.query("SELECT id FROM sw_writes ORDER BY id")).rows.map((x) => x.id);
      await c.end();
      expect(kept).toEqual(acked);
      expect(acked.length).toBeGreaterThan(20);
      console.log(
        `switchover under a writer: ${acked.length} writes, 0 failed, longest statement ${longestMs} ms, paused ${r.pausedMs} ms`,
      );
      await waitClusterHealthy(cfg);
    },
    SLOW,
  );

  test(
    "a failure between PAUSE and RESUME leaves the pooler resumed and names the step",
    async () => {
      await waitClusterHealthy(cfg);
      const view = await clusterView(cfg);
      const plan = planSwitchover(view!);
      const err = await runMaintenance(cfg, plan, {
        beforeStep: (s) => {
          if (s === "switchover") throw new Error("injected at switchover");
        },
      }).catch((e) => e);
      expect(err.message).toBe("switchover: step switchover failed: injected at switchover; pgbouncer resumed");
      expect(await pausedState()).toBe("pooler is not paused/suspended");
      // Clients are served at once, by the same leader (nothing was switched).
      const c = await client(envVar(A, "DATABASE_URL"));
      const t = Date.now();
      await c.query("SELECT 1");
      await c.end();
      expect(Date.now() - t).toBeLessThan(1000);
      expect((await clusterView(cfg))!.members.find((m) => m.role === "leader")!.name).toBe(plan.leader);
    },
    SLOW,
  );

  test(
    "a PAUSE blocked by a long transaction times out, names its pid and query start, and resumes",
    async () => {
      await waitClusterHealthy(cfg);
      const blocker = await client(envVar(A, "DATABASE_URL"));
      await blocker.query("BEGIN");
      const who = (
        await blocker.query(
          "SELECT pg_backend_pid() AS pid, query_start::text AS qs FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
      ).rows[0];
      try {
        const plan = planSwitchover((await clusterView(cfg))!);
        const t = Date.now();
        const err = await runMaintenance(cfg, plan, { pauseTimeoutS: 2 }).catch((e) => e);
        expect(Date.now() - t).toBeLessThan(10_000);
        expect(err.code).toBe("PAUSE_TIMEOUT");
        expect(err.message).toStartWith(
          "switchover: step pause failed: in-flight transactions did not finish within 2 s (POOL_PAUSE_TIMEOUT): blocked by ",
        );
        expect(err.message).toContain(`pid ${who.pid} (${A}@${A}_db, idle in transaction, transaction since `);
        expect(err.message).toContain(`query since ${who.qs})`);
        expect(err.message).toEndWith("; pgbouncer resumed");
        expect(await pausedState()).toBe("pooler is not paused/suspended");
        expect((await clusterView(cfg))!.members.find((m) => m.role === "leader")!.name).toBe(plan.leader);
      } finally {
        await blocker.query("ROLLBACK").catch(() => {});
        await blocker.end().catch(() => {});
      }
    },
    SLOW,
  );
});

describe("make status", () => {
  test(
    "shows pool usage per database, and a pooler that is down makes the stack unhealthy, named",
    async () => {
      const c = await client(envVar(A, "DATABASE_URL"));
      await c.query("SELECT 1");
      const up = runScript("status.ts", ["--json"]);
      await c.end();
      expect(up.code).toBe(0);
      const s = JSON.parse(up.stdout);
      // pgbouncer lists its databases sorted by name.
      expect(s.pool.map((p: { database: string }) => p.database)).toEqual(
        [...cfg.databases, ...loadApps(cfg).map((a) => a.database)].sort(),
      );
      const mine = s.pool.find((p: { database: string }) => p.database === `${A}_db`);
      expect(mine.clientsActive).toBeGreaterThanOrEqual(1);
      expect(mine.servers).toBeGreaterThanOrEqual(1);
      expect(s.processes.find((p: { name: string }) => p.name === "pgbouncer").pid).toBeGreaterThan(0);

      const spec = procSpecs(cfg).pool;
      await stopProc(spec, 10_000);
      try {
        const down = runScript("status.ts", ["--json"]);
        expect(down.code).toBe(1);
        const d = JSON.parse(down.stdout);
        expect(d.pool).toBe(null);
        expect(d.health.ok).toBe(false);
        expect(d.health.problems.join("; ")).toContain(
          `pgbouncer down (pgbouncer at ${cfg.pool.address}:${cfg.pool.port} does not answer: connect ECONNREFUSED`,
        );
        expect(runScript("status.ts").stdout).toContain("NOT healthy: pgbouncer down");
      } finally {
        const admin = await connect(cfg);
        await ensurePool(cfg, admin, spec, (sp) => void startProc(sp)).finally(() => admin.end());
      }
      expect(runScript("status.ts", ["--json"]).code).toBe(0);
    },
    SLOW,
  );
});

describe("deploy-client's environment roles through the pooler", () => {
  test(
    "a role <ladder db>_app made after dev-up logs in through pgbouncer once syncClientPool ran, to the primary",
    async () => {
      const { syncClientPool, pooledCheck } = await import("../../scripts/lib/pool-client");
      const { quoteIdent, quoteLiteral } = await import("../../scripts/lib/pg");
      const { scramVerifier } = await import("../../scripts/lib/scram");
      const db = cfg.databases[0]!;
      const role = `${db}_app`;
      const pw = `it-${Date.now()}-pooled`;
      const admin = await connect(cfg);
      try {
        await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
        await admin.query(`CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD ${quoteLiteral(scramVerifier(pw))}`);
        await admin.query(`GRANT CONNECT ON DATABASE ${quoteIdent(db)} TO ${quoteIdent(role)}`);
        // before: pgbouncer's auth_file does not know the role
        expect((await pooledCheck(cfg, "dev", role, pw, db)).ok).toBe(false);
        expect(await syncClientPool(cfg)).toEqual([
          "pgbouncer: environment roles may log in (auth_file re-copied, RELOAD)",
        ]);
        expect(await pooledCheck(cfg, "dev", role, pw, db)).toEqual({
          check: "dev: pooled",
          ok: true,
          detail: `${role} -> ${db} through pgbouncer ${cfg.pool.address}:${cfg.pool.port} (primary)`,
        });
        expect(await syncClientPool(cfg)).toEqual([]); // unchanged: no RELOAD
      } finally {
        await admin.query(`REVOKE CONNECT ON DATABASE ${quoteIdent(db)} FROM ${quoteIdent(role)}`).catch(() => {});
        await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).catch(() => {});
        await admin.end();
        await syncClientPool(cfg);
      }
    },
    SLOW,
  );
});
