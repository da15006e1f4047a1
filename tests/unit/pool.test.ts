import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parseConfig, PG_MAX_CONNECTIONS } from "../../scripts/lib/config";
import { ToolkitError } from "../../scripts/lib/errors";
import { pooledRoles, renderPoolIni, renderUserlist } from "../../scripts/lib/pool";
import { SECRET_KEYS } from "../../scripts/lib/secrets";
import { OS_PACKAGES } from "../../scripts/lib/setup";
import { NATIVE_BINARIES, procSpecs } from "../../scripts/lib/native/specs";
import { planRestart, planSwitchover } from "../../scripts/lib/maintenance";
import { poolByDatabase } from "../../scripts/lib/status";

const root = `${import.meta.dir}/../..`;
const golden = (name: string) => readFileSync(`${import.meta.dir}/golden/pool/${name}`, "utf8");
const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}-0123456789`]));
const devEnv = readFileSync(`${root}/envs/dev.env`, "utf8");
// A fixed root so the auth_file path in the golden file does not depend on where the checkout lives.
const cfg = parseConfig(devEnv, {
  file: "envs/dev.env",
  stack: "dev",
  rootDir: "/srv/pgplatform",
  isRoot: true,
  secrets,
});
const template = readFileSync(`${root}/pgbouncer/pgbouncer.ini.tmpl`, "utf8");
const apps = [
  { database: "hyperarchy_db", role: "hyperarchy" },
  { database: "bookwriter_db", role: "bookwriter" },
];

describe("pgbouncer.ini", () => {
  test("renders exactly the golden file: one pool per ladder and app database, transaction mode, SCRAM, sizes from settings", () => {
    expect(renderPoolIni(cfg, apps, template)).toBe(golden("pgbouncer.ini"));
  });
  test("pool sizes come from the env file", () => {
    const c = parseConfig(
      devEnv +
        "\nPOOL_PORT=7015\nPOOL_MAX_CLIENT_CONN=300\nPOOL_DEFAULT_POOL_SIZE=7\nPOOL_RESERVE_POOL_SIZE=2\nPOOL_MAX_DB_CONNECTIONS=11\n",
      { file: "envs/dev.env", stack: "dev", rootDir: "/srv/pgplatform", isRoot: false, secrets },
    );
    const ini = renderPoolIni(c, [], template);
    expect(
      ini.match(/^(listen_port|max_client_conn|default_pool_size|reserve_pool_size|max_db_connections) = .*$/gm),
    ).toEqual([
      "listen_port = 7015",
      "max_client_conn = 300",
      "default_pool_size = 7",
      "reserve_pool_size = 2",
      "max_db_connections = 11",
    ]);
    expect(ini).not.toContain("hyperarchy_db");
  });
  test("the native runtime runs it as the postgres OS user when root, on its ini", () => {
    const asRoot = parseConfig(devEnv, {
      file: "envs/dev.env",
      stack: "dev",
      rootDir: "/srv/pgplatform",
      isRoot: true,
      secrets,
    });
    const s = procSpecs(asRoot).pool;
    expect(s.cmd).toEqual(["pgbouncer", `${asRoot.memberRoot}/pgbouncer/pgbouncer.ini`]);
    expect(s.asUser).toBe("postgres");
    expect(NATIVE_BINARIES).toContainEqual(["pgbouncer", "pgbouncer"]);
    expect(OS_PACKAGES).toContainEqual(["pgbouncer", "pgbouncer"]);
  });
});

describe("auth_file (userlist)", () => {
  const v = (n: number) =>
    `SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0${n}w==$U3RvcmVkS2V5U3RvcmVkS2V5U3RvcmVkS2V5${n}A=:U2VydmVyS2V5U2VydmVyS2V5U2VydmVyS2V5${n}A=`;
  test("renders exactly the golden file: SCRAM verifiers only, sorted by role", () => {
    const out = renderUserlist([
      { role: "postgres", verifier: v(1) },
      { role: "hyperarchy", verifier: v(2) },
      { role: "pgbouncer_admin", verifier: v(3) },
      { role: "authenticator", verifier: v(4) },
    ]);
    expect(out).toBe(golden("userlist.txt"));
  });
  test("a plain-text or md5 password is refused, naming the role", () => {
    expect(() => renderUserlist([{ role: "hyperarchy", verifier: "hunter2hunter2hunter2" }])).toThrow(
      "role hyperarchy has no SCRAM-SHA-256 verifier",
    );
    expect(() => renderUserlist([{ role: "x", verifier: "md5" + "a".repeat(32) }])).toThrow(ToolkitError);
  });
  test("the roles copied: postgres, the Supabase service roles, every app role (never replicator or rewind_user)", () => {
    expect(pooledRoles(apps)).toEqual([
      "postgres",
      "authenticator",
      "supabase_auth_admin",
      "supabase_storage_admin",
      "hyperarchy",
      "bookwriter",
    ]);
  });
  test("with the ladder: the environment roles, a dev stack's (named after the database) and a customer stack's (<database>_app, made by deploy-client)", () => {
    expect(pooledRoles(apps, ["orchestrator_ai_dev", "orchestrator_ai_production"])).toEqual([
      "postgres",
      "authenticator",
      "supabase_auth_admin",
      "supabase_storage_admin",
      "orchestrator_ai_dev",
      "orchestrator_ai_dev_app",
      "orchestrator_ai_production",
      "orchestrator_ai_production_app",
      "hyperarchy",
      "bookwriter",
    ]);
  });
});

describe("pool settings in the config loader", () => {
  const load = (extra: string) => () =>
    parseConfig(devEnv + "\n" + extra + "\n", {
      file: "envs/dev.env",
      stack: "dev",
      rootDir: "/srv/pgplatform",
      isRoot: false,
      secrets,
    });
  test("defaults when the keys are left out", () => {
    const c = parseConfig(devEnv.replace(/^POOL_.*$/gm, ""), {
      file: "envs/dev.env",
      stack: "dev",
      rootDir: "/srv/pgplatform",
      isRoot: false,
      secrets,
    });
    expect(c.pool).toEqual({
      address: "127.0.0.1",
      port: 6015,
      maxClientConn: 1000,
      defaultPoolSize: 20,
      reservePoolSize: 5,
      maxDbConnections: 50,
      pauseTimeoutS: 10,
    });
  });
  test("per-database connections beyond max_connections are refused, with the bound in the fix", () => {
    expect(load("POOL_MAX_DB_CONNECTIONS=61")).toThrow(
      "envs/dev.env: POOL_MAX_DB_CONNECTIONS: 3 databases x POOL_MAX_DB_CONNECTIONS 61 = 183 server connections exceed max_connections 200 less 20 kept outside the pooler (180)",
    );
    try {
      load("POOL_MAX_DB_CONNECTIONS=61")();
    } catch (e) {
      expect((e as ToolkitError).fix).toBe("lower POOL_MAX_DB_CONNECTIONS to at most 60");
    }
    expect(load("POOL_MAX_DB_CONNECTIONS=60")().pool.maxDbConnections).toBe(60);
  });
  test("a pool larger than its database's cap is refused", () => {
    expect(load("POOL_DEFAULT_POOL_SIZE=48")).toThrow(
      "POOL_DEFAULT_POOL_SIZE: POOL_DEFAULT_POOL_SIZE + POOL_RESERVE_POOL_SIZE (48 + 5) exceeds POOL_MAX_DB_CONNECTIONS (50)",
    );
  });
  test("POOL_PORT may not repeat a HAProxy port", () => {
    expect(load("POOL_PORT=6012")).toThrow("envs/dev.env: POOL_PORT: port 6012 is also used by HAPROXY_RW_PORT");
  });
  test("max_connections in the Patroni template is the one the loader checks against", () => {
    const t = readFileSync(`${root}/patroni/patroni.yml.tmpl`, "utf8");
    expect(t).toContain(`max_connections: ${PG_MAX_CONNECTIONS}\n`);
  });
});

describe("switchover and restart-member: the steps as data", () => {
  const view = (states: Record<string, [role: string, state: string]>) => ({
    members: Object.entries(states).map(([name, [role, state]]) => ({ name, role, state, host: name, port: 5432 })),
  });
  const healthy = view({
    pg1: ["leader", "running"],
    pg2: ["sync_standby", "streaming"],
    pg3: ["replica", "streaming"],
  });
  test("switchover: CHECKPOINT -> PAUSE -> Patroni switchover -> wait for HAProxy's route -> RESUME, to the sync standby by default", () => {
    expect(planSwitchover(healthy)).toEqual({
      op: "switchover",
      leader: "pg1",
      candidate: "pg2",
      steps: ["preflight", "checkpoint", "pause", "switchover", "wait-route", "resume"],
    });
    expect(planSwitchover(healthy, "pg3").candidate).toBe("pg3");
  });
  test("restart-member: a replica restarts in place, outside any PAUSE", () => {
    expect(planRestart(healthy, "pg3")).toEqual({
      op: "restart-member",
      leader: "pg1",
      member: "pg3",
      steps: ["preflight", "restart", "wait-member"],
    });
  });
  test("restart-member of the leader: switched away inside PAUSE/RESUME first, restarted once it rejoined", () => {
    expect(planRestart(healthy, "pg1")).toEqual({
      op: "restart-member",
      leader: "pg1",
      member: "pg1",
      candidate: "pg2",
      steps: [
        "preflight",
        "checkpoint",
        "pause",
        "switchover",
        "wait-route",
        "resume",
        "wait-member",
        "restart",
        "wait-member",
      ],
    });
  });
  test("bad targets are refused before any step, naming the value and the choices", () => {
    expect(() => planSwitchover(healthy, "pg1")).toThrow("TO=pg1 is already the leader");
    expect(() => planSwitchover(healthy, "pg9")).toThrow("TO=pg9 is not a member (members: pg1, pg2, pg3)");
    expect(() =>
      planSwitchover(
        view({ pg1: ["leader", "running"], pg2: ["replica", "stopped"], pg3: ["sync_standby", "streaming"] }),
        "pg2",
      ),
    ).toThrow("TO=pg2 is not running (state stopped)");
    expect(() => planRestart(healthy, "pg4")).toThrow("MEMBER=pg4 is not a member (members: pg1, pg2, pg3)");
    expect(() =>
      planSwitchover(
        view({ pg1: ["replica", "running"], pg2: ["replica", "streaming"], pg3: ["replica", "streaming"] }),
      ),
    ).toThrow("the cluster has 0 leaders");
  });
});

describe("status: pool usage per database", () => {
  const row = (database: string, user: string, n: number[]) => ({
    database,
    user,
    clientsActive: n[0]!,
    clientsWaiting: n[1]!,
    serversActive: n[2]!,
    serversIdle: n[3]!,
    serversUsed: n[4]!,
    maxWaitS: n[5]!,
    paused: false,
  });
  test("one row per configured database, zeros until used, users summed", () => {
    expect(
      poolByDatabase(
        ["orchestrator_ai_dev", "hyperarchy_db"],
        [row("hyperarchy_db", "hyperarchy", [3, 1, 2, 1, 0, 4]), row("hyperarchy_db", "postgres", [1, 0, 0, 1, 1, 0])],
      ),
    ).toEqual([
      { database: "orchestrator_ai_dev", clientsActive: 0, clientsWaiting: 0, servers: 0, maxWaitS: 0 },
      { database: "hyperarchy_db", clientsActive: 4, clientsWaiting: 1, servers: 5, maxWaitS: 4 },
    ]);
  });
});
