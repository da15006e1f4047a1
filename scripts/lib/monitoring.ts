/**
 * Monitoring (MONITORING=true): Prometheus, Alertmanager, postgres_exporter and
 * node_exporter from Debian's packages, run natively beside the stack, each
 * listening on the stack's address only (HAPROXY_ADDRESS). As root they run as
 * Debian's `prometheus` user. Their files live in <member root>/monitoring
 * (reachable by service users even when the checkout is private):
 *   prometheus.yml, alerts.yml, alertmanager.yml   rendered from monitoring/*.tmpl
 *   etcd-ca.crt, etcd-client.{crt,key}             Prometheus's copy of the etcd client pair (mTLS)
 *   haproxy-stats.pass, postgres.pass              scrape passwords (0600, prometheus's)
 *   textfile/*.prom                                what the toolkit knows (backups, drills, certificates)
 *   prometheus-data/, alertmanager-data/
 */
import { X509Certificate, randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { MONITORING_PACKAGES } from "./setup";
import { osUserIds, run } from "./exec";
import { readTemplate, renderTemplate, writeIfChanged } from "./render";
import { ensureDirNoFollow, writeFileNoFollow, type Owner } from "./safe-fs";
import { etcdTlsFiles } from "./etcd-tls";
import { nativeEtcdTlsDir } from "./stack-files";
import type { ProcSpec } from "./procs";

/** The login role postgres_exporter uses: pg_monitor's rights, nothing else. */
export const MONITOR_ROLE = "pgplatform_monitor";

export const monitoringHome = (cfg: Config) => join(cfg.memberRoot, "monitoring");
export const textfileDir = (cfg: Config) => join(monitoringHome(cfg), "textfile");

export function monitoringFiles(cfg: Config) {
  const home = monitoringHome(cfg);
  return {
    home,
    prometheusConfig: join(home, "prometheus.yml"),
    rules: join(home, "alerts.yml"),
    alertmanagerConfig: join(home, "alertmanager.yml"),
    etcdCa: join(home, "etcd-ca.crt"),
    etcdCert: join(home, "etcd-client.crt"),
    etcdKey: join(home, "etcd-client.key"),
    haproxyPassword: join(home, "haproxy-stats.pass"),
    postgresPassword: join(home, "postgres.pass"),
    relayToken: join(home, "relay.token"),
    prometheusData: join(home, "prometheus-data"),
    alertmanagerData: join(home, "alertmanager-data"),
    textfile: textfileDir(cfg),
  };
}

/** As root the monitoring processes run as Debian's `prometheus` user (its package creates it). */
export const monitoringOsUser = (cfg: Config) => (cfg.pgOsUser ? "prometheus" : undefined);

export function monitoringOwner(cfg: Config): Owner | undefined {
  const user = monitoringOsUser(cfg);
  if (!user) return undefined;
  const ids = osUserIds(user);
  if (!ids) throw new ToolkitError("NO_PROMETHEUS_USER", `OS user ${user} does not exist`, "install prometheus (its package creates the user) with `make setup`");
  return ids;
}


const dur = (s: number) => (s % 60 === 0 ? `${s / 60}m` : `${s}s`);

/** Alertmanager's timings from the scrape interval: short on a test stack, calm on a real one. */
export function alertTimings(intervalSeconds: number) {
  return {
    groupWait: dur(Math.min(30, 2 * intervalSeconds)),
    groupInterval: dur(Math.min(300, 20 * intervalSeconds)),
    repeatInterval: "4h",
  };
}

/** A regex matching exactly the given mount points (Prometheus anchors label regexes). */
export const mountpointRegex = (mounts: string[]) => [...new Set(mounts)].map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");

export interface RenderedMonitoring {
  prometheus: string;
  rules: string;
  alertmanager: string;
}

/** Pure: the three files, for the given data mount points. */
export function renderMonitoring(cfg: Config, dataMounts: string[], files = monitoringFiles(cfg)): RenderedMonitoring {
  const mon = cfg.monitoring;
  const t = (rel: string) => readTemplate(cfg.rootDir, rel);
  const target = (addr: string, port: number, member: string) => `      - targets: ["${addr}:${port}"]\n        labels:\n          member: ${member}`;
  const common = {
    CLUSTER_NAME: cfg.clusterName,
    STACK: cfg.stack,
    MONITORING_ADDRESS: mon.address,
    PROMETHEUS_PORT: mon.prometheusPort,
    ALERTMANAGER_PORT: mon.alertmanagerPort,
    POSTGRES_EXPORTER_PORT: mon.postgresExporterPort,
    NODE_EXPORTER_PORT: mon.nodeExporterPort,
    HAPROXY_ADDRESS: cfg.haproxy.address,
    HAPROXY_STATS_PORT: cfg.haproxy.statsPort,
  };
  const prometheus = renderTemplate(
    t("monitoring/prometheus.yml.tmpl"),
    {
      ...common,
      INTERVAL: dur(mon.intervalSeconds),
      SCRAPE_TIMEOUT: dur(Math.min(10, mon.intervalSeconds)),
      RULES_FILE: files.rules,
      PATRONI_TARGETS: cfg.members.map((m) => target(m.address, m.restPort, m.name)).join("\n"),
      ETCD_TARGETS: cfg.members.map((m) => target(m.address, m.etcdClientPort, m.etcdName)).join("\n"),
      ETCD_CA_FILE: files.etcdCa,
      ETCD_CERT_FILE: files.etcdCert,
      ETCD_KEY_FILE: files.etcdKey,
      HAPROXY_PASSWORD_FILE: files.haproxyPassword,
    },
    "monitoring/prometheus.yml.tmpl",
  );
  const rules = renderTemplate(
    t("monitoring/alerts.yml.tmpl"),
    {
      ...common,
      MAX_LAG_BYTES: cfg.timing.maximumLagOnFailover,
      LAG_WARN_BYTES: Math.floor(cfg.timing.maximumLagOnFailover / 2),
      SYNC_MODE: cfg.timing.synchronousMode ? 1 : 0,
      DATA_MOUNTPOINTS: mountpointRegex(dataMounts),
    },
    "monitoring/alerts.yml.tmpl",
  );
  const timings = alertTimings(mon.intervalSeconds);
  const hooks: string[] = [];
  if (cfg.backup.alertUrl) hooks.push(`      - url: ${JSON.stringify(cfg.backup.alertUrl)}\n        send_resolved: true`);
  // BACKUP_ALERT_COMMAND: Alertmanager cannot run a command; the toolkit's relay (scripts/alert-relay.ts) does, for a caller with the token.
  if (cfg.backup.alertCommand) hooks.push(`      - url: "http://${mon.address}:${relayPort(cfg)}/alert"\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials_file: ${files.relayToken}`);
  const receivers = hooks.length ? [`    webhook_configs:\n${hooks.join("\n")}`] : [];
  const alertmanager = renderTemplate(
    t("monitoring/alertmanager.yml.tmpl"),
    { ...common, GROUP_WAIT: timings.groupWait, GROUP_INTERVAL: timings.groupInterval, REPEAT_INTERVAL: timings.repeatInterval, RECEIVER_CONFIGS: receivers.join("\n") || "    # no BACKUP_ALERT_URL: alerts stay in Alertmanager's API (make alerts)" },
    "monitoring/alertmanager.yml.tmpl",
  );
  return { prometheus, rules, alertmanager };
}

/** The relay that runs BACKUP_ALERT_COMMAND for Alertmanager: beside Alertmanager (whose gossip port is off). */
export const relayPort = (cfg: Config) => cfg.monitoring.alertmanagerPort + 1;

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
  // Through HAProxy's read-write port: always the primary, where WAL is archived and writes connect.
  // (postgres_exporter 0.11 takes one URI here; replicas' connections are not watched.)
  const pgUri = `${cfg.haproxy.address}:${cfg.haproxy.rwPort}/postgres?sslmode=disable`;
  return [
    { name: "node-exporter", cmd: ["prometheus-node-exporter", listen(mon.nodeExporterPort), `--collector.textfile.directory=${f.textfile}`], marker: f.textfile, pidFile: pid("node-exporter"), logFile: log("node-exporter"), asUser },
    {
      name: "postgres-exporter",
      cmd: ["prometheus-postgres-exporter", listen(mon.postgresExporterPort), "--log.level=warn"],
      marker: `${mon.address}:${mon.postgresExporterPort}`,
      pidFile: pid("postgres-exporter"),
      logFile: log("postgres-exporter"),
      asUser,
      // The password is read from a file: never in argv or the environment.
      env: { DATA_SOURCE_URI: pgUri, DATA_SOURCE_USER: MONITOR_ROLE, DATA_SOURCE_PASS_FILE: f.postgresPassword },
    },
    {
      name: "alertmanager",
      cmd: ["prometheus-alertmanager", `--config.file=${f.alertmanagerConfig}`, `--storage.path=${f.alertmanagerData}`, listen(mon.alertmanagerPort), "--cluster.listen-address=", "--data.retention=120h"],
      marker: f.alertmanagerConfig,
      pidFile: pid("alertmanager"),
      logFile: log("alertmanager"),
      asUser,
    },
    {
      name: "prometheus",
      cmd: ["prometheus", `--config.file=${f.prometheusConfig}`, `--storage.tsdb.path=${f.prometheusData}`, listen(mon.prometheusPort), "--storage.tsdb.retention.time=15d", "--web.enable-lifecycle"],
      marker: f.prometheusConfig,
      pidFile: pid("prometheus"),
      logFile: log("prometheus"),
      asUser,
    },
    ...(cfg.backup.alertCommand ? [relaySpec(cfg)] : []),
  ];
}

/** The listeners, for the port check and the no-public-listener test. */
export function monitoringListeners(cfg: Config): { name: string; address: string; port: number }[] {
  const m = cfg.monitoring;
  return [
    { name: "node-exporter", address: m.address, port: m.nodeExporterPort },
    { name: "postgres-exporter", address: m.address, port: m.postgresExporterPort },
    { name: "alertmanager", address: m.address, port: m.alertmanagerPort },
    { name: "prometheus", address: m.address, port: m.prometheusPort },
    ...(cfg.backup.alertCommand ? [{ name: "alert-relay", address: m.address, port: relayPort(cfg) }] : []),
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
  if (writeFileNoFollow(f.haproxyPassword, cfg.secrets.HAPROXY_STATS_PASSWORD, { mode: 0o600, owner })) changed.add("prometheus");
  if (!existsSync(f.postgresPassword)) writeFileNoFollow(f.postgresPassword, randomBytes(24).toString("base64url"), { mode: 0o600, owner });
  if (!existsSync(f.relayToken)) writeFileNoFollow(f.relayToken, randomBytes(24).toString("base64url"), { mode: 0o600, owner });
  writeTlsExpiryTextfile(cfg);
  return changed;
}

export const monitorPassword = (cfg: Config) => readFileSync(monitoringFiles(cfg).postgresPassword, "utf8").trim();

/** The exporter's login role: pg_monitor, CONNECT on postgres, its password (as a SCRAM verifier) kept in step with postgres.pass. */
export async function ensureMonitorRole(cfg: Config): Promise<string[]> {
  const { connect, quoteIdent, quoteLiteral } = await import("./pg");
  const { scramVerifier } = await import("./scram");
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
    const member = (await c.query("SELECT pg_has_role($1, 'pg_monitor', 'MEMBER') AS ok", [MONITOR_ROLE])).rows[0].ok as boolean;
    if (!member) {
      await c.query(`GRANT pg_monitor TO ${quoteIdent(MONITOR_ROLE)}`);
      changes.push(`grant pg_monitor to ${MONITOR_ROLE}`);
    }
    const canConnect = (await c.query("SELECT has_database_privilege($1, 'postgres', 'CONNECT') AS ok", [MONITOR_ROLE])).rows[0].ok as boolean;
    if (!canConnect) await c.query(`GRANT CONNECT ON DATABASE postgres TO ${quoteIdent(MONITOR_ROLE)}`);
  } finally {
    await c.end().catch(() => {});
  }
  return changes;
}

// --- the toolkit's textfile -------------------------------------------------

/** Metric names the toolkit writes into node_exporter's textfile dir (the alert rules read them). */
export const TEXTFILE_METRICS = {
  backupLastSuccess: "pgplatform_backup_last_success_timestamp_seconds",
  backupLastSize: "pgplatform_backup_last_size_bytes",
  verificationLast: "pgplatform_backup_last_verification_timestamp_seconds",
  verificationSuccess: "pgplatform_backup_last_verification_success",
  lastVerified: "pgplatform_backup_last_verified_timestamp_seconds",
  drillLast: "pgplatform_drill_last_timestamp_seconds",
  drillRto: "pgplatform_drill_rto_seconds",
  certExpiry: "pgplatform_tls_cert_expiry_timestamp_seconds",
} as const;

export interface Sample {
  name: string;
  help: string;
  labels?: Record<string, string>;
  value: number;
}

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

/** Pure: Prometheus's text format, one HELP/TYPE per metric name. */
export function formatSamples(samples: Sample[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const s of samples) {
    if (!seen.has(s.name)) {
      out.push(`# HELP ${s.name} ${s.help}`, `# TYPE ${s.name} gauge`);
      seen.add(s.name);
    }
    const labels = s.labels && Object.keys(s.labels).length ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}` : "";
    out.push(`${s.name}${labels} ${s.value}`);
  }
  return out.join("\n") + "\n";
}

/** Parse one of our own .prom files back (to carry values a later write does not change). */
export function readSamples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-z_]+(?:\{[^}]*\})?) (\S+)$/);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/**
 * Write <textfile dir>/<name>.prom atomically (node_exporter must never read half a file).
 * A stack without monitoring has no textfile dir: nothing is written, nothing fails.
 */
export function writeTextfile(cfg: Config, name: string, samples: Sample[]): string | undefined {
  const dir = textfileDir(cfg);
  if (!existsSync(dir)) return undefined;
  const path = join(dir, `${name}.prom`);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileNoFollow(tmp, formatSamples(samples), { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}

function previous(cfg: Config, name: string): Map<string, number> {
  const path = join(textfileDir(cfg), `${name}.prom`);
  try {
    return readSamples(readFileSync(path, "utf8"));
  } catch {
    return new Map();
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const M = TEXTFILE_METRICS;

/** After a successful backup: its time and size. */
export function recordBackup(cfg: Config, sizeBytes: number, at = nowSeconds()): string | undefined {
  return writeTextfile(cfg, "pgplatform_backup", [
    { name: M.backupLastSuccess, help: "Unix time of the last successful make backup.", value: at },
    { name: M.backupLastSize, help: "Size in bytes of the last successful backup.", value: sizeBytes },
  ]);
}

/** After a backup verification: pass or fail, and the time of the last one that passed. */
export function recordVerification(cfg: Config, ok: boolean, at = nowSeconds()): string | undefined {
  const lastOk = ok ? at : previous(cfg, "pgplatform_verify").get(M.lastVerified);
  return writeTextfile(cfg, "pgplatform_verify", [
    { name: M.verificationLast, help: "Unix time of the last backup verification.", value: at },
    { name: M.verificationSuccess, help: "1 if the last backup verification passed, 0 if it failed.", value: ok ? 1 : 0 },
    ...(lastOk !== undefined ? [{ name: M.lastVerified, help: "Unix time of the last backup verification that passed.", value: lastOk }] : []),
  ]);
}

/** After a failover drill: its measured recovery time. */
export function recordDrill(cfg: Config, rtoSeconds: number, at = nowSeconds()): string | undefined {
  return writeTextfile(cfg, "pgplatform_drill", [
    { name: M.drillLast, help: "Unix time of the last failover drill.", value: at },
    { name: M.drillRto, help: "Seconds the last failover drill took until writes succeeded again.", value: rtoSeconds },
  ]);
}

/** Expiry of every certificate the toolkit made or knows: etcd's CA, members and client; client bundles' sites. */
export function certificateFiles(cfg: Config): string[] {
  const tls = etcdTlsFiles(nativeEtcdTlsDir(cfg));
  const files = [tls.ca, tls.client.cert, ...cfg.members.map((m) => tls.member(m).cert)];
  const clients = join(cfg.rootDir, "clients");
  if (existsSync(clients)) {
    for (const c of readdirSync(clients)) {
      const dir = join(clients, c, ".tls");
      if (existsSync(dir)) for (const f of readdirSync(dir)) if (f.endsWith(".crt")) files.push(join(dir, f));
    }
  }
  return files.filter((f) => existsSync(f));
}

export function writeTlsExpiryTextfile(cfg: Config): string | undefined {
  const samples: Sample[] = [];
  for (const file of certificateFiles(cfg)) {
    try {
      const cert = new X509Certificate(readFileSync(file));
      samples.push({ name: M.certExpiry, help: "Unix time when the certificate expires.", labels: { file }, value: Math.floor(new Date(cert.validTo).getTime() / 1000) });
    } catch {
      // not a certificate: skipped
    }
  }
  return writeTextfile(cfg, "pgplatform_tls", samples);
}

// --- up and down (hooks in scripts/lib/native.ts) ---------------------------

export async function checkMonitoringBinaries(): Promise<void> {
  const { which } = await import("./exec");
  const missing: string[] = [];
  for (const [bin, pkg] of MONITORING_PACKAGES) if (!(await which(bin))) missing.push(`${bin} (package ${pkg})`);
  if (missing.length) throw new ToolkitError("MISSING_BINARY", `MONITORING=true needs: ${missing.join(", ")}`, "run `make setup` (it installs them with apt when the stack says MONITORING=true), or set MONITORING=false");
}

/** Every monitoring port a stopped process will bind must be free; name the holder otherwise. */
export async function checkMonitoringPorts(cfg: Config): Promise<void> {
  if (!cfg.monitoring.enabled) return;
  const { portFree, portHolder } = await import("./ports");
  const { runningPid } = await import("./procs");
  const specs = monitoringSpecs(cfg);
  for (const l of monitoringListeners(cfg)) {
    if (runningPid(specs.find((s) => s.name === l.name)!)) continue;
    if (!(await portFree(l.address, l.port))) {
      throw new ToolkitError("PORT_IN_USE", `${l.address}:${l.port} (${l.name}) is already in use by ${await portHolder(l.address, l.port)}`, `stop that process (Debian's own ${l.name} service?), or change the port in ${cfg.file}`);
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
export async function monitoringUp(cfg: Config, startOne: (s: ProcSpec) => void, restarted: string[]): Promise<string[]> {
  const { runningPid, startProc, stopProc } = await import("./procs");
  await checkMonitoringBinaries();
  const changed = await writeMonitoringFiles(cfg);
  const changes = await ensureMonitorRole(cfg);
  const mon = cfg.monitoring;
  const ready: Record<string, string> = {
    "node-exporter": `http://${mon.address}:${mon.nodeExporterPort}/metrics`,
    "postgres-exporter": `http://${mon.address}:${mon.postgresExporterPort}/metrics`,
    alertmanager: `http://${mon.address}:${mon.alertmanagerPort}/-/ready`,
    prometheus: `http://${mon.address}:${mon.prometheusPort}/-/ready`,
    "alert-relay": `http://${mon.address}:${relayPort(cfg)}/healthz`,
  };
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
    while (!(await httpOk(ready[spec.name]!))) {
      if (!runningPid(spec)) throw new ToolkitError("PROCESS_DIED", `${spec.name} exited during start-up`, `see ${spec.logFile}`);
      if (Date.now() > deadline) throw new ToolkitError("MONITORING_NOT_READY", `${spec.name}: ${ready[spec.name]} did not answer within 60 s`, `see ${spec.logFile}`);
      await Bun.sleep(250);
    }
  }
  return changes;
}

/** Stop every monitoring process that runs (whatever MONITORING or BACKUP_ALERT_COMMAND say now). */
export async function monitoringDown(cfg: Config, stop: (s: ProcSpec) => Promise<void>): Promise<void> {
  const specs = monitoringSpecs(cfg);
  if (!specs.some((s) => s.name === "alert-relay")) specs.push(relaySpec(cfg));
  for (const s of [...specs].reverse()) await stop(s);
}

// --- the relay: Alertmanager's webhook -> BACKUP_ALERT_COMMAND ---------------------

interface AmWebhook {
  status: string;
  alerts: { status: string; labels: Record<string, string>; annotations?: Record<string, string>; startsAt?: string }[];
}

/** Pure: the message the command gets on stdin, one paragraph per alert. */
export function relayMessage(stack: string, body: AmWebhook): string {
  const lines = [`pgplatform alerts ${body.status.toUpperCase()} (stack ${stack}):`];
  for (const a of body.alerts) {
    const where = Object.entries(a.labels).filter(([k]) => !["alertname", "severity", "job", "instance"].includes(k)).map(([k, v]) => `${k}=${v}`).join(" ");
    lines.push(`- [${a.status}] ${a.labels.alertname ?? "?"} (${a.labels.severity ?? "-"}) ${where}`.trimEnd());
    if (a.annotations?.summary) lines.push(`  ${a.annotations.summary}`);
    if (a.annotations?.runbook) lines.push(`  runbook: ${a.annotations.runbook}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * The relay's request handler: POST /alert with the bearer token runs the command
 * (argv split on spaces, no shell) with the message on stdin; anything else is refused.
 */
export function relayHandler(stack: string, token: string, command: string, log: (line: string) => void = () => {}) {
  const { timingSafeEqual } = require("node:crypto") as typeof import("node:crypto");
  const want = Buffer.from(`Bearer ${token}`);
  return async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/healthz") return new Response("ok\n");
    if (req.method !== "POST" || path !== "/alert") return new Response("not found\n", { status: 404 });
    const got = Buffer.from(req.headers.get("authorization") ?? "");
    if (got.length !== want.length || !timingSafeEqual(got, want)) return new Response("unauthorized\n", { status: 401 });
    let body: AmWebhook;
    try {
      body = (await req.json()) as AmWebhook;
      if (!Array.isArray(body.alerts)) throw new Error("no alerts");
    } catch {
      return new Response("bad request\n", { status: 400 });
    }
    const { alertArgv } = await import("./backup/alert");
    const argv = alertArgv(command);
    const r = await run(argv, { input: relayMessage(stack, body), nothrow: true, timeoutMs: 60_000, env: { ALERT_STATUS: body.status, ALERT_STACK: stack } });
    log(`${body.status} ${body.alerts.map((a) => a.labels.alertname).join(",")}: ${argv[0]} exit ${r.code}`);
    return new Response(r.code === 0 ? "ok\n" : "command failed\n", { status: r.code === 0 ? 200 : 502 });
  };
}

// --- make alerts / make status ------------------------------------------------

export interface RuleState {
  group: string;
  alert: string;
  /** inactive, pending or firing (Prometheus's words) */
  state: string;
  /** the labels of each pending or firing instance, e.g. member=pg2 */
  active: { state: string; labels: Record<string, string>; since: string }[];
  runbook: string;
}

const COMMON_LABELS = new Set(["alertname", "severity", "cluster", "job", "instance"]);

/** Pure: Prometheus's /api/v1/rules answer as one row per alert rule. */
export function ruleStates(body: unknown): RuleState[] {
  type Api = { data: { groups: { name: string; rules: { type: string; name: string; state: string; annotations?: Record<string, string>; alerts?: { state: string; labels: Record<string, string>; activeAt: string }[] }[] }[] } };
  const out: RuleState[] = [];
  for (const g of (body as Api).data.groups) {
    for (const r of g.rules) {
      if (r.type !== "alerting") continue;
      out.push({
        group: g.name,
        alert: r.name,
        state: r.state,
        active: (r.alerts ?? []).map((a) => ({ state: a.state, labels: Object.fromEntries(Object.entries(a.labels).filter(([k]) => !COMMON_LABELS.has(k))), since: a.activeAt })),
        runbook: r.annotations?.runbook ?? "",
      });
    }
  }
  return out;
}

export const prometheusUrl = (cfg: Config) => `http://${cfg.monitoring.address}:${cfg.monitoring.prometheusPort}`;

/** Every rule and its state from the running Prometheus; a clear error when monitoring is off or down. */
export async function fetchRuleStates(cfg: Config): Promise<RuleState[]> {
  if (!cfg.monitoring.enabled) throw new ToolkitError("MONITORING_OFF", `MONITORING=false in ${cfg.file}`, `set MONITORING=true in ${cfg.file} and run \`make dev-up\``);
  let res: Response;
  try {
    res = await fetch(`${prometheusUrl(cfg)}/api/v1/rules`, { signal: AbortSignal.timeout(3000) });
  } catch (e) {
    throw new ToolkitError("PROMETHEUS_DOWN", `Prometheus at ${prometheusUrl(cfg)} does not answer (${(e as Error).message})`, "run `make dev-up` (it starts Prometheus when MONITORING=true), then `make logs SVC=prometheus`");
  }
  if (!res.ok) throw new ToolkitError("PROMETHEUS_ERROR", `Prometheus answered ${res.status} on /api/v1/rules`, "see `make logs SVC=prometheus`");
  return ruleStates(await res.json());
}

/** For make status: the firing alerts (name and distinguishing labels), or null when monitoring is off or unreachable. */
export async function firingAlerts(cfg: Config): Promise<string[] | null> {
  if (!cfg.monitoring.enabled) return null;
  try {
    const rules = await fetchRuleStates(cfg);
    return rules.flatMap((r) => r.active.filter((a) => a.state === "firing").map((a) => `${r.alert}${Object.keys(a.labels).length ? ` (${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(", ")})` : ""}`));
  } catch {
    return null;
  }
}
