/**
 * The native runtime: Debian's etcd, Patroni (+ Postgres), HAProxy and nginx
 * as local processes, each member on its own loopback address. Up is
 * idempotent (what runs and is healthy is left alone); a failed up stops what
 * this run started and names the component, the reason and its log tail.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Config, Member } from "./config";
import { ToolkitError } from "./errors";
import { osUserIds, run, which } from "./exec";
import { assessCluster, clusterView, isRunning, restGet, restSend, type Health } from "./patroni";
import { haproxyBackends } from "./haproxy";
import { connect, roTarget, rwTarget, withClient } from "./pg";
import { ensurePool, poolIniPath } from "./pool";
import { portFree, portHolder } from "./ports";
import { cmdlineOf, runningPid, startProc, stopProc, tailFile, type ProcSpec } from "./procs";
import { writeIfChanged } from "./render";
import { etcdFetch } from "./etcd-client";
import { ensureEtcdTls, etcdTlsFiles } from "./etcd-tls";
import { ensureDirNoFollow, writeFileNoFollow } from "./safe-fs";
import { etcdHome, nativeEtcdTlsDir, patroniEtcdTlsFiles, renderStack, stackHttpAddress } from "./stack-files";
import { ensureSocketDir } from "./rundir";
import { checkMonitoringPorts, monitoringDown, monitoringUp } from "./monitoring";
import { logRotatorSpec, logRotatorUp } from "./logrotate";

export type Progress = (component: string, message: string) => void;

export interface Specs {
  etcd: ProcSpec[];
  patroni: ProcSpec[];
  haproxy: ProcSpec;
  nginx: ProcSpec;
  pool: ProcSpec;
}

const pidFile = (cfg: Config, name: string) => join(cfg.stateDir, "pids", `${name}.pid`);
export const logFile = (cfg: Config, name: string) => join(cfg.logsDir, `${name}.log`);
export const patroniConfigPath = (m: Member) => join(m.dir, "patroni.yml");

/** etcd's rendered config (natively beside its data, where the etcd user can read it). */
export const etcdConfigPath = (cfg: Config, m: Member) => join(etcdHome(cfg), `${m.etcdName}.yml`);

/** As root, etcd runs as Debian's `etcd` user (its package creates it), never as root. */
export const etcdOsUser = (cfg: Config) => (cfg.pgOsUser ? "etcd" : undefined);

export function etcdOwner(cfg: Config): { uid: number; gid: number } | undefined {
  const user = etcdOsUser(cfg);
  if (!user) return undefined;
  const ids = osUserIds(user);
  if (!ids) throw new ToolkitError("NO_ETCD_USER", `OS user ${user} does not exist`, "install etcd-server (its package creates the user) with `make setup`");
  return ids;
}

export function procSpecs(cfg: Config): Specs {
  const r = cfg.renderedDir;
  const etcd = cfg.members.map((m) => {
    const conf = etcdConfigPath(cfg, m);
    return { name: m.etcdName, cmd: ["etcd", "--config-file", conf], marker: conf, pidFile: pidFile(cfg, m.etcdName), logFile: logFile(cfg, m.etcdName), asUser: etcdOsUser(cfg) };
  });
  const patroni = cfg.members.map((m) => {
    const conf = patroniConfigPath(m);
    return {
      name: m.name,
      cmd: ["patroni", conf],
      marker: conf,
      pidFile: pidFile(cfg, m.name),
      logFile: logFile(cfg, m.name),
      asUser: cfg.pgOsUser,
      cwd: m.dir,
      env: { HOME: m.dir, PGPASSFILE: join(m.dir, "pgpass") },
    };
  });
  const hconf = join(r, "haproxy", "haproxy.cfg");
  const nconf = join(r, "nginx", "nginx.conf");
  return {
    etcd,
    patroni,
    haproxy: { name: "haproxy", cmd: ["haproxy", "-db", "-f", hconf], marker: hconf, pidFile: pidFile(cfg, "haproxy"), logFile: logFile(cfg, "haproxy") },
    nginx: {
      name: "nginx",
      cmd: ["nginx", "-p", join(cfg.stateDir, "nginx"), "-c", nconf, "-g", "daemon off;"],
      marker: nconf,
      pidFile: pidFile(cfg, "nginx"),
      logFile: logFile(cfg, "nginx"),
    },
    // pgbouncer refuses to run as root: it runs as the postgres OS user, like the members.
    pool: { name: "pgbouncer", cmd: ["pgbouncer", poolIniPath(cfg)], marker: poolIniPath(cfg), pidFile: pidFile(cfg, "pgbouncer"), logFile: logFile(cfg, "pgbouncer"), asUser: cfg.pgOsUser },
  };
}

/**
 * etcd as started before mutual TLS (plain HTTP, config in the rendered dir, run as root).
 * Only dev-down stops it; dev-up refuses to start beside it.
 */
const legacyEtcdSpecs = (cfg: Config) => procSpecs(cfg).etcd.map((s) => ({ ...s, marker: join(cfg.renderedDir, "etcd", `${s.name}.yml`) }));

export function refuseLegacyEtcd(cfg: Config): void {
  const old = legacyEtcdSpecs(cfg).filter((s) => runningPid(s));
  if (old.length) {
    throw new ToolkitError("ETCD_TLS_UPGRADE", `${old.map((s) => s.name).join(", ")} still run without TLS (started by an older toolkit)`, "run `make dev-down` (it stops them), then `make dev-up`: etcd comes back with mutual TLS and Patroni rewrites its keys; Postgres data is kept");
  }
}

export const allSpecs = (s: Specs) => [...s.etcd, ...s.patroni, s.haproxy, s.nginx, s.pool];

/** Binaries the native runtime needs, each with the Debian package that ships it. */
export const NATIVE_BINARIES: [bin: string, pkg: string][] = [
  ["etcd", "etcd-server"],
  ["etcdctl", "etcd-client"],
  ["patroni", "patroni"],
  ["haproxy", "haproxy"],
  ["nginx", "nginx"],
  ["pgbackrest", "pgbackrest"],
  ["openssl", "openssl"],
  ["pgbouncer", "pgbouncer"],
];

export async function checkBinaries(cfg: Config): Promise<void> {
  const missing: string[] = [];
  for (const [bin, pkg] of NATIVE_BINARIES) if (!(await which(bin))) missing.push(`${bin} (package ${pkg})`);
  if (!existsSync(join(cfg.pgBinDir, "postgres"))) missing.push(`${cfg.pgBinDir}/postgres (package postgresql-15)`);
  if (missing.length) {
    throw new ToolkitError("MISSING_BINARY", `missing: ${missing.join(", ")}`, "run `make setup` (as root on Debian/Ubuntu it installs them with apt)");
  }
}

function listeners(cfg: Config, s: Specs): { spec: ProcSpec; address: string; port: number; what: string }[] {
  const out = [];
  for (const [i, m] of cfg.members.entries()) {
    out.push({ spec: s.etcd[i]!, address: m.address, port: m.etcdClientPort, what: `etcd ${m.etcdName} client` });
    out.push({ spec: s.etcd[i]!, address: m.address, port: m.etcdPeerPort, what: `etcd ${m.etcdName} peer` });
    out.push({ spec: s.patroni[i]!, address: m.address, port: m.pgPort, what: `Postgres ${m.name}` });
    out.push({ spec: s.patroni[i]!, address: m.address, port: m.restPort, what: `Patroni REST ${m.name}` });
  }
  out.push({ spec: s.haproxy, address: cfg.haproxy.address, port: cfg.haproxy.rwPort, what: "HAProxy read-write" });
  out.push({ spec: s.haproxy, address: cfg.haproxy.address, port: cfg.haproxy.roPort, what: "HAProxy read-only" });
  out.push({ spec: s.haproxy, address: cfg.haproxy.address, port: cfg.haproxy.statsPort, what: "HAProxy stats" });
  out.push({ spec: s.nginx, address: stackHttpAddress(cfg), port: cfg.api.port, what: "nginx API" });
  out.push({ spec: s.pool, address: cfg.pool.address, port: cfg.pool.port, what: "pgbouncer" });
  return out;
}

/** Every port a stopped component will bind must be free; name the holder otherwise. */
export async function checkPorts(cfg: Config, s: Specs): Promise<void> {
  for (const l of listeners(cfg, s)) {
    if (runningPid(l.spec)) continue;
    // A Postgres left running by a killed Patroni holds its port; Patroni adopts it on start.
    if (l.what.startsWith("Postgres") && postmasterAlive(cfg.members.find((m) => m.name === l.spec.name)!)) continue;
    if (!(await portFree(l.address, l.port))) {
      const holder = await portHolder(l.address, l.port);
      throw new ToolkitError("PORT_IN_USE", `${l.address}:${l.port} (${l.what}) is already in use by ${holder}`, `stop that process, or change the port in ${cfg.file}`);
    }
  }
}

export const postmasterAlive = (m: Member): boolean => postmasterPid(m) !== undefined;

/** The member's running postmaster: the pid in postmaster.pid, only while its command line names this data dir. */
export function postmasterPid(m: Member): number | undefined {
  try {
    const pid = Number(readFileSync(join(m.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return pid > 0 && cmdlineOf(pid)?.includes(m.dataDir) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The postgres OS user's ids when we run the Postgres side as it (as root), else undefined. */
export function pgOwner(cfg: Config): { uid: number; gid: number } | undefined {
  if (!cfg.pgOsUser) return undefined;
  const ids = osUserIds(cfg.pgOsUser);
  if (!ids) throw new ToolkitError("NO_POSTGRES_USER", `OS user ${cfg.pgOsUser} does not exist`, "install postgresql-15 (it creates the user) with `make setup`");
  return ids;
}

/**
 * Render every file; returns the names of components whose config changed.
 * Member dirs and everything in them belong to postgres, the etcd data dirs to
 * etcd: those are created, chowned and written without following a symlink
 * their owner may have planted (scripts/lib/safe-fs.ts).
 */
export async function writeStackFiles(cfg: Config): Promise<Set<string>> {
  const changed = new Set<string>();
  const ids = pgOwner(cfg);
  const etcdIds = etcdOwner(cfg);
  mkdirSync(cfg.stateDir, { recursive: true });
  // Traversable but not listable: the postgres user must reach member dirs below it; secret files are 0600 each.
  chmodSync(dirname(cfg.stateDir), 0o711);
  chmodSync(cfg.stateDir, 0o711);
  for (const d of [cfg.reportsDir, join(cfg.stateDir, "pids"), join(cfg.stateDir, "nginx", "tmp"), join(cfg.stateDir, "nginx", "apps")]) {
    mkdirSync(d, { recursive: true });
  }
  // Logs carry queries, paths and addresses: root's alone (every component's log is opened by us).
  ensureDirNoFollow(cfg.logsDir, 0o700);
  ensureDirNoFollow(cfg.memberRoot, 0o755);
  ensureDirNoFollow(etcdHome(cfg), 0o755);
  // The plain-HTTP etcd of older versions kept its data here; its peer URLs say http, so it cannot be reused.
  rmSync(join(cfg.stateDir, "etcd"), { recursive: true, force: true });
  const tlsChanges = await ensureEtcdTls(cfg, etcdTlsFiles(nativeEtcdTlsDir(cfg)), { etcd: etcdIds });
  if (tlsChanges.length) for (const m of cfg.members) changed.add(m.etcdName);
  for (const m of cfg.members) ensureDirNoFollow(join(etcdHome(cfg), m.etcdName), 0o700, etcdIds);
  const tls = etcdTlsFiles(nativeEtcdTlsDir(cfg));
  for (const f of renderStack(cfg, "native")) {
    if (f.member) {
      const m = cfg.members.find((x) => x.name === f.member)!;
      ensureDirNoFollow(m.dir, 0o700, ids);
      ensureSocketDir(cfg.runtimeDir, m.socketDir, ids, Boolean(cfg.pgOsUser), m.pgPort);
      if (writeIfChanged(join(m.dir, "patroni.yml"), f.content, { mode: 0o600, ...(ids ?? {}) })) changed.add(m.name);
      // Patroni's own copies of the CA and the etcd client pair (the key 0600, postgres's).
      const mine = patroniEtcdTlsFiles(m);
      let tlsChanged = writeFileNoFollow(mine.ca, readFileSync(tls.ca), { mode: 0o644, owner: ids });
      tlsChanged = writeFileNoFollow(mine.cert, readFileSync(tls.client.cert), { mode: 0o644, owner: ids }) || tlsChanged;
      tlsChanged = writeFileNoFollow(mine.key, readFileSync(tls.client.key), { mode: 0o600, owner: ids }) || tlsChanged;
      if (tlsChanged) changed.add(m.name);
    } else {
      const component = f.path.split("/")[0]!; // etcd, haproxy, nginx
      const name = component === "etcd" ? f.path.split("/")[1]!.replace(".yml", "") : component;
      // etcd's config sits in its home, root's and readable by the etcd group only; the others stay in the rendered dir.
      if (component === "etcd") {
        if (writeIfChanged(join(cfg.memberRoot, f.path), f.content, { mode: etcdIds ? 0o640 : 0o600, ...(etcdIds ? { uid: 0, gid: etcdIds.gid } : {}) })) changed.add(name);
      } else if (writeIfChanged(join(cfg.renderedDir, f.path), f.content, { mode: f.secret ? 0o600 : 0o644 })) changed.add(name);
    }
  }
  return changed;
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${Math.round(timeoutMs / 1000)} s`);
    await Bun.sleep(250);
  }
}

export async function etcdHealthy(cfg: Config, m: Member): Promise<boolean> {
  try {
    const res = await etcdFetch(cfg, m, "/health", { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

/** Which member the HAProxy port routes to, and whether it is in recovery. */
export async function probeRoute(cfg: Config, port: "rw" | "ro"): Promise<{ addr: string; inRecovery: boolean } | undefined> {
  try {
    const c = await connect(cfg, { target: port === "rw" ? rwTarget(cfg) : roTarget(cfg), timeoutMs: 1500 });
    try {
      const r = await c.query("SELECT inet_server_addr()::text AS addr, pg_is_in_recovery() AS rec");
      return { addr: String(r.rows[0].addr).replace(/\/32$/, ""), inRecovery: r.rows[0].rec };
    } finally {
      await c.end().catch(() => {});
    }
  } catch {
    return undefined;
  }
}

/** A process dev-up was waiting on has died; `proc` names it (the member whose log says why). */
export class ProcessDied extends ToolkitError {
  constructor(readonly proc: ProcSpec) {
    super("PROCESS_DIED", `${proc.name} exited during start-up`, `see ${proc.logFile}`);
  }
}

export async function waitHealthy(cfg: Config, timeoutMs: number, watch: ProcSpec[] = []): Promise<Health> {
  let last: Health | undefined;
  let suspect: ProcSpec | undefined;
  try {
    return await waitFor("Patroni cluster", timeoutMs, async () => {
      // Fail fast when a process we are waiting on has died: its log says why.
      // Dead on two polls in a row, so one odd /proc read cannot end a bring-up.
      const dead = watch.find((s) => !runningPid(s));
      if (dead && dead === suspect) throw new ProcessDied(dead);
      suspect = dead;
      last = assessCluster(cfg, await clusterView(cfg));
      return last.ok ? last : undefined;
    });
  } catch (err) {
    if (err instanceof ToolkitError) throw err;
    throw new ToolkitError("CLUSTER_UNHEALTHY", `Patroni cluster not healthy after ${timeoutMs / 1000} s: ${(last?.problems ?? ["no answer"]).join(", ")}`, "see `make logs SVC=pg1` (and pg2, pg3) and `make status`");
  }
}

export interface UpResult {
  started: string[];
  restarted: string[];
  changes: string[];
  health: Health;
  ms: number;
}

export async function nativeUp(cfg: Config, progress: Progress): Promise<UpResult> {
  const t0 = Date.now();
  await checkBinaries(cfg);
  const specs = procSpecs(cfg);
  refuseLegacyEtcd(cfg);
  await checkPorts(cfg, specs);
  await checkMonitoringPorts(cfg);
  const changedFiles = await writeStackFiles(cfg);
  const started: ProcSpec[] = [];
  const restarted: string[] = [];
  const changes: string[] = [];
  const startOne = (spec: ProcSpec) => {
    startProc(spec);
    started.push(spec);
  };
  let component = "etcd";
  try {
    // 1. etcd: the DCS must have quorum before Patroni can elect a leader.
    const etcdToStart = specs.etcd.filter((s) => !runningPid(s));
    for (const s of etcdToStart) startOne(s);
    progress("etcd", etcdToStart.length ? `starting ${etcdToStart.map((s) => s.name).join(", ")}` : "running");
    for (const m of cfg.members) {
      component = m.etcdName;
      await waitFor(`etcd ${m.etcdName}`, 30_000, async () => ((await etcdHealthy(cfg, m)) ? true : undefined));
    }
    progress("etcd", "3/3 healthy");

    // 2. Patroni + Postgres. A changed patroni.yml is picked up by a reload (SIGHUP), not a restart.
    component = "patroni";
    const toStart = specs.patroni.filter((s) => !runningPid(s));
    for (const s of toStart) startOne(s);
    for (const s of specs.patroni) {
      const pid = runningPid(s);
      if (pid && changedFiles.has(s.name) && !toStart.includes(s)) {
        process.kill(pid, "SIGHUP");
        restarted.push(`${s.name} (reloaded)`);
      }
    }
    progress("patroni", toStart.length ? `starting ${toStart.map((s) => s.name).join(", ")}` : "running");
    const bootstrapping = toStart.length === cfg.members.length;
    try {
      const health = await waitHealthy(cfg, bootstrapping ? 120_000 : 60_000, toStart);
      progress("patroni", `leader ${health.leader}, sync standby ${health.syncStandby ?? "-"}, ${health.running}/3 running`);
    } catch (err) {
      // Name the member whose process died, if one did.
      const dead = err instanceof ProcessDied ? err.proc : specs.patroni.find((s) => started.includes(s) && !runningPid(s));
      if (dead) component = dead.name;
      throw err;
    }

    // 3. DCS settings: bootstrap.dcs only applies at bootstrap, so later edits to the env file are PATCHed in.
    const dcs = await syncDcsTiming(cfg);
    if (dcs) changes.push(dcs);

    // 4. HAProxy, restarted only when its config changed.
    component = "haproxy";
    await ensureFrontend(specs.haproxy, changedFiles.has("haproxy"), startOne, restarted);
    // HAProxy 2.6 starts every server as UP until its checks fail, so a fresh HAProxy can hand a
    // write to a replica for a second or two. Ready means: its own stats show exactly the leader UP
    // for writes and only replicas UP for reads, and a real connection agrees.
    await waitFor("HAProxy backends", 30_000, async () => {
      const view = await clusterView(cfg);
      const b = await haproxyBackends(cfg);
      if (!view || !b) return undefined;
      const leader = view.members.find((m) => m.role === "leader")?.name;
      const up = (proxy: string) => b.filter((x) => x.proxy === proxy && x.status === "UP").map((x) => x.server).sort();
      const replicas = view.members.filter((m) => m.role !== "leader" && isRunning(m)).map((m) => m.name).sort();
      return leader && up("postgres_rw").join() === leader && up("postgres_ro").join() === replicas.join() ? true : undefined;
    });
    const rw = await waitFor("HAProxy read-write route", 30_000, async () => {
      const r = await probeRoute(cfg, "rw");
      return r && !r.inRecovery ? r : undefined;
    });
    const ro = await waitFor("HAProxy read-only route", 30_000, async () => {
      const r = await probeRoute(cfg, "ro");
      return r && r.inRecovery ? r : undefined;
    });
    progress("haproxy", `read-write ${cfg.haproxy.address}:${cfg.haproxy.rwPort} -> ${rw.addr} (primary), read-only :${cfg.haproxy.roPort} -> ${ro.addr} (replica)`);

    // 5. nginx.
    component = "nginx";
    await run(["nginx", "-t", "-q", "-p", join(cfg.stateDir, "nginx"), "-c", specs.nginx.marker], { timeoutMs: 10_000 });
    await ensureFrontend(specs.nginx, changedFiles.has("nginx"), startOne, restarted);
    await waitFor("nginx /healthz", 15_000, async () => {
      try {
        const r = await fetch(`http://${stackHttpAddress(cfg)}:${cfg.api.port}/healthz`, { signal: AbortSignal.timeout(1000) });
        return r.ok ? true : undefined;
      } catch {
        return undefined;
      }
    });
    progress("nginx", `http://${stackHttpAddress(cfg)}:${cfg.api.port}/healthz`);

    // 6. Databases and Supabase's database side.
    component = "databases";
    changes.push(...(await ensureDatabases(cfg)));
    progress("databases", `${cfg.databases.length} environment databases ready`);

    // 7. Backups: pgBackRest config + stanza, WAL archiving in the DCS (idempotent).
    component = "pgbackrest";
    changes.push(...(await (await import("./backup/pgbackrest")).ensureBackupRepo(cfg)));
    progress("pgbackrest", `stanza ${cfg.backup.stanza}, WAL archived to ${cfg.backup.repoDir}`);

    // 8. pgbouncer, once the roles it copies verifiers of exist.
    component = "pgbouncer";
    const poolState = await withClient(cfg, {}, (c) => ensurePool(cfg, c, specs.pool, startOne));
    progress("pgbouncer", `${poolState}: ${cfg.pool.address}:${cfg.pool.port} -> HAProxy read-write (transaction pooling)`);

    // 9. Monitoring (MONITORING=true): scripts/lib/monitoring.ts.
    if (cfg.monitoring.enabled) {
      component = "monitoring";
      changes.push(...(await monitoringUp(cfg, startOne, restarted)));
      progress("monitoring", `Prometheus http://${cfg.monitoring.address}:${cfg.monitoring.prometheusPort}/, Alertmanager http://${cfg.monitoring.address}:${cfg.monitoring.alertmanagerPort}/`);
    }

    changes.push(...(await logRotatorUp(cfg, startOne))); // 10. every log capped (scripts/lib/logrotate.ts)
    const health = assessCluster(cfg, await clusterView(cfg));
    return { started: started.map((s) => s.name), restarted, changes, health, ms: Date.now() - t0 };
  } catch (err) {
    // Leave nothing half-started: stop what this run started, newest first.
    for (const s of [...started].reverse()) await stopComponent(cfg, s, 15_000).catch(() => {});
    const spec = allSpecs(specs).find((s) => s.name === component);
    const reason = err instanceof ToolkitError ? err.message : (err as Error).message;
    throw new ToolkitError(
      "UP_FAILED",
      `${component}: ${reason}${started.length ? ` (stopped what this run started: ${started.map((s) => s.name).join(", ")})` : ""}`,
      err instanceof ToolkitError && err.fix ? err.fix : `see ${spec ? spec.logFile : cfg.logsDir}`,
      spec ? `last lines of ${spec.logFile}:\n${tailFile(spec.logFile, 15)}` : undefined,
    );
  }
}

async function ensureFrontend(spec: ProcSpec, changed: boolean, startOne: (s: ProcSpec) => void, restarted: string[]) {
  const pid = runningPid(spec);
  if (pid && changed) {
    await stopProc(spec, 10_000);
    startProc(spec);
    restarted.push(spec.name);
  } else if (!pid) {
    startOne(spec);
  }
}

/** Apply the env file's HA timing to the DCS when it differs (Patroni reads bootstrap.dcs only once). */
export async function syncDcsTiming(cfg: Config): Promise<string | undefined> {
  const want: Record<string, unknown> = {
    ttl: cfg.timing.ttl,
    loop_wait: cfg.timing.loopWait,
    retry_timeout: cfg.timing.retryTimeout,
    maximum_lag_on_failover: cfg.timing.maximumLagOnFailover,
    synchronous_mode: cfg.timing.synchronousMode,
    failsafe_mode: cfg.timing.failsafeMode,
    // Same value as patroni/patroni.yml.tmpl: fail over at once on a crash (safe with synchronous mode).
    primary_start_timeout: 0,
  };
  for (const m of cfg.members) {
    const r = await restGet(m, "/config");
    if (!r || r.status !== 200) continue;
    const diff = Object.fromEntries(Object.entries(want).filter(([k, v]) => r.body[k] !== v));
    if (Object.keys(diff).length === 0) return undefined;
    const res = await restSend(cfg, m, "PATCH", "/config", diff);
    if (res.status !== 200) throw new ToolkitError("DCS_PATCH_FAILED", `PATCH /config answered ${res.status}: ${res.text}`);
    return `DCS settings updated: ${Object.keys(diff).join(", ")}`;
  }
  return undefined;
}

export async function ensureDatabases(cfg: Config): Promise<string[]> {
  const { ensureSupabaseRoles, ensureJwtSettings, restrictConnect, ENVIRONMENT_DB_ROLES, MAINTENANCE_DB_ROLES } = await import("./supabase-db");
  const { quoteIdent } = await import("./pg");
  const changes: string[] = [];
  const c = await connect(cfg);
  try {
    const have = new Set((await c.query("SELECT datname FROM pg_database")).rows.map((r) => r.datname as string));
    changes.push(...(await ensureSupabaseRoles(cfg, c)));
    for (const db of cfg.databases) {
      if (!have.has(db)) {
        await c.query(`CREATE DATABASE ${quoteIdent(db)}`);
        changes.push(`database ${db}`);
      }
      changes.push(...(await ensureJwtSettings(cfg, c, db)));
      // Each role confined to its own database: app roles cannot even connect here.
      const confined = await restrictConnect(c, db, ENVIRONMENT_DB_ROLES);
      if (confined) changes.push(confined);
    }
    const maintenance = await restrictConnect(c, "postgres", MAINTENANCE_DB_ROLES);
    if (maintenance) changes.push(maintenance);
    // template1 too: no role needs it, and from it an app's role could ALTER its own database
    // (ALLOW_CONNECTIONS false), which no session inside that database may do, and stop every backup.
    const template = await restrictConnect(c, "template1", []);
    if (template) changes.push(template);
  } finally {
    await c.end().catch(() => {});
  }
  return changes;
}

/**
 * Stop one component. For a Patroni member, also its Postgres: a Patroni that
 * outlives the grace period is SIGKILLed, and its postmaster would otherwise
 * run on as an orphan holding the member's port. SIGINT is Postgres's fast shutdown.
 */
export async function stopComponent(cfg: Config, spec: ProcSpec, graceMs: number): Promise<boolean> {
  const stopped = await stopProc(spec, graceMs);
  const member = cfg.members.find((m) => m.name === spec.name);
  const pid = member && postmasterPid(member);
  if (!pid) return stopped;
  process.kill(pid, "SIGINT");
  const deadline = Date.now() + graceMs;
  while (postmasterPid(member) === pid && Date.now() < deadline) await Bun.sleep(100);
  if (postmasterPid(member) === pid) process.kill(pid, "SIGKILL");
  return true;
}

export interface DownResult {
  stopped: string[];
}

/** Stop in a safe order: front doors first, replicas before the leader, etcd last. Data is kept. */
export async function nativeDown(cfg: Config, progress: Progress): Promise<DownResult> {
  const specs = procSpecs(cfg);
  const stopped: string[] = [];
  const stop = async (s: ProcSpec) => {
    if (await stopComponent(cfg, s, 60_000)) {
      stopped.push(s.name);
      progress(s.name, "stopped");
    }
  };
  await stop(logRotatorSpec(cfg));
  await monitoringDown(cfg, stop);
  await stop(specs.nginx);
  await stop(specs.pool);
  await stop(specs.haproxy);
  const view = await clusterView(cfg);
  const leader = view?.members.find((m) => m.role === "leader")?.name;
  const ordered = [...specs.patroni].sort((a, b) => Number(a.name === leader) - Number(b.name === leader));
  for (const s of ordered) await stop(s);
  // They share a pid file, and stopping a spec that is not running drops it: stop only the one that runs.
  for (const s of legacyEtcdSpecs(cfg)) if (runningPid(s)) await stop(s);
  for (const s of specs.etcd) await stop(s);
  return { stopped };
}

