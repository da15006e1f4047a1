/**
 * Monitoring in the docker runtime (MONITORING=true): Prometheus and Alertmanager
 * with the configs the native runtime renders from monitoring/*.tmpl (the same
 * templates and rules; only the scrape targets are the compose services' names,
 * and the file paths those inside the containers), plus Grafana (not in Debian,
 * so only here) with a provisioned datasource (this Prometheus) and the
 * dashboards in monitoring/grafana/. Everything goes into a generated override,
 * <rendered-docker>/compose.monitoring.yml, passed with -f like compose.apis.yml
 * (scripts/lib/compose-files.ts), and <rendered-docker>/monitoring/.
 *
 * postgres_exporter runs once per member (upstream's image), logging in as
 * pgplatform_monitor with the native runtime's password file. Not in the docker
 * runtime: node_exporter and the pgbouncer exporter (their jobs are left out, so
 * their alerts stay quiet and the pool, disk and backup panels empty; backups do
 * not run under docker anyway), and the alert relay for BACKUP_ALERT_COMMAND
 * (BACKUP_ALERT_URL works).
 *
 * Listeners: each is published on the stack's monitoring address only (a public
 * one is refused, as natively). Grafana has its own login: user admin, password
 * GRAFANA_ADMIN_PASSWORD from the stack's secrets file, handed over as a file
 * (GF_SECURITY_ADMIN_PASSWORD__FILE), never in the container's environment.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import type { Config, Member } from "../config";
import { ToolkitError } from "../errors";
import { isRoot } from "../exec";
import { writeIfChanged } from "../render";
import { ensureOptionalSecret } from "../secrets";
import { MONITOR_ROLE, monitoringFiles, renderMonitoring } from "./files";
import { isPublicAddress } from "./ui";

/** Grafana's port: PROMETHEUS_PORT + 6 (dev 9096), beside the Prometheus UI's + 5. */
export const grafanaPort = (cfg: Config) => cfg.monitoring.prometheusPort + 6;
export const GRAFANA_USER = "admin";

/** Users of the upstream images: prom/* run as nobody; grafana/grafana as 472 (its Dockerfile's GF_UID). */
export const MONITORING_IMAGE_USERS = { prom: { uid: 65534, gid: 65534 }, grafana: { uid: 472, gid: 0 } } as const;

/** Where the files are inside the containers. */
export const IN_CONTAINER = {
  prometheusDir: "/etc/prometheus",
  alertmanagerDir: "/etc/alertmanager",
  /** GF_PATHS_PROVISIONING of the grafana/grafana image */
  grafanaProvisioning: "/etc/grafana/provisioning",
  grafanaDashboards: "/etc/grafana/dashboards",
  grafanaPasswordFile: "/run/secrets/grafana-admin-password",
};
const P = IN_CONTAINER.prometheusDir;

const exporterName = (m: Member) => `postgres-exporter-${m.name}`;
const EXPORTER_PASSWORD = "/run/secrets/postgres-exporter-password";

/** The jobs whose targets run in the docker runtime, at the compose services' names and container ports. */
function dockerTargets(cfg: Config): Record<string, { targets: string[]; labels?: Record<string, string> }[]> {
  return {
    patroni: cfg.members.map((m) => ({ targets: [`${m.name}:8008`], labels: { member: m.name } })),
    etcd: cfg.members.map((m) => ({ targets: [`${m.etcdName}:2379`], labels: { member: m.etcdName } })),
    haproxy: [{ targets: ["haproxy:7000"] }],
    postgres: cfg.members.map((m) => ({ targets: [`${exporterName(m)}:9187`], labels: { member: m.name } })),
  };
}

export interface DockerMonitoring {
  prometheus: string;
  rules: string;
  alertmanager: string;
}

/** Pure: the native templates rendered for the containers. */
export function renderDockerMonitoring(cfg: Config): DockerMonitoring {
  const files = {
    ...monitoringFiles(cfg),
    rules: `${P}/alerts.yml`,
    etcdCa: `${P}/etcd/ca.crt`,
    etcdCert: `${P}/etcd/client.crt`,
    etcdKey: `${P}/etcd/client.key`,
    haproxyPassword: `${P}/haproxy-stats.pass`,
  };
  // the relay for BACKUP_ALERT_COMMAND is a native process: only the webhook goes out from here
  const native = renderMonitoring({ ...cfg, backup: { ...cfg.backup, alertCommand: "" } }, ["/home/postgres"], files);
  const doc = YAML.parse(native.prometheus) as {
    alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    scrape_configs: { job_name: string; static_configs: unknown }[];
  };
  doc.alerting.alertmanagers = [{ static_configs: [{ targets: ["alertmanager:9093"] }] }];
  const targets = dockerTargets(cfg);
  doc.scrape_configs = doc.scrape_configs
    .filter((j) => targets[j.job_name])
    .map((j) => ({ ...j, static_configs: targets[j.job_name] }));
  const head =
    `# Prometheus for ${cfg.clusterName} in the docker runtime: monitoring/prometheus.yml.tmpl rendered as natively,\n` +
    "# scrape targets set to the compose services by scripts/lib/monitoring/compose.ts; do not edit.\n";
  return {
    prometheus: head + YAML.stringify(doc, { lineWidth: 0 }),
    rules: native.rules,
    alertmanager: native.alertmanager,
  };
}

/** Grafana's provisioning: the stack's Prometheus as the default datasource, and a file provider for the dashboards. */
export function grafanaProvisioning(cfg: Config): { datasources: string; dashboards: string } {
  const datasources = {
    apiVersion: 1,
    datasources: [
      {
        name: `Prometheus (${cfg.stack})`,
        uid: "prometheus",
        type: "prometheus",
        access: "proxy",
        url: "http://prometheus:9090",
        isDefault: true,
        editable: false,
        jsonData: { timeInterval: `${cfg.monitoring.intervalSeconds}s` },
      },
    ],
  };
  const dashboards = {
    apiVersion: 1,
    providers: [
      {
        name: "pgplatform",
        orgId: 1,
        folder: "pgplatform",
        type: "file",
        disableDeletion: true,
        allowUiUpdates: false,
        options: { path: IN_CONTAINER.grafanaDashboards, foldersFromFilesStructure: false },
      },
    ],
  };
  return { datasources: YAML.stringify(datasources), dashboards: YAML.stringify(dashboards) };
}

/** The committed dashboards (monitoring/grafana/*.json), by file name. */
export function grafanaDashboards(rootDir: string): Record<string, string> {
  const dir = join(rootDir, "monitoring", "grafana");
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => [f, readFileSync(join(dir, f), "utf8")]),
  );
}

/** The override: Prometheus, Alertmanager and Grafana, published on the monitoring address only. */
export function monitoringComposeYaml(cfg: Config, dir: string): string {
  const m = cfg.monitoring;
  const mon = join(dir, "monitoring");
  // prometheus-community/postgres_exporter: one per member, on that member's Postgres (as natively)
  const exporters = Object.fromEntries(
    cfg.members.map((mb) => [
      exporterName(mb),
      {
        image: "${IMAGE_POSTGRES_EXPORTER:-quay.io/prometheuscommunity/postgres-exporter:v0.15.0}",
        restart: "unless-stopped",
        networks: ["stack"],
        depends_on: [mb.name],
        environment: {
          DATA_SOURCE_URI: `${mb.name}:5432/postgres?sslmode=disable`,
          DATA_SOURCE_USER: MONITOR_ROLE,
          DATA_SOURCE_PASS_FILE: EXPORTER_PASSWORD,
        },
        volumes: [`${mon}/postgres-exporter/postgres.pass:${EXPORTER_PASSWORD}:ro`],
      },
    ]),
  );
  const services = {
    ...exporters,
    prometheus: {
      image: "${IMAGE_PROMETHEUS:-prom/prometheus:v2.53.3}",
      restart: "unless-stopped",
      networks: ["stack"],
      command: [`--config.file=${P}/prometheus.yml`, "--storage.tsdb.path=/prometheus", "--web.listen-address=:9090"],
      volumes: [`${mon}/prometheus:${P}:ro`, "prometheus-data:/prometheus"],
      ports: [`${m.address}:${m.prometheusPort}:9090`],
    },
    alertmanager: {
      image: "${IMAGE_ALERTMANAGER:-prom/alertmanager:v0.27.0}",
      restart: "unless-stopped",
      networks: ["stack"],
      // no gossip: one Alertmanager
      command: [
        `--config.file=${IN_CONTAINER.alertmanagerDir}/alertmanager.yml`,
        "--storage.path=/alertmanager",
        "--cluster.listen-address=",
      ],
      volumes: [`${mon}/alertmanager:${IN_CONTAINER.alertmanagerDir}:ro`, "alertmanager-data:/alertmanager"],
      ports: [`${m.address}:${m.alertmanagerPort}:9093`],
    },
    grafana: {
      image: "${IMAGE_GRAFANA:-grafana/grafana:11.3.1}",
      restart: "unless-stopped",
      networks: ["stack"],
      depends_on: ["prometheus"],
      environment: {
        GF_SECURITY_ADMIN_USER: GRAFANA_USER,
        GF_SECURITY_ADMIN_PASSWORD__FILE: IN_CONTAINER.grafanaPasswordFile,
        GF_USERS_ALLOW_SIGN_UP: "false",
        GF_AUTH_ANONYMOUS_ENABLED: "false",
        GF_ANALYTICS_REPORTING_ENABLED: "false",
        GF_ANALYTICS_CHECK_FOR_UPDATES: "false",
      },
      volumes: [
        `${mon}/grafana/provisioning:${IN_CONTAINER.grafanaProvisioning}:ro`,
        `${mon}/grafana/dashboards:${IN_CONTAINER.grafanaDashboards}:ro`,
        `${mon}/grafana/admin.pass:${IN_CONTAINER.grafanaPasswordFile}:ro`,
        "grafana-data:/var/lib/grafana",
      ],
      ports: [`${m.address}:${grafanaPort(cfg)}:3000`],
    },
  };
  return (
    "# Generated by scripts/lib/monitoring/compose.ts (MONITORING=true); do not edit. Passed after compose/dev.yml with -f.\n" +
    YAML.stringify(
      { services, volumes: { "prometheus-data": {}, "alertmanager-data": {}, "grafana-data": {} } },
      { lineWidth: 0, defaultStringType: "QUOTE_DOUBLE", defaultKeyType: "PLAIN" },
    )
  );
}

/**
 * Write the override and every file it mounts (MONITORING=true), or remove the override
 * (MONITORING=false: compose then runs none of it). Returns what changed.
 */
export function writeDockerMonitoring(cfg: Config, dir: string): string[] {
  const override = join(dir, "compose.monitoring.yml");
  if (!cfg.monitoring.enabled) {
    rmSync(override, { force: true });
    return [];
  }
  if (isPublicAddress(cfg.monitoring.address))
    throw new ToolkitError(
      "MONITORING_PUBLIC",
      `MONITORING=true would publish Prometheus, Alertmanager and Grafana on ${cfg.monitoring.address}, a public address (HAPROXY_ADDRESS in ${cfg.file})`,
      "use a loopback, private (10/8, 172.16/12, 192.168/16) or tailnet (100.64/10) address for HAPROXY_ADDRESS, or set MONITORING=false",
    );
  const mon = join(dir, "monitoring");
  const prom = isRoot() ? MONITORING_IMAGE_USERS.prom : {};
  const graf = isRoot() ? MONITORING_IMAGE_USERS.grafana : {};
  const r = renderDockerMonitoring(cfg);
  const g = grafanaProvisioning(cfg);
  const tls = join(dir, "tls");
  // the exporter's password: the native runtime's file (ensureMonitorRole sets the role's password from it)
  const nativePass = monitoringFiles(cfg).postgresPassword;
  if (!existsSync(nativePass)) writeIfChanged(nativePass, randomBytes(24).toString("base64url"), { mode: 0o600 });
  const files: [string, string, object][] = [
    ["postgres-exporter/postgres.pass", readFileSync(nativePass, "utf8").trim(), { mode: 0o600, ...prom }],
    ["prometheus/prometheus.yml", r.prometheus, {}],
    ["prometheus/alerts.yml", r.rules, {}],
    ["prometheus/haproxy-stats.pass", cfg.secrets.HAPROXY_STATS_PASSWORD, { mode: 0o600, ...prom }],
    ["prometheus/etcd/ca.crt", readFileSync(join(tls, "ca.crt"), "utf8"), {}],
    ["prometheus/etcd/client.crt", readFileSync(join(tls, "client.crt"), "utf8"), {}],
    ["prometheus/etcd/client.key", readFileSync(join(tls, "client.key"), "utf8"), { mode: 0o600, ...prom }],
    ["alertmanager/alertmanager.yml", r.alertmanager, {}],
    ["grafana/provisioning/datasources/prometheus.yml", g.datasources, {}],
    ["grafana/provisioning/dashboards/pgplatform.yml", g.dashboards, {}],
    ["grafana/admin.pass", ensureOptionalSecret(cfg.secretsFile, "GRAFANA_ADMIN_PASSWORD"), { mode: 0o600, ...graf }],
    ...Object.entries(grafanaDashboards(cfg.rootDir)).map(([f, t]): [string, string, object] => [
      `grafana/dashboards/${f}`,
      t,
      {},
    ]),
  ];
  const changed = files.filter(([p, text, opts]) => writeIfChanged(join(mon, p), text, opts)).map(([p]) => p);
  if (writeIfChanged(override, monitoringComposeYaml(cfg, dir))) changed.push("compose.monitoring.yml");
  return changed;
}
