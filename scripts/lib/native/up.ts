/**
 * The native runtime's up: Debian's etcd, Patroni (+ Postgres), HAProxy and
 * nginx as local processes, each member on its own loopback address. Up is
 * idempotent (what runs and is healthy is left alone); a failed up stops what
 * this run started and names the component, the reason and its log tail.
 */
import { ensureEnvironments, ensureSupabaseServerSettings } from "../supabase/environments";
import { writeSupabaseRoutes } from "../supabase/routes";
import { join } from "node:path";
import type { Config } from "../config";
import { ensureBackupRepo } from "../backup/pgbackrest";
import {
  ensureDatabases,
  probeRoute,
  ProcessDied,
  syncDcsTiming,
  waitFor,
  waitHealthy,
  etcdHealthy,
} from "../cluster-ops";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { haproxyBackends } from "../haproxy";
import { checkMonitoringPorts, monitoringUp } from "../monitoring";
import { logRotatorUp } from "../logrotate";
import { assessCluster, clusterView, isRunning } from "../patroni";
import { withClient } from "../pg";
import { ensurePool } from "../pool";
import { runningPid, startProc, stopProc, tailFile, type ProcSpec } from "../procs";
import type { Progress, UpResult } from "../runtime";
import { stackHttpAddress } from "../stack-files";
import { checkPorts, writeStackFiles } from "./files";
import { allSpecs, checkBinaries, procSpecs, refuseLegacyEtcd, stopComponent } from "./specs";

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
      progress(
        "patroni",
        `leader ${health.leader}, sync standby ${health.syncStandby ?? "-"}, ${health.running}/3 running`,
      );
    } catch (err) {
      // Name the member whose process died, if one did.
      const dead =
        err instanceof ProcessDied ? err.proc : specs.patroni.find((s) => started.includes(s) && !runningPid(s));
      if (dead) component = dead.name;
      throw err;
    }

    // 3. DCS settings: bootstrap.dcs only applies at bootstrap, so later edits to the env file are PATCHed in.
    const dcs = await syncDcsTiming(cfg);
    if (dcs) changes.push(dcs);
    changes.push(...(await ensureSupabaseServerSettings(cfg)));

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
      const up = (proxy: string) =>
        b
          .filter((x) => x.proxy === proxy && x.status === "UP")
          .map((x) => x.server)
          .sort();
      const replicas = view.members
        .filter((m) => m.role !== "leader" && isRunning(m))
        .map((m) => m.name)
        .sort();
      return leader && up("postgres_rw").join() === leader && up("postgres_ro").join() === replicas.join()
        ? true
        : undefined;
    });
    const rw = await waitFor("HAProxy read-write route", 30_000, async () => {
      const r = await probeRoute(cfg, "rw");
      return r && !r.inRecovery ? r : undefined;
    });
    const ro = await waitFor("HAProxy read-only route", 30_000, async () => {
      const r = await probeRoute(cfg, "ro");
      return r && r.inRecovery ? r : undefined;
    });
    progress(
      "haproxy",
      `read-write ${cfg.haproxy.address}:${cfg.haproxy.rwPort} -> ${rw.addr} (primary), read-only :${cfg.haproxy.roPort} -> ${ro.addr} (replica)`,
    );

    // 5. nginx.
    component = "nginx";
    if (writeSupabaseRoutes(cfg)) changedFiles.add("nginx");
    await run(["nginx", "-t", "-q", "-p", join(cfg.stateDir, "nginx"), "-c", specs.nginx.marker], {
      timeoutMs: 10_000,
    });
    await ensureFrontend(specs.nginx, changedFiles.has("nginx"), startOne, restarted);
    await waitFor("nginx /healthz", 15_000, async () => {
      try {
        const r = await fetch(`http://${stackHttpAddress(cfg)}:${cfg.api.port}/healthz`, {
          signal: AbortSignal.timeout(1000),
        });
        return r.ok ? true : undefined;
      } catch {
        return undefined;
      }
    });
    progress("nginx", `http://${stackHttpAddress(cfg)}:${cfg.api.port}/healthz`);

    // 6. Databases and Supabase's database side.
    component = "databases";
    changes.push(...(await ensureDatabases(cfg)));
    changes.push(...(await ensureEnvironments(cfg)));
    progress("databases", `${cfg.databases.length} environment databases ready`);

    // 7. Backups: pgBackRest config + stanza, WAL archiving in the DCS (idempotent).
    component = "pgbackrest";
    changes.push(...(await ensureBackupRepo(cfg)));
    progress("pgbackrest", `stanza ${cfg.backup.stanza}, WAL archived to ${cfg.backup.repoDir}`);

    // 8. pgbouncer, once the roles it copies verifiers of exist.
    component = "pgbouncer";
    const poolState = await withClient(cfg, {}, (c) => ensurePool(cfg, c, specs.pool, startOne));
    progress(
      "pgbouncer",
      `${poolState}: ${cfg.pool.address}:${cfg.pool.port} -> HAProxy read-write (transaction pooling)`,
    );

    // 9. Monitoring (MONITORING=true): scripts/lib/monitoring.ts.
    if (cfg.monitoring.enabled) {
      component = "monitoring";
      changes.push(...(await monitoringUp(cfg, startOne, restarted)));
      progress(
        "monitoring",
        `Prometheus http://${cfg.monitoring.address}:${cfg.monitoring.prometheusPort}/, Alertmanager http://${cfg.monitoring.address}:${cfg.monitoring.alertmanagerPort}/`,
      );
    }

    const health = assessCluster(cfg, await clusterView(cfg));
    changes.push(...(await logRotatorUp(cfg, startOne))); // every log capped (scripts/lib/logrotate.ts)
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
