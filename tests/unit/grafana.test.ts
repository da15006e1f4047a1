/**
 * Monitoring in the docker runtime (issue 16): Grafana's provisioning and dashboard, checked against
 * Grafana's documented paths (compose-facts.ts GRAFANA) and against the metric names our exporters,
 * textfile and rules produce (assembled from the source); Prometheus and Alertmanager with the native
 * templates' configs, checked by the real promtool and amtool.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { composeFileArgs } from "../../scripts/lib/compose-files";
import { validateCompose } from "../../scripts/lib/compose-schema";
import { run } from "../../scripts/lib/exec";
import { readSecrets } from "../../scripts/lib/secrets";
import {
  grafanaDashboards,
  grafanaPort,
  grafanaProvisioning,
  IN_CONTAINER,
  monitoringComposeYaml,
  renderDockerMonitoring,
  writeDockerMonitoring,
} from "../../scripts/lib/monitoring/compose";
import { monitoringFiles, renderMonitoring } from "../../scripts/lib/monitoring/files";
import { poolMetricsText } from "../../scripts/lib/monitoring/pool-metrics";
import { TEXTFILE_METRICS } from "../../scripts/lib/monitoring/textfile";
import * as F from "./compose-facts";
import { cfg, config, devEnv, envOf, render, rendered, root, type Service } from "./compose-render";

const DIR = "/state/rendered-docker";
const doc = render(monitoringComposeYaml(cfg, DIR), devEnv);
const grafana = doc.services.grafana!;
const dashboards = grafanaDashboards(root);

/** Mount target of the bind mount whose source ends with `suffix`. */
const mountOf = (s: Service, suffix: string) =>
  (s.volumes ?? []).map((v) => v.split(":")).find(([src]) => src!.endsWith(suffix))?.[1];

/** Every metric a PromQL expression reads: identifiers left once labels, ranges, grouping and functions are gone. */
const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
]);
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "")
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .filter((m) => !/^\s*\(/.test(bare.slice(m.index! + m[0].length)))
    .map((m) => m[0])
    .filter((n) => !KEYWORDS.has(n) && !/^\d/.test(n) && !/^(e|inf|nan)$/i.test(n));
}

/** What our exporters, textfile and rules produce, assembled from the source. */
function knownMetrics(): Set<string> {
  const rules = YAML.parse(renderMonitoring(cfg, ["/"]).rules) as { groups: { rules: { expr: string }[] }[] };
  const fromRules = rules.groups.flatMap((g) => g.rules.flatMap((r) => metricNames(String(r.expr))));
  const pool = poolMetricsText({
    databases: ["db"],
    pools: [
      {
        database: "db",
        user: "u",
        clientsActive: 1,
        clientsWaiting: 0,
        serversActive: 1,
        serversIdle: 0,
        serversUsed: 0,
        maxWaitS: 0,
        paused: false,
      } as never,
    ],
  });
  const fromPool = [...pool.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!);
  // `up`: Prometheus's own series for every target
  return new Set(["up", ...fromRules, ...Object.values(TEXTFILE_METRICS), ...fromPool]);
}

describe("the metric-name reader", () => {
  test("reads metrics, not functions, labels, ranges or grouping labels", () => {
    expect(
      metricNames(
        'sum by (member) (pg_stat_activity_count{job="postgres"}) / on(member) max(pg_settings_max_connections) and time() - x_y[5m]',
      ),
    ).toEqual(["pg_stat_activity_count", "pg_settings_max_connections", "x_y"]);
  });
});

describe("Grafana's dashboards query only metrics we export", () => {
  const known = knownMetrics();
  test("the list from the source has the exporters' and textfile's names", () => {
    for (const m of [
      "patroni_primary",
      "patroni_xlog_received_location",
      "pg_stat_activity_count",
      "pgbouncer_pools_client_waiting_connections",
      "pgplatform_backup_last_verified_timestamp_seconds",
      "etcd_server_has_leader",
    ])
      expect({ m, known: known.has(m) }).toEqual({ m, known: true });
  });
  for (const [file, text] of Object.entries(dashboards)) {
    const dash = JSON.parse(text) as {
      uid: string;
      panels: {
        title: string;
        datasource: { uid: string };
        targets: { expr: string; datasource: { uid: string } }[];
      }[];
    };
    test(`${file}: every query's metric names exist, on the provisioned datasource`, () => {
      const uid = (YAML.parse(grafanaProvisioning(cfg).datasources) as { datasources: { uid: string }[] })
        .datasources[0]!.uid;
      const unknown = dash.panels.flatMap((p) =>
        p.targets.flatMap((t) =>
          metricNames(t.expr)
            .filter((n) => !known.has(n))
            .map((n) => `${p.title}: ${n}`),
        ),
      );
      expect(unknown).toEqual([]);
      for (const p of dash.panels) expect({ p: p.title, uid: p.datasource.uid }).toEqual({ p: p.title, uid });
      expect(dash.panels.flatMap((p) => p.targets).length).toBeGreaterThanOrEqual(10);
    });
    test(`${file}: the panels the cluster needs (leader, lag, connections, pools, backups)`, () => {
      const all = dash.panels.flatMap((p) => p.targets.map((t) => t.expr)).join("\n");
      for (const m of [
        "patroni_primary",
        "patroni_xlog_received_location",
        "pg_stat_activity_count",
        "pgbouncer_pools_client_active_connections",
        "pgplatform_backup_last_success_timestamp_seconds",
      ])
        expect(all).toContain(m);
    });
  }
});

describe("Grafana's compose service matches its image's provisioning paths (F.GRAFANA)", () => {
  const prov = grafanaProvisioning(cfg);
  test("the provisioning files parse, each apiVersion 1, under datasources/ and dashboards/ of GF_PATHS_PROVISIONING", () => {
    const ds = YAML.parse(prov.datasources) as { apiVersion: number; datasources: { url: string; type: string }[] };
    const db = YAML.parse(prov.dashboards) as {
      apiVersion: number;
      providers: { type: string; options: { path: string } }[];
    };
    expect([ds.apiVersion, db.apiVersion]).toEqual([1, 1]);
    expect(mountOf(grafana, "/grafana/provisioning")).toBe(F.GRAFANA.provisioningPath);
    expect(db.providers[0]!.type).toBe("file");
    expect(mountOf(grafana, "/grafana/dashboards")).toBe(db.providers[0]!.options.path);
    // the datasource is this stack's Prometheus, at the port it listens on in the network
    expect(ds.datasources[0]).toMatchObject({
      type: "prometheus",
      url: `http://prometheus:${F.PROM_IMAGES.prometheusPort}`,
    });
    expect(doc.services.prometheus!.command).toContain(`--web.listen-address=:${F.PROM_IMAGES.prometheusPort}`);
  });
  test("the admin password reaches Grafana from the secrets file through GF_SECURITY_ADMIN_PASSWORD__FILE", () => {
    const e = envOf(grafana);
    expect(e.GF_SECURITY_ADMIN_PASSWORD).toBeUndefined();
    expect(mountOf(grafana, "/grafana/admin.pass")).toBe(e.GF_SECURITY_ADMIN_PASSWORD__FILE);
    const files: Record<string, string> = { [IN_CONTAINER.grafanaPasswordFile]: "grafana-pw-0123456789" };
    const after = F.GRAFANA.expandFileVars(e, (p) => files[p]!);
    expect(after.GF_SECURITY_ADMIN_PASSWORD).toBe("grafana-pw-0123456789");
    expect(() => F.GRAFANA.expandFileVars({ ...e, GF_SECURITY_ADMIN_PASSWORD: "x" }, () => "")).toThrow(/exclusive/);
  });
  test("Grafana, Prometheus and Alertmanager publish on the stack's monitoring address only", () => {
    const m = cfg.monitoring;
    expect(grafana.ports).toEqual([`${m.address}:${grafanaPort(cfg)}:${F.GRAFANA.port}`]);
    expect(doc.services.prometheus!.ports).toEqual([`${m.address}:${m.prometheusPort}:9090`]);
    expect(doc.services.alertmanager!.ports).toEqual([`${m.address}:${m.alertmanagerPort}:9093`]);
    const pub = config("\nHAPROXY_ADDRESS=203.0.113.5\n");
    expect(() => writeDockerMonitoring(pub, "/nonexistent")).toThrow(/public address/);
  });
  test("the override is valid Compose and pins its images", () => {
    expect(validateCompose(monitoringComposeYaml(cfg, DIR), devEnv)).toEqual([]);
    expect(doc.services.grafana!.image).toBe("grafana/grafana:11.3.1");
  });
});

describe("Prometheus and Alertmanager in docker: the native templates, targets at the compose services", () => {
  const r = renderDockerMonitoring(cfg);
  const prom = YAML.parse(r.prometheus) as {
    rule_files: string[];
    alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    scrape_configs: { job_name: string; static_configs: { targets: string[]; labels?: { member: string } }[] }[];
  };
  test("the rules are the native rules, byte for byte", () => {
    expect(r.rules).toBe(renderMonitoring(cfg, ["/home/postgres"], monitoringFiles(cfg)).rules);
  });
  test("targets: each Patroni member's REST API, each etcd member, HAProxy's stats listener, Alertmanager", () => {
    const restListen = (YAML.parse(rendered("pg1/patroni.yml")) as { restapi: { listen: string } }).restapi.listen;
    const job = (n: string) => prom.scrape_configs.find((j) => j.job_name === n)!.static_configs;
    expect(job("patroni")[0]).toEqual({ targets: [restListen], labels: { member: "pg1" } });
    expect(job("patroni").map((s) => s.targets[0])).toEqual(["pg1:8008", "pg2:8008", "pg3:8008"]);
    expect(job("etcd").map((s) => s.targets[0])).toEqual(["etcd1:2379", "etcd2:2379", "etcd3:2379"]);
    expect(rendered("etcd/etcd1.yml")).toContain(":2379");
    expect(job("haproxy")[0]!.targets).toEqual(["haproxy:7000"]);
    expect(rendered("haproxy/haproxy.cfg")).toMatch(/bind \S*:7000/);
    expect(prom.alerting.alertmanagers[0]!.static_configs[0]!.targets).toEqual(["alertmanager:9093"]);
    expect(prom.rule_files).toEqual([`${IN_CONTAINER.prometheusDir}/alerts.yml`]);
    expect(job("postgres").map((s) => [s.targets[0], s.labels!.member])).toEqual([
      ["postgres-exporter-pg1:9187", "pg1"],
      ["postgres-exporter-pg2:9187", "pg2"],
      ["postgres-exporter-pg3:9187", "pg3"],
    ]);
    // node_exporter and the pgbouncer exporter do not run under docker
    expect(prom.scrape_configs.map((j) => j.job_name)).toEqual(["patroni", "etcd", "haproxy", "postgres"]);
  });
  test("promtool and amtool accept the rendered files", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-grafana-"));
    try {
      writeFileSync(join(dir, "prometheus.yml"), r.prometheus);
      writeFileSync(join(dir, "alerts.yml"), r.rules);
      writeFileSync(join(dir, "alertmanager.yml"), r.alertmanager);
      const c = await run(["promtool", "check", "config", "--syntax-only", join(dir, "prometheus.yml")], {
        nothrow: true,
      });
      expect({ code: c.code, out: c.code ? c.stdout + c.stderr : "" }).toEqual({ code: 0, out: "" });
      const rr = await run(["promtool", "check", "rules", join(dir, "alerts.yml")], { nothrow: true });
      expect({ code: rr.code, out: rr.code ? rr.stdout + rr.stderr : "" }).toEqual({ code: 0, out: "" });
      const a = await run(["amtool", "check-config", join(dir, "alertmanager.yml")], { nothrow: true });
      expect({ code: a.code, out: a.code ? a.stdout + a.stderr : "" }).toEqual({ code: 0, out: "" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("postgres_exporter per member (F.POSTGRES_EXPORTER)", () => {
  test("each logs in to its own member's Postgres as pgplatform_monitor, the password from a mounted file", () => {
    const restListen = (YAML.parse(rendered("pg2/patroni.yml")) as { postgresql: { listen: string } }).postgresql
      .listen;
    const e = envOf(doc.services["postgres-exporter-pg2"]!);
    const files: Record<string, string> = { [e.DATA_SOURCE_PASS_FILE!]: "monitor-pw-0123456789\n" };
    expect(F.POSTGRES_EXPORTER.dsn(e, (p) => files[p]!)).toBe(
      `postgresql://pgplatform_monitor:monitor-pw-0123456789@${restListen}/postgres?sslmode=disable`,
    );
    expect(mountOf(doc.services["postgres-exporter-pg2"]!, "/postgres-exporter/postgres.pass")).toBe(
      e.DATA_SOURCE_PASS_FILE,
    );
    expect(doc.services["postgres-exporter-pg2"]!.ports).toBeUndefined();
    expect(rendered("pg2/patroni.yml")).toContain(`host all all ${"172.30.0.0/24"} scram-sha-256`);
  });
});

describe("writeDockerMonitoring: the files the override mounts, and -f only while MONITORING=true", () => {
  test("writes every mounted file (secrets 0600), then MONITORING=false removes the override", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-grafana-w-"));
    try {
      mkdirSync(join(dir, "tls"));
      for (const f of ["ca.crt", "client.crt", "client.key"]) writeFileSync(join(dir, "tls", f), `${f}\n`);
      const secretsFile = join(dir, ".secrets.dev.env");
      writeFileSync(secretsFile, "POSTGRES_PASSWORD=kept-0123456789abcdef\n", { mode: 0o600 });
      // the exporter's password file lives in the member root's monitoring folder: a temp one here
      const c = { ...cfg, secretsFile, memberRoot: dir };
      writeDockerMonitoring(c, dir);
      expect(readFileSync(join(dir, "monitoring/postgres-exporter/postgres.pass"), "utf8")).toBe(
        readFileSync(join(dir, "monitoring/postgres.pass"), "utf8").trim(),
      );
      // Grafana's password: generated once into the secrets file (0600, the other lines kept), the same on a re-run
      const pw = (readSecrets(secretsFile) as Record<string, string>).GRAFANA_ADMIN_PASSWORD!;
      expect(pw).toMatch(/^[\w-]{43}$/);
      expect(readSecrets(secretsFile).POSTGRES_PASSWORD).toBe("kept-0123456789abcdef");
      expect(statSync(secretsFile).mode & 0o777).toBe(0o600);
      writeDockerMonitoring(c, dir);
      expect((readSecrets(secretsFile) as Record<string, string>).GRAFANA_ADMIN_PASSWORD).toBe(pw);
      const d = render(readFileSync(join(dir, "compose.monitoring.yml"), "utf8"), devEnv);
      for (const s of Object.values(d.services))
        for (const v of s.volumes ?? []) {
          const src = v.split(":")[0]!;
          if (src.startsWith("/")) expect({ src, exists: existsSync(src) }).toEqual({ src, exists: true });
        }
      expect(readFileSync(join(dir, "monitoring/grafana/admin.pass"), "utf8")).toBe(pw);
      for (const f of [
        "grafana/admin.pass",
        "prometheus/haproxy-stats.pass",
        "prometheus/etcd/client.key",
        "postgres-exporter/postgres.pass",
      ])
        expect({ f, mode: statSync(join(dir, "monitoring", f)).mode & 0o777 }).toEqual({ f, mode: 0o600 });
      expect(composeFileArgs(cfg, dir)).toContain(join(dir, "compose.monitoring.yml"));
      writeDockerMonitoring(config("\nMONITORING=false\n"), dir);
      expect(composeFileArgs(cfg, dir)).not.toContain(join(dir, "compose.monitoring.yml"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
