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
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { osUserIds } from "../exec";
import { readTemplate, renderTemplate } from "../render";
import type { Owner } from "../safe-fs";

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
  if (!ids)
    throw new ToolkitError(
      "NO_PROMETHEUS_USER",
      `OS user ${user} does not exist`,
      "install prometheus (its package creates the user) with `make setup`",
    );
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
export const mountpointRegex = (mounts: string[]) =>
  [...new Set(mounts)].map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");

export interface RenderedMonitoring {
  prometheus: string;
  rules: string;
  alertmanager: string;
}

/** Pure: the three files, for the given data mount points. */
export function renderMonitoring(cfg: Config, dataMounts: string[], files = monitoringFiles(cfg)): RenderedMonitoring {
  const mon = cfg.monitoring;
  const t = (rel: string) => readTemplate(cfg.rootDir, rel);
  const target = (addr: string, port: number, member: string) =>
    `      - targets: ["${addr}:${port}"]\n        labels:\n          member: ${member}`;
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
      POSTGRES_TARGETS: cfg.members.map((m, i) => target(mon.address, mon.postgresExporterPort + i, m.name)).join("\n"),
      PGBOUNCER_EXPORTER_PORT: pgbouncerExporterPort(cfg),
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
  if (cfg.backup.alertUrl)
    hooks.push(`      - url: ${JSON.stringify(cfg.backup.alertUrl)}\n        send_resolved: true`);
  // BACKUP_ALERT_COMMAND: Alertmanager cannot run a command; the toolkit's relay (scripts/alert-relay.ts) does, for a caller with the token.
  if (cfg.backup.alertCommand)
    hooks.push(
      `      - url: "http://${mon.address}:${relayPort(cfg)}/alert"\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials_file: ${files.relayToken}`,
    );
  const receivers = hooks.length ? [`    webhook_configs:\n${hooks.join("\n")}`] : [];
  const alertmanager = renderTemplate(
    t("monitoring/alertmanager.yml.tmpl"),
    {
      ...common,
      GROUP_WAIT: timings.groupWait,
      GROUP_INTERVAL: timings.groupInterval,
      REPEAT_INTERVAL: timings.repeatInterval,
      RECEIVER_CONFIGS:
        receivers.join("\n") || "    # no BACKUP_ALERT_URL: alerts stay in Alertmanager's API (make alerts)",
    },
    "monitoring/alertmanager.yml.tmpl",
  );
  return { prometheus, rules, alertmanager };
}

/** pgbouncer's exporter: 9127 (its usual port) on a dev stack, i.e. POSTGRES_EXPORTER_PORT - 60. */
export const pgbouncerExporterPort = (cfg: Config) => cfg.monitoring.postgresExporterPort - 60;

/** The relay that runs BACKUP_ALERT_COMMAND for Alertmanager: beside Alertmanager (whose gossip port is off). */
export const relayPort = (cfg: Config) => cfg.monitoring.alertmanagerPort + 1;
