/**
 * The docker runtime run for real (issue 21): dev-up with RUNTIME=docker through the Runtime
 * interface, against podman's Docker-compatible API driven by compose v1 (Debian's
 * docker-compose 1.29), with the images `make images-local` builds from Debian's packages.
 * The engine lives in a network namespace this test creates and deletes (podman-engine.ts);
 * only the cluster part and nginx run (DOCKER_SERVICES=cluster+nginx: no Supabase image can be pulled here).
 * One stack serves every test: dev-up, the cluster's shape, make status, nginx through its published
 * port, make backup (verified) and make restore, the failover drill, dev-down and clean.
 * Skipped, with the reason printed, where podman, docker-compose or `ip netns` are missing.
 *
 *   STACK=local-docker21 node_modules/.bin/bun test --timeout 1200000 tests/integration/docker-runtime.test.ts
 * (the env file envs/<STACK>.env is written from envs/test.env when absent: block 127.0.34.x).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadConfig, type Config } from "../../scripts/lib/config";
import { run } from "../../scripts/lib/exec";
import { ensureSecrets } from "../../scripts/lib/secrets";
import { stackHttpAddress } from "../../scripts/lib/stack-files";
import type { StackStatus } from "../../scripts/lib/status";
import { type Engine, engineMissing, engineUp, inNs, podmanIn, CONTAINERS_CONF } from "./podman-engine";

const ROOT = resolve(import.meta.dir, "../..");
const STACK = process.env.DOCKER_TEST_STACK ?? "local-docker21";
const NS = process.env.DOCKER_TEST_NS ?? "pgp-d21";
const IMAGES = ["patroni", "etcd", "haproxy", "nginx", "pgbouncer"].map((n) => `localhost/pgplatform/${n}:bookworm`);

/** envs/<STACK>.env from envs/test.env: its own block, the docker runtime, the local images, the cluster part and nginx. */
function writeEnvFile(): void {
  const file = join(ROOT, "envs", `${STACK}.env`);
  const text = readFileSync(join(ROOT, "envs", "test.env"), "utf8")
    .replace(/^CLUSTER_NAME=.*$/m, `CLUSTER_NAME=pgplatform-${STACK.replace(/^local-/, "")}`)
    .replaceAll("127.0.1.", "127.0.34.")
    .replace(/^RUNTIME=.*$/m, "RUNTIME=docker");
  const images = ["PATRONI", "ETCD", "HAPROXY", "NGINX", "PGBOUNCER"]
    .map((n) => `IMAGE_${n}=localhost/pgplatform/${n.toLowerCase()}:bookworm`)
    .join("\n");
  writeFileSync(file, `${text}\n${images}\nDOCKER_SERVICES=cluster+nginx\nDOCKER_PUBLISH_MEMBERS=true\n`);
}

const skip = await engineMissing(IMAGES);
if (skip) console.log(`docker-runtime.test.ts skipped: ${skip}`);

let engine: Engine | undefined;
let cfg: Config;
let coldMs = 0;
const env = () => ({ STACK, DOCKER_HOST: engine!.dockerHost, CONTAINERS_CONF });
const script = (name: string, ...args: string[]) =>
  run(
    inNs(NS, [
      "env",
      ...Object.entries(env()).map(([k, v]) => `${k}=${v}`),
      process.execPath,
      `scripts/${name}`,
      ...args,
    ]),
    {
      cwd: ROOT,
      nothrow: true,
      timeoutMs: 900_000,
    },
  );
/** psql inside the namespace; the password through the environment, never argv. */
const psql = (port: number, sql: string, db = "postgres") =>
  run(
    inNs(NS, [
      "psql",
      `host=${cfg.haproxy.address} port=${port} user=postgres dbname=${db} connect_timeout=3`,
      "-XAtc",
      sql,
    ]),
    { nothrow: true, env: { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD }, timeoutMs: 30_000 },
  );
const container = (svc: string) => `${cfg.clusterName}_${svc}_1`;

describe.skipIf(Boolean(skip))("docker runtime on podman (cluster part)", () => {
  beforeAll(async () => {
    writeEnvFile();
    cfg = loadConfig(STACK);
    ensureSecrets(cfg.secretsFile);
    cfg = loadConfig(STACK);
    engine = await engineUp(NS, cfg.clusterName);
  }, 120_000);
  afterAll(async () => {
    await engine?.stop();
  }, 300_000);

  test("dev-up RUNTIME=docker brings the cluster up (cold start printed)", async () => {
    const t0 = Date.now();
    const r = await script("dev-up.ts");
    coldMs = Date.now() - t0;
    console.log(`docker runtime cold start (podman ${NS}, compose v1): ${(coldMs / 1000).toFixed(1)} s`);
    expect({ code: r.code, err: r.code ? r.stdout + r.stderr : "" }).toEqual({ code: 0, err: "" });
    // the members' REST APIs are reachable: dev-up names the leader as natively (it printed "leader undefined")
    expect(r.stdout).toMatch(/\(leader pg[123]\)/);
  }, 900_000);

  test("three Patroni members: one leader, two streaming, one of them synchronous", async () => {
    const r = await run(
      podmanIn(NS, "exec", container("pg1"), "patronictl", "-c", "/etc/patroni/patroni.yml", "list", "-f", "json"),
      { nothrow: true, env: { CONTAINERS_CONF } },
    );
    const members = JSON.parse(r.stdout || "[]") as { Member: string; Role: string; State: string }[];
    expect(members.map((m) => m.Member).sort()).toEqual(["pg1", "pg2", "pg3"]);
    expect(members.map((m) => m.Role).sort()).toEqual(["Leader", "Replica", "Sync Standby"]);
    // Patroni 3.0.2 (Debian's) calls a streaming replica "running"; the leader's view decides streaming
    expect(members.map((m) => m.State)).toEqual(["running", "running", "running"]);
    const rep = await psql(cfg.haproxy.rwPort, "select state || ' ' || sync_state from pg_stat_replication order by 1");
    expect(rep.stdout.trim().split("\n")).toEqual(["streaming async", "streaming sync"]);
  });

  test("HAProxy routes read-write to the leader and read-only to a replica", async () => {
    const rw = await psql(cfg.haproxy.rwPort, "select pg_is_in_recovery()");
    const ro = await psql(cfg.haproxy.roPort, "select pg_is_in_recovery()");
    expect([rw.stdout.trim(), ro.stdout.trim()]).toEqual(["f", "t"]);
  });

  test("the environment databases exist", async () => {
    const r = await psql(
      cfg.haproxy.rwPort,
      "select datname from pg_database where datname like 'orchestrator_ai_%' order by 1",
    );
    expect(r.stdout.trim().split("\n")).toEqual([...cfg.databases].sort());
  });

  test("make status --json through the docker runtime: exact roles, timelines, HAProxy, pgbouncer, containers", async () => {
    const r = await script("status.ts", "--json");
    expect({ code: r.code, err: r.code ? r.stdout + r.stderr : "" }).toEqual({ code: 0, err: "" });
    const s = JSON.parse(r.stdout) as StackStatus;
    const byRole = Object.fromEntries(s.members.map((m) => [m.name, m.role]));
    expect(Object.values(byRole).sort()).toEqual(["leader", "replica", "sync_standby"]);
    expect(s.members.map((m) => [m.name, m.address, m.state, m.timeline])).toEqual(
      cfg.members.map((m) => [m.name, m.address, "running", 1]),
    );
    expect(s.members.filter((m) => m.role !== "leader").map((m) => typeof m.lag)).toEqual(["number", "number"]);
    // HAProxy routes read-write to the leader only and read-only to the two replicas
    const up = (proxy: string) =>
      (s.haproxy ?? [])
        .filter((b) => b.proxy === proxy && b.status === "UP")
        .map((b) => b.server)
        .sort();
    const leader = s.members.find((m) => m.role === "leader")!.name;
    expect([up("postgres_rw"), up("postgres_ro")]).toEqual([
      [leader],
      cfg.members.map((m) => m.name).filter((n) => n !== leader),
    ]);
    expect(s.pool?.map((p) => p.database).sort()).toEqual([...cfg.databases].sort());
    expect(s.etcd).toEqual(cfg.members.map((m) => ({ name: m.etcdName, healthy: true })));
    const svc = ["etcd1", "etcd2", "etcd3", "haproxy", "nginx", "pg1", "pg2", "pg3", "pgbouncer"];
    expect(s.processes.map((p) => [p.name, p.ready]).sort()).toEqual(svc.map((n) => [container(n), true]));
    expect(s.health).toMatchObject({ ok: true, problems: [] });
  }, 120_000);

  test("nginx (issue 13 fault 2: temp dirs on an empty tmpfs): /healthz and /cluster answer through the published port", async () => {
    const base = `http://${stackHttpAddress(cfg)}:${cfg.api.port}`;
    const get = (path: string) =>
      run(inNs(NS, ["curl", "-sS", "-w", "\n%{http_code}", `${base}${path}`]), { nothrow: true });
    const health = await get("/healthz");
    expect(health.stdout).toBe(`{"status":"ok","stack":"${STACK}"}\n200`);
    const cluster = await get("/cluster");
    const [body, code] = cluster.stdout.split(/\n(?=\d+$)/);
    expect([code, (JSON.parse(body!).members as { name: string }[]).map((m) => m.name).sort()]).toEqual([
      "200",
      ["pg1", "pg2", "pg3"],
    ]);
    // without Kong, / goes to the native runtime's placeholder: a 502, not an nginx that would not start
    expect((await get("/")).stdout.split("\n").at(-1)).toBe("502");
  });

  test("make backup (pgBackRest in the leader's container, verified), then make restore: the marker row comes back", async () => {
    const db = cfg.databases[0]!;
    const marker = `docker backup ${Date.now()}`;
    const setup = await psql(
      cfg.haproxy.rwPort,
      `create table backup_marker (id int primary key, note text not null); insert into backup_marker values (1, '${marker}')`,
      db,
    );
    expect(setup.stderr).toBe("");
    const b = await script("backup.ts", "--json", "--db", db);
    expect({ code: b.code, err: b.code ? b.stdout + b.stderr : "" }).toEqual({ code: 0, err: "" });
    const report = JSON.parse(b.stdout);
    console.log(
      `docker backup: ${report.physical.type} ${report.physical.label} (${report.physical.note}), ${report.ms.total} ms`,
    );
    expect([report.physical.type, report.verification.ok, report.verification.checks]).toEqual([
      "full",
      true,
      { files: true, restore: true, rowCounts: true, checksums: true, databaseProperties: true, pgbackrest: true },
    ]);
    expect(
      (await psql(cfg.haproxy.rwPort, "update backup_marker set note = 'changed after the backup'", db)).code,
    ).toBe(0);
    const to = `${db}_restored`;
    const r = await script("restore.ts", "--db", db, "--to", to, "--from", report.id, "--yes", "--json");
    expect({ code: r.code, err: r.code ? r.stdout + r.stderr : "" }).toEqual({ code: 0, err: "" });
    const back = await psql(cfg.haproxy.rwPort, "select id || ' ' || note from backup_marker", to);
    const live = await psql(cfg.haproxy.rwPort, "select id || ' ' || note from backup_marker", db);
    expect([back.stdout.trim(), live.stdout.trim()]).toEqual([`1 ${marker}`, "1 changed after the backup"]);
  }, 600_000);

  test("kill the leader's container under a write load: 0 acknowledged writes lost", async () => {
    const list = await run(
      podmanIn(NS, "exec", container("pg1"), "patronictl", "-c", "/etc/patroni/patroni.yml", "list", "-f", "json"),
      { env: { CONTAINERS_CONF } },
    );
    const leader = (JSON.parse(list.stdout) as { Member: string; Role: string }[]).find((m) => m.Role === "Leader")!;
    expect((await psql(cfg.haproxy.rwPort, "create table drill (id int primary key)")).code).toBe(0);
    const acked: number[] = [];
    let killedAt = 0;
    const t0 = Date.now();
    for (let i = 1; Date.now() - t0 < 120_000; i++) {
      const r = await psql(cfg.haproxy.rwPort, `insert into drill values (${i})`);
      if (r.code === 0) acked.push(i);
      if (!killedAt && acked.length >= 20) {
        await run(podmanIn(NS, "kill", container(leader.Member)), { env: { CONTAINERS_CONF } });
        killedAt = i;
      }
      if (killedAt && acked.filter((a) => a > killedAt).length >= 20) break;
    }
    const after = acked.filter((a) => a > killedAt).length;
    const rows = await psql(cfg.haproxy.rwPort, "select id from drill order by id");
    const have = new Set(rows.stdout.trim().split("\n").map(Number));
    console.log(
      `failover drill: leader ${leader.Member} killed after write ${killedAt}; ${acked.length} acknowledged, ${after} after the kill`,
    );
    expect({ after20: after >= 20, lost: acked.filter((a) => !have.has(a)) }).toEqual({ after20: true, lost: [] });
  }, 300_000);

  test("dev-down stops every container; clean removes containers, volumes and network", async () => {
    const down = await script("dev-down.ts");
    expect(down.code).toBe(0);
    const label = `label=com.docker.compose.project=${cfg.clusterName}`;
    const running = await run(podmanIn(NS, "ps", "-q", "--filter", label), { env: { CONTAINERS_CONF } });
    expect(running.stdout.trim()).toBe("");
    const clean = await script("clean.ts", "--yes");
    expect({ code: clean.code, err: clean.code ? clean.stderr : "" }).toEqual({ code: 0, err: "" });
    const left = await run(podmanIn(NS, "ps", "-aq", "--filter", label), { env: { CONTAINERS_CONF } });
    const vols = await run(podmanIn(NS, "volume", "ls", "-q", "--filter", label), { env: { CONTAINERS_CONF } });
    expect([left.stdout.trim(), vols.stdout.trim()]).toEqual(["", ""]);
  }, 600_000);

  test("benchmark: cold start against the native runtime, same namespace, same addresses", async () => {
    // A sibling stack: the same env file with RUNTIME=native, started and cleaned in the namespace.
    const native = `${STACK}n`;
    const file = join(ROOT, "envs", `${native}.env`);
    writeFileSync(
      file,
      readFileSync(join(ROOT, "envs", `${STACK}.env`), "utf8")
        .replace(/^RUNTIME=.*$/m, "RUNTIME=native")
        .replace(/^CLUSTER_NAME=.*$/m, `CLUSTER_NAME=${cfg.clusterName}n`),
    );
    const nat = (name: string, ...args: string[]) =>
      run(inNs(NS, ["env", `STACK=${native}`, process.execPath, `scripts/${name}`, ...args]), {
        cwd: ROOT,
        nothrow: true,
        timeoutMs: 900_000,
      });
    try {
      const t0 = Date.now();
      const up = await nat("dev-up.ts");
      const nativeMs = Date.now() - t0;
      expect({ code: up.code, err: up.code ? up.stdout + up.stderr : "" }).toEqual({ code: 0, err: "" });
      console.log(
        `cold start: docker (podman, compose v1) ${(coldMs / 1000).toFixed(1)} s, native ${(nativeMs / 1000).toFixed(1)} s: ${(coldMs / nativeMs).toFixed(2)}x (goal <= 2x)`,
      );
    } finally {
      await nat("clean.ts", "--yes", "--purge-secrets");
      rmSync(file, { force: true });
      rmSync(join(ROOT, "envs", `app.${native}`), { recursive: true, force: true }); // clean leaves it empty
    }
  }, 900_000);
});
