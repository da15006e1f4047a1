/** The monitoring processes: their specs and listeners, their files and login role, up and down (hooks in scripts/lib/native.ts). */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { MONITORING_PACKAGES } from "../setup";
import { run } from "../exec";
import { writeIfChanged } from "../render";
import { ensureDirNoFollow, writeFileNoFollow } from "../safe-fs";
import { etcdTlsFiles } from "../etcd-tls";
import { nativeEtcdTlsDir } from "../stack-files";
import type { ProcSpec } from "../procs";
import {
  MONITOR_ROLE,
  monitoringFiles,
  monitoringOsUser,
  monitoringOwner,
  pgbouncerExporterPort,
  relayPort,
  renderMonitoring,
} from "./files";
import { writeTlsExpiryTextfile } from "./textfile";
import {
  monitoringUiFiles,
  monitoringUiPort,
  monitoringUiUrl,
  reloadNginx,
  removeMonitoringUi,
  UI_USER,
  writeMonitoringUi,
} from "./ui";

/** The relay's process: only when BACKUP_ALERT_COMMAND is set. */
export function relaySpec(cfg: Config): ProcSpec {
  return {
    name: "alert-relay",
    cmd: [process.execPath, join(cfg.rootDir, "scripts", "alert-relay.ts"), "--stack", cfg.stack],
    // the trailing NUL of the command line reads as a space: stack "a" never matches stack "ab"
    marker: `alert-relay.ts --stack ${cfg.stack} `,
    pidFile: join(cfg.stateDir, "pids", "alert-relay.pid"),
    logFile: join(cfg.logsDir, "alert-relay.log"),
    cwd: cfg.rootDir,
  };
}

/** The processes, in start order. */
export function monitoringSpecs(cfg: Config): ProcSpec[] {
  const mon = cfg.monitoring;
  const f = monitoringFiles(cfg);
  const asUser = monitoringOsUser(cfg);
  const pid = (n: string) => join(cfg.stateDir, "pids", `${n}.pid`);
  const log = (n: string) => join(cfg.logsDir, `${n}.log`);
  const listen = (port: number) => `--web.listen-address=${mon.address}:${port}`;
  return [
    {
      name: "node-exporter",
      cmd: [
        "prometheus-node-exporter",
        listen(mon.nodeExporterPort),
        `--collector.textfile.directory=${f.textfile}`,
        "--no-collector.systemd",
      ],
      marker: f.textfile,
      pidFile: pid("node-exporter"),
      logFile: log("node-exporter"),
      asUser,
    },
    // One per member, on its own member's Postgres (postgres_exporter 0.11 takes one URI each).
    ...cfg.members.map((m, i) => ({
      name: `postgres-exporter-${m.name}`,
      cmd: ["prometheus-postgres-exporter", listen(mon.postgresExporterPort + i), "--log.level=warn"],
      marker: `${mon.address}:${mon.postgresExporterPort + i}`,
      pidFile: pid(`postgres-exporter-${m.name}`),
      logFile: log(`postgres-exporter-${m.name}`),
      asUser,
      // The password is read from a file: never in argv or the environment.
      env: {
        DATA_SOURCE_URI: `${m.address}:${m.pgPort}/postgres?sslmode=disable`,
        DATA_SOURCE_USER: MONITOR_ROLE,
        DATA_SOURCE_PASS_FILE: f.postgresPassword,
      },
    })),
    {
      name: "pgbouncer-exporter",
      cmd: [process.execPath, join(cfg.rootDir, "scripts", "pool-exporter.ts"), "--stack", cfg.stack],
      // the trailing NUL of the command line reads as a space: stack "a" never matches stack "ab"
      marker: `pool-exporter.ts --stack ${cfg.stack} `,
      pidFile: pid("pgbouncer-exporter"),
      logFile: log("pgbouncer-exporter"),
      cwd: cfg.rootDir,
    },
    {
      name: "alertmanager",
      cmd: [
        "prometheus-alertmanager",
        `--config.file=${f.alertmanagerConfig}`,
        `--storage.path=${f.alertmanagerData}`,
        listen(mon.alertmanagerPort),
        "--cluster.listen-address=",
        "--data.retention=120h",
      ],
      marker: f.alertmanagerConfig,
      pidFile: pid("alertmanager"),
      logFile: log("alertmanager"),
      asUser,
    },
    {
      name: "prometheus",
      cmd: [
        "prometheus",
        `--config.file=${f.prometheusConfig}`,
        `--storage.tsdb.path=${f.prometheusData}`,
        listen(mon.prometheusPort),
        "--storage.tsdb.retention.time=15d",
        "--web.enable-lifecycle",
      ],
      marker: f.prometheusConfig,
      pidFile: pid("prometheus"),
      logFile: log("prometheus"),
      asUser,
    },
    ...(cfg.backup.alertCommand ? [relaySpec(cfg)] : []),
  ];
}

/** The one postgres_exporter (through HAProxy) of earlier versions: stopped when found. */
const legacyPostgresExporter = (cfg: Config): ProcSpec => ({
  name: "postgres-exporter",
  cmd: ["prometheus-postgres-exporter"],
  marker: `${cfg.monitoring.address}:${cfg.monitoring.postgresExporterPort}`,
  pidFile: join(cfg.stateDir, "pids", "postgres-exporter.pid"),
  logFile: join(cfg.logsDir, "postgres-exporter.log"),
});

/** The listeners, for the port check and the no-public-listener test. */
export function monitoringListeners(cfg: Config): { name: string; address: string; port: number }[] {
  const m = cfg.monitoring;
  return [
    { name: "node-exporter", address: m.address, port: m.nodeExporterPort },
    ...cfg.members.map((mb, i) => ({
      name: `postgres-exporter-${mb.name}`,
      address: m.address,
      port: m.postgresExporterPort + i,
    })),
    { name: "pgbouncer-exporter", address: m.address, port: pgbouncerExporterPort(cfg) },
    { name: "alertmanager", address: m.address, port: m.alertmanagerPort },
    { name: "prometheus", address: m.address, port: m.prometheusPort },
    ...(cfg.backup.alertCommand ? [{ name: "alert-relay", address: m.address, port: relayPort(cfg) }] : []),
    { name: "prometheus-ui (nginx)", address: m.address, port: monitoringUiPort(cfg) },
  ];
}

/** The mount point of each member's data dir (`stat -c %m`). */
export async function dataMountpoints(cfg: Config): Promise<string[]> {
  const out: string[] = [];
  for (const m of cfg.members) {
    const probe = existsSync(m.dataDir) ? m.dataDir : cfg.memberRoot;
    const r = await run(["stat", "-c", "%m", probe], { nothrow: true });
    out.push(r.code === 0 ? r.stdout.trim() : "/");
  }
  return [...new Set(out)];
}

/**
 * Write every monitoring file; returns the names of processes whose config changed.
 * The monitor role's password is generated once into postgres.pass.
 */
export async function writeMonitoringFiles(cfg: Config): Promise<Set<string>> {
  const f = monitoringFiles(cfg);
  const owner = monitoringOwner(cfg);
  const ids = owner ? { uid: owner.uid, gid: owner.gid } : {};
  ensureDirNoFollow(f.home, 0o755);
  ensureDirNoFollow(f.textfile, 0o755);
  ensureDirNoFollow(f.prometheusData, 0o700, owner);
  ensureDirNoFollow(f.alertmanagerData, 0o700, owner);
  const changed = new Set<string>();
  const r = renderMonitoring(cfg, await dataMountpoints(cfg), f);
  if (writeIfChanged(f.prometheusConfig, r.prometheus, { mode: 0o644, ...ids })) changed.add("prometheus");
  if (writeIfChanged(f.rules, r.rules, { mode: 0o644, ...ids })) changed.add("prometheus");
  // It may hold a webhook URL with a token in it.
  if (writeIfChanged(f.alertmanagerConfig, r.alertmanager, { mode: 0o600, ...ids })) changed.add("alertmanager");
  const tls = etcdTlsFiles(nativeEtcdTlsDir(cfg));
  let tlsChanged = writeFileNoFollow(f.etcdCa, readFileSync(tls.ca), { mode: 0o644, owner });
  tlsChanged = writeFileNoFollow(f.etcdCert, readFileSync(tls.client.cert), { mode: 0o644, owner }) || tlsChanged;
  tlsChanged = writeFileNoFollow(f.etcdKey, readFileSync(tls.client.key), { mode: 0o600, owner }) || tlsChanged;
  if (tlsChanged) changed.add("prometheus");
  if (writeFileNoFollow(f.haproxyPassword, cfg.secrets.HAPROXY_STATS_PASSWORD, { mode: 0o600, owner }))
    changed.add("prometheus");
  if (!existsSync(f.postgresPassword))
    writeFileNoFollow(f.postgresPassword, randomBytes(24).toString("base64url"), { mode: 0o600, owner });
  if (!existsSync(f.relayToken))
    writeFileNoFollow(f.relayToken, randomBytes(24).toString("base64url"), { mode: 0o600, owner });
  writeTlsExpiryTextfile(cfg);
  return changed;
}

export const monitorPassword = (cfg: Config) => readFileSync(monitoringFiles(cfg).postgresPassword, "utf8").trim();

/** The exporter's login role: pg_monitor, CONNECT on postgres, its password (as a SCRAM verifier) kept in step with postgres.pass. */
export async function ensureMonitorRole(cfg: Config): Promise<string[]> {
  const { connect, quoteIdent, quoteLiteral } = await import("../pg");
  const { scramVerifier } = await import("../scram");
  const changes: string[] = [];
  const c = await connect(cfg);
  try {
    const have = (await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [MONITOR_ROLE])).rowCount === 1;
    const verifier = quoteLiteral(scramVerifier(monitorPassword(cfg)));
    const least = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
    if (!have) {
      await c.query(`CREATE ROLE ${quoteIdent(MONITOR_ROLE)} LOGIN ${least} CONNECTION LIMIT 5 PASSWORD ${verifier}`);
      changes.push(`role ${MONITOR_ROLE}`);
    } else {
      await c.query(`ALTER ROLE ${quoteIdent(MONITOR_ROLE)} LOGIN ${least} PASSWORD ${verifier}`);
    }
    const member = (await c.query("SELECT pg_has_role($1, 'pg_monitor', 'MEMBER') AS ok", [MONITOR_ROLE])).rows[0]
      .ok as boolean;
    if (!member) {
      await c.query(`GRANT pg_monitor TO ${quoteIdent(MONITOR_ROLE)}`);
      changes.push(`grant pg_monitor to ${MONITOR_ROLE}`);
    }
    const canConnect = (await c.query("SELECT has_database_privilege($1, 'postgres', 'CONNECT') AS ok", [MONITOR_ROLE]))
      .rows[0].ok as boolean;
    if (!canConnect) await c.query(`GRANT CONNECT ON DATABASE postgres TO ${quoteIdent(MONITOR_ROLE)}`);
  } finally {
    await c.end().catch(() => {});
  }
  return changes;
}

export async function checkMonitoringBinaries(): Promise<void> {
  const { which } = await import("../exec");
  const missing: string[] = [];
  for (const [bin, pkg] of MONITORING_PACKAGES) if (!(await which(bin))) missing.push(`${bin} (package ${pkg})`);
  if (missing.length)
    throw new ToolkitError(
      "MISSING_BINARY",
      `MONITORING=true needs: ${missing.join(", ")}`,
      "run `make setup` (it installs them with apt when the stack says MONITORING=true), or set MONITORING=false",
    );
}

/** Every monitoring port a stopped process will bind must be free; name the holder otherwise. */
export async function checkMonitoringPorts(cfg: Config): Promise<void> {
  if (!cfg.monitoring.enabled) return;
  const { portFree, portHolder } = await import("../ports");
  const { runningPid } = await import("../procs");
  const specs = monitoringSpecs(cfg);
  for (const l of monitoringListeners(cfg)) {
    const spec = specs.find((s) => s.name === l.name);
    if (spec ? runningPid(spec) : existsSync(monitoringUiFiles(cfg).conf)) continue; // the UI is nginx's, already serving it
    if (l.port === cfg.monitoring.postgresExporterPort && runningPid(legacyPostgresExporter(cfg))) continue; // monitoringUp stops it first
    if (!(await portFree(l.address, l.port))) {
      throw new ToolkitError(
        "PORT_IN_USE",
        `${l.address}:${l.port} (${l.name}) is already in use by ${await portHolder(l.address, l.port)}`,
        `stop that process (Debian's own ${l.name} service?), or change the port in ${cfg.file}`,
      );
    }
  }
}

async function httpOk(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

/**
 * Start what is not running, restart what changed (Prometheus reloads its config on
 * SIGHUP), wait until each answers. Returns the changes for dev-up's summary.
 */
export async function monitoringUp(
  cfg: Config,
  startOne: (s: ProcSpec) => void,
  restarted: string[],
): Promise<string[]> {
  const { runningPid, startProc, stopProc } = await import("../procs");
  await checkMonitoringBinaries();
  const changed = await writeMonitoringFiles(cfg);
  const changes = await ensureMonitorRole(cfg);
  // The single exporter of earlier versions (through HAProxy) held the first member's port.
  await stopProc(legacyPostgresExporter(cfg), 10_000);
  const listener = new Map(monitoringListeners(cfg).map((l) => [l.name, `http://${l.address}:${l.port}`]));
  const path = (name: string) =>
    name === "alertmanager" || name === "prometheus" ? "/-/ready" : name === "alert-relay" ? "/healthz" : "/metrics";
  const ready = (name: string) => `${listener.get(name)}${path(name)}`;
  for (const spec of monitoringSpecs(cfg)) {
    const pid = runningPid(spec);
    if (!pid) startOne(spec);
    else if (changed.has(spec.name)) {
      if (spec.name === "prometheus") process.kill(pid, "SIGHUP");
      else {
        await stopProc(spec, 10_000);
        startProc(spec);
      }
      restarted.push(spec.name);
    }
  }
  for (const spec of monitoringSpecs(cfg)) {
    const deadline = Date.now() + 60_000;
    while (!(await httpOk(ready(spec.name)))) {
      if (!runningPid(spec))
        throw new ToolkitError("PROCESS_DIED", `${spec.name} exited during start-up`, `see ${spec.logFile}`);
      if (Date.now() > deadline)
        throw new ToolkitError(
          "MONITORING_NOT_READY",
          `${spec.name}: ${ready(spec.name)} did not answer within 60 s`,
          `see ${spec.logFile}`,
        );
      await Bun.sleep(250);
    }
  }
  if (await writeMonitoringUi(cfg)) {
    await reloadNginx(cfg);
    changes.push(
      `Prometheus UI behind nginx: ${monitoringUiUrl(cfg)} (user ${UI_USER}, password in ${monitoringUiFiles(cfg).password})`,
    );
  }
  return changes;
}

/** Stop every monitoring process that runs (whatever MONITORING or BACKUP_ALERT_COMMAND say now). */
export async function monitoringDown(cfg: Config, stop: (s: ProcSpec) => Promise<void>): Promise<void> {
  const specs = monitoringSpecs(cfg);
  if (!specs.some((s) => s.name === "alert-relay")) specs.push(relaySpec(cfg));
  for (const s of [...specs, legacyPostgresExporter(cfg)].reverse()) await stop(s);
  removeMonitoringUi(cfg);
}
