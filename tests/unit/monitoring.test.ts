/**
 * Monitoring: every alert rule proven by `promtool test rules` (fires once,
 * stays quiet once: monitoring/alerts.test.yml), the rendered Prometheus and
 * Alertmanager configs accepted by promtool / amtool, listeners on the stack's
 * address only, and the toolkit's textfile. Real promtool/amtool (Debian's
 * prometheus and prometheus-alertmanager); skipped with a printed reason only
 * when they are not installed.
 */
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { parseConfig } from "../../scripts/lib/config";
import { SECRET_KEYS } from "../../scripts/lib/secrets";
import { run, resolveProgram } from "../../scripts/lib/exec";
import {
  alertTimings,
  formatSamples,
  monitoringFiles,
  monitoringListeners,
  monitoringSpecs,
  mountpointRegex,
  readSamples,
  recordVerification,
  renderMonitoring,
  TEXTFILE_METRICS,
} from "../../scripts/lib/monitoring";

const root = `${import.meta.dir}/../..`;
const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}-0123456789`]));
const testEnv = readFileSync(`${root}/envs/test.env`, "utf8");
const load = (text: string, stack = "test") =>
  parseConfig(text, { file: `envs/${stack}.env`, stack, rootDir: root, isRoot: false, secrets });
const cfg = load(testEnv + "\nMONITORING=true\nBACKUP_ALERT_URL=https://ops.example.com/hook?token=abc\n");

/** promtool unit tests of the rules; each file names its own evaluation interval. */
const TEST_FILES = ["alerts.test.yml", "alerts-backup.test.yml"];
const promtool = resolveProgram("promtool");
const amtool = resolveProgram("amtool");
if (!promtool)
  console.log(
    "SKIP promtool tests: promtool is not installed (apt-get install prometheus, or `make setup` with MONITORING=true)",
  );
if (!amtool) console.log("SKIP amtool tests: amtool is not installed (apt-get install prometheus-alertmanager)");

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "pgp-monitoring-"));
}

describe("alert rules (monitoring/alerts.yml.tmpl)", () => {
  const rules = renderMonitoring(cfg, ["/"]).rules;

  test("rendered with the stack's values: half of maximum_lag_on_failover, synchronous mode, data mount", () => {
    const doc = YAML.parse(rules);
    const byName = new Map<string, { expr: string; annotations: Record<string, string> }>();
    for (const g of doc.groups) for (const r of g.rules) if (!byName.has(r.alert)) byName.set(r.alert, r);
    expect([...byName.keys()].sort()).toEqual([
      "BackupNeverVerified",
      "BackupStale",
      "BackupVerificationFailed",
      "DataDiskFull",
      "EtcdMemberDown",
      "EtcdQuorumLost",
      "HaproxyNoWriteServer",
      "PatroniMemberDown",
      "PatroniMultipleLeaders",
      "PatroniNoLeader",
      "PatroniNoSyncStandby",
      "PatroniReplicaLagHigh",
      "PgbouncerDown",
      "PostgresConnectionsHigh",
      "TlsCertificateExpiring",
      "WalArchivingFailing",
    ]);
    expect(byName.get("PatroniReplicaLagHigh")!.expr).toEndWith("> 524288");
    expect(byName.get("PatroniNoSyncStandby")!.expr).toContain("vector(1) == 1");
    expect(byName.get("DataDiskFull")!.expr).toContain('mountpoint=~"/"');
    // every rule says what it means and the first command to run
    for (const g of doc.groups) for (const r of g.rules) expect(r.annotations.runbook).toMatch(/First: \S/);
  });

  test("synchronous mode off: the no-sync-standby rule can never fire", () => {
    const off = load(testEnv.replace("SYNCHRONOUS_MODE=true", "SYNCHRONOUS_MODE=false"));
    expect(renderMonitoring(off, ["/"]).rules).toContain("and on() (vector(0) == 1)");
  });

  test("mount points become an exact, escaped alternation", () => {
    expect(mountpointRegex(["/", "/var/lib/pg.data", "/"])).toBe("/|/var/lib/pg\\.data");
  });

  test.skipIf(!promtool)(
    "promtool check rules and promtool test rules: every rule fires once and stays quiet once",
    async () => {
      const dir = scratch();
      try {
        // The unit tests are written for the test stack's values (see the head of alerts.test.yml).
        writeFileSync(join(dir, "alerts.yml"), rules);
        for (const t of TEST_FILES) copyFileSync(join(root, "monitoring", t), join(dir, t));
        const check = await run([promtool!, "check", "rules", join(dir, "alerts.yml")], { nothrow: true });
        expect(check.stdout + check.stderr).toContain("SUCCESS: 16 rules found");
        expect(check.code).toBe(0);
        const t = await run([promtool!, "test", "rules", ...TEST_FILES], { nothrow: true, cwd: dir });
        expect(t.stdout + t.stderr).toContain("SUCCESS");
        expect(t.code).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    60_000,
  );

  test("every alert has a firing and a quiet test case", () => {
    const tests = TEST_FILES.flatMap((f) => YAML.parse(readFileSync(join(root, "monitoring", f), "utf8")).tests) as {
      alert_rule_test: { alertname: string; exp_alerts: unknown[] }[];
    }[];
    const fired = new Set<string>();
    const quiet = new Set<string>();
    for (const t of tests) for (const a of t.alert_rule_test) (a.exp_alerts.length ? fired : quiet).add(a.alertname);
    const names = YAML.parse(rules).groups.flatMap((g: { rules: { alert: string }[] }) => g.rules.map((r) => r.alert));
    for (const n of names) {
      expect({ n, fired: fired.has(n) }).toEqual({ n, fired: true });
      expect({ n, quiet: quiet.has(n) }).toEqual({ n, quiet: true });
    }
  });
});

describe("prometheus.yml and alertmanager.yml", () => {
  const files = monitoringFiles(cfg);
  const r = renderMonitoring(cfg, ["/"]);

  test("Prometheus scrapes Patroni and etcd (mTLS) on every member, HAProxy, postgres_exporter per member, pgbouncer and node_exporter", () => {
    const p = YAML.parse(r.prometheus);
    const job = (name: string) => p.scrape_configs.find((j: { job_name: string }) => j.job_name === name);
    expect(p.scrape_configs.map((j: { job_name: string }) => j.job_name)).toEqual([
      "patroni",
      "etcd",
      "haproxy",
      "postgres",
      "pgbouncer",
      "node",
    ]);
    expect(job("patroni").static_configs).toEqual([
      { targets: ["127.0.1.11:8008"], labels: { member: "pg1" } },
      { targets: ["127.0.1.12:8008"], labels: { member: "pg2" } },
      { targets: ["127.0.1.13:8008"], labels: { member: "pg3" } },
    ]);
    expect(job("etcd").scheme).toBe("https");
    expect(job("etcd").tls_config).toEqual({
      ca_file: files.etcdCa,
      cert_file: files.etcdCert,
      key_file: files.etcdKey,
    });
    expect(job("etcd").static_configs.map((s: { targets: string[] }) => s.targets[0])).toEqual([
      "127.0.1.11:2379",
      "127.0.1.12:2379",
      "127.0.1.13:2379",
    ]);
    expect(job("haproxy")).toEqual({
      job_name: "haproxy",
      basic_auth: { username: "admin", password_file: files.haproxyPassword },
      static_configs: [{ targets: ["127.0.1.1:16014"] }],
    });
    expect(job("postgres").static_configs).toEqual([
      { targets: ["127.0.1.1:9187"], labels: { member: "pg1" } },
      { targets: ["127.0.1.1:9188"], labels: { member: "pg2" } },
      { targets: ["127.0.1.1:9189"], labels: { member: "pg3" } },
    ]);
    expect(job("pgbouncer").static_configs).toEqual([{ targets: ["127.0.1.1:9127"] }]);
    expect(job("node").static_configs).toEqual([{ targets: ["127.0.1.1:9110"] }]);
    expect(p.alerting.alertmanagers[0].static_configs[0].targets).toEqual(["127.0.1.1:9093"]);
    expect(p.rule_files).toEqual([files.rules]);
    expect(p.global).toEqual({
      scrape_interval: "15s",
      evaluation_interval: "15s",
      scrape_timeout: "10s",
      external_labels: { cluster: "pgplatform-test" },
    });
    // secrets are referenced by file, never inlined
    expect(r.prometheus).not.toContain(secrets.HAPROXY_STATS_PASSWORD!);
  });

  test("Alertmanager: one webhook (BACKUP_ALERT_URL), grouped per alert name, repeats at most every 4 h", () => {
    const a = YAML.parse(r.alertmanager);
    expect(a.route).toEqual({
      receiver: "operator",
      group_by: ["alertname", "cluster"],
      group_wait: "30s",
      group_interval: "5m",
      repeat_interval: "4h",
    });
    expect(a.receivers).toEqual([
      { name: "operator", webhook_configs: [{ url: "https://ops.example.com/hook?token=abc", send_resolved: true }] },
    ]);
    expect(alertTimings(2)).toEqual({ groupWait: "4s", groupInterval: "40s", repeatInterval: "4h" });
    const none = renderMonitoring(load(testEnv + "\nMONITORING=true\n"), ["/"]).alertmanager;
    expect(YAML.parse(none).receivers).toEqual([{ name: "operator" }]);
  });

  test.skipIf(!promtool || !amtool)(
    "promtool check config and amtool check-config accept the rendered files",
    async () => {
      const dir = scratch();
      try {
        // The referenced files must exist for promtool: render with paths inside the scratch dir.
        const f = {
          ...files,
          rules: join(dir, "alerts.yml"),
          etcdCa: join(dir, "ca.crt"),
          etcdCert: join(dir, "c.crt"),
          etcdKey: join(dir, "c.key"),
          haproxyPassword: join(dir, "h.pass"),
        };
        const out = renderMonitoring(cfg, ["/"], f);
        for (const p of [f.etcdCa, f.etcdCert, f.etcdKey, f.haproxyPassword]) writeFileSync(p, "x\n");
        writeFileSync(f.rules, out.rules);
        writeFileSync(join(dir, "prometheus.yml"), out.prometheus);
        writeFileSync(join(dir, "alertmanager.yml"), out.alertmanager);
        const pc = await run([promtool!, "check", "config", "--syntax-only", join(dir, "prometheus.yml")], {
          nothrow: true,
        });
        expect(pc.stdout + pc.stderr).toContain("SUCCESS");
        expect(pc.code).toBe(0);
        const ac = await run([amtool!, "check-config", join(dir, "alertmanager.yml")], { nothrow: true });
        expect(ac.stdout + ac.stderr).toContain("SUCCESS");
        expect(ac.code).toBe(0);
        // and a broken one is refused (the check is real)
        writeFileSync(join(dir, "bad.yml"), out.alertmanager.replace("receiver: operator", "receiver: nobody"));
        expect((await run([amtool!, "check-config", join(dir, "bad.yml")], { nothrow: true })).code).not.toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test("no monitoring listener binds outside the stack's address", () => {
    for (const l of monitoringListeners(cfg)) expect(l.address).toBe("127.0.1.1");
    const flags = monitoringSpecs(cfg).flatMap((s) =>
      s.cmd.filter((a) => a.startsWith("--web.listen-address=") || a.startsWith("--cluster.listen-address=")),
    );
    expect(flags).toEqual([
      "--web.listen-address=127.0.1.1:9110",
      "--web.listen-address=127.0.1.1:9187",
      "--web.listen-address=127.0.1.1:9188",
      "--web.listen-address=127.0.1.1:9189",
      "--web.listen-address=127.0.1.1:9093",
      "--cluster.listen-address=",
      "--web.listen-address=127.0.1.1:9090",
    ]);
    // the exporter's password comes from a file, never argv or the environment
    // one exporter per member, each on its own member's Postgres
    expect(
      monitoringSpecs(cfg)
        .filter((s) => s.name.startsWith("postgres-exporter-"))
        .map((s) => [s.name, s.env]),
    ).toEqual(
      ["pg1", "pg2", "pg3"].map((m, i) => [
        `postgres-exporter-${m}`,
        {
          DATA_SOURCE_URI: `127.0.1.1${i + 1}:5432/postgres?sslmode=disable`,
          DATA_SOURCE_USER: "pgplatform_monitor",
          DATA_SOURCE_PASS_FILE: files.postgresPassword,
        },
      ]),
    );
    const pb = monitoringSpecs(cfg).find((s) => s.name === "pgbouncer-exporter")!;
    expect([pb.cmd.slice(1), pb.env]).toEqual([
      [join(root, "scripts", "pool-exporter.ts"), "--stack", "test"],
      undefined,
    ]);
    expect(monitoringListeners(cfg).map((l) => `${l.name} ${l.address}:${l.port}`)).toEqual([
      "node-exporter 127.0.1.1:9110",
      "postgres-exporter-pg1 127.0.1.1:9187",
      "postgres-exporter-pg2 127.0.1.1:9188",
      "postgres-exporter-pg3 127.0.1.1:9189",
      "pgbouncer-exporter 127.0.1.1:9127",
      "alertmanager 127.0.1.1:9093",
      "prometheus 127.0.1.1:9090",
      "prometheus-ui (nginx) 127.0.1.1:9095",
    ]);
    // node_exporter's systemd collector logged an error at every scrape (no D-Bus here): off
    expect(monitoringSpecs(cfg)[0]!.cmd).toContain("--no-collector.systemd");
  });

  test("a monitoring port that collides with HAProxy's on the same address is refused", () => {
    expect(() => load(testEnv + "\nMONITORING=true\nPROMETHEUS_PORT=16014\n")).toThrow(
      "envs/test.env: PROMETHEUS_PORT: port 16014 is also used by HAPROXY_STATS_PORT",
    );
  });
});

describe("the toolkit's textfile", () => {
  test("Prometheus text format, labels escaped", () => {
    expect(
      formatSamples([
        { name: "a_b", help: "A.", value: 1 },
        { name: "c", help: "C.", labels: { file: '/x/"y"' }, value: 2 },
        { name: "c", help: "C.", labels: { file: "/z" }, value: 3 },
      ]),
    ).toBe(
      '# HELP a_b A.\n# TYPE a_b gauge\na_b 1\n# HELP c C.\n# TYPE c gauge\nc{file="/x/\\"y\\""} 2\nc{file="/z"} 3\n',
    );
  });

  test("a failed verification keeps the time of the last one that passed", () => {
    const dir = scratch();
    try {
      const c = { ...cfg, memberRoot: dir };
      mkdirSync(join(dir, "monitoring", "textfile"), { recursive: true });
      recordVerification(c, true, 1000);
      const path = recordVerification(c, false, 2000)!;
      const s = readSamples(readFileSync(path, "utf8"));
      expect(Object.fromEntries(s)).toEqual({
        [TEXTFILE_METRICS.verificationLast]: 2000,
        [TEXTFILE_METRICS.verificationSuccess]: 0,
        [TEXTFILE_METRICS.lastVerified]: 1000,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a stack without monitoring writes nothing", () => {
    const dir = scratch();
    try {
      expect(recordVerification({ ...cfg, memberRoot: dir }, true, 1)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("make alerts and setup", () => {
  test("ruleStates: one row per alert rule, instances with their distinguishing labels", async () => {
    const { ruleStates } = await import("../../scripts/lib/monitoring");
    const body = {
      data: {
        groups: [
          {
            name: "pgplatform-cluster",
            rules: [
              {
                type: "alerting",
                name: "PatroniMemberDown",
                state: "firing",
                annotations: { runbook: "r1" },
                alerts: [
                  {
                    state: "firing",
                    labels: {
                      alertname: "PatroniMemberDown",
                      severity: "warning",
                      cluster: "c",
                      job: "patroni",
                      instance: "127.0.1.12:8008",
                      member: "pg2",
                    },
                    activeAt: "2026-01-01T00:00:00Z",
                  },
                ],
              },
              { type: "recording", name: "x", state: "ok" },
              {
                type: "alerting",
                name: "PatroniNoLeader",
                state: "inactive",
                annotations: { runbook: "r2" },
                alerts: [],
              },
            ],
          },
        ],
      },
    };
    expect(ruleStates(body)).toEqual([
      {
        group: "pgplatform-cluster",
        alert: "PatroniMemberDown",
        state: "firing",
        active: [{ state: "firing", labels: { member: "pg2" }, since: "2026-01-01T00:00:00Z" }],
        runbook: "r1",
      },
      { group: "pgplatform-cluster", alert: "PatroniNoLeader", state: "inactive", active: [], runbook: "r2" },
    ]);
  });

  test("Debian's own monitoring services are stopped and disabled after apt installs them", async () => {
    const { serviceStopCommands } = await import("../../scripts/lib/setup");
    expect(serviceStopCommands(["patroni", "prometheus", "prometheus-node-exporter"], true)).toEqual([
      ["systemctl", "disable", "--now", "prometheus", "prometheus-node-exporter"],
    ]);
    expect(serviceStopCommands(["prometheus-alertmanager"], false, () => true)).toEqual([
      ["/etc/init.d/prometheus-alertmanager", "stop"],
      ["update-rc.d", "prometheus-alertmanager", "disable"],
    ]);
    expect(serviceStopCommands(["haproxy"], true)).toEqual([]);
  });

  test("MONITORING=true makes setup want the four Debian packages", async () => {
    const { MONITORING_PACKAGES } = await import("../../scripts/lib/setup");
    expect([...new Set(MONITORING_PACKAGES.map(([, p]) => p))]).toEqual([
      "prometheus",
      "prometheus-alertmanager",
      "prometheus-postgres-exporter",
      "prometheus-node-exporter",
    ]);
  });
});

describe("haproxy.cfg: checks and exporter", async () => {
  const { renderStack } = await import("../../scripts/lib/stack-files");
  const h = renderStack(cfg, "native").find((f) => f.path === "haproxy/haproxy.cfg")!.content;
  test("health checks ask with OPTIONS (Patroni answers in one write: no reset traceback)", () => {
    expect(
      h
        .split("\n")
        .filter((l) => l.includes("http-check send"))
        .map((l) => l.trim()),
    ).toEqual(["http-check send meth OPTIONS uri /primary", "http-check send meth OPTIONS uri /replica"]);
  });
  test("/metrics is HAProxy's exporter, behind the stats password", () => {
    expect(h).toContain(`userlist stats_users\n    user admin insecure-password ${secrets.HAPROXY_STATS_PASSWORD}\n`);
    expect(h).toContain(
      "    http-request auth realm metrics if { path /metrics } !{ http_auth(stats_users) }\n    http-request use-service prometheus-exporter if { path /metrics }\n",
    );
  });
});

describe("BACKUP_ALERT_COMMAND through the alert relay", () => {
  const withCmd = load(testEnv + "\nMONITORING=true\nBACKUP_ALERT_COMMAND=/usr/local/bin/notify-ops --urgent\n");

  test("Alertmanager posts to the relay with the token file; the relay is a listener on the stack's address", () => {
    const a = YAML.parse(renderMonitoring(withCmd, ["/"]).alertmanager);
    expect(a.receivers).toEqual([
      {
        name: "operator",
        webhook_configs: [
          {
            url: "http://127.0.1.1:9094/alert",
            send_resolved: true,
            http_config: { authorization: { credentials_file: monitoringFiles(withCmd).relayToken } },
          },
        ],
      },
    ]);
    expect(monitoringListeners(withCmd).find((l) => l.name === "alert-relay")).toEqual({
      name: "alert-relay",
      address: "127.0.1.1",
      port: 9094,
    });
    expect(monitoringSpecs(withCmd).at(-1)!.marker).toBe("alert-relay.ts --stack test ");
    expect(monitoringSpecs(cfg).map((s) => s.name)).not.toContain("alert-relay");
  });

  test.skipIf(!amtool)("amtool accepts the config with both webhook and relay", async () => {
    const dir = scratch();
    try {
      const both = load(
        testEnv + "\nMONITORING=true\nBACKUP_ALERT_URL=https://ops.example.com/x\nBACKUP_ALERT_COMMAND=/bin/true\n",
      );
      const f = { ...monitoringFiles(both), relayToken: join(dir, "relay.token") };
      writeFileSync(f.relayToken, "t\n");
      writeFileSync(join(dir, "am.yml"), renderMonitoring(both, ["/"], f).alertmanager);
      const ac = await run([amtool!, "check-config", join(dir, "am.yml")], { nothrow: true });
      expect(ac.stdout + ac.stderr).toContain("SUCCESS");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the relay runs the command with the message on stdin, only for the token", async () => {
    const { relayHandler } = await import("../../scripts/lib/monitoring");
    const dir = scratch();
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: relayHandler("test", "s3cret-token", `tee ${join(dir, "got.txt")}`),
    });
    try {
      const url = `http://127.0.0.1:${server.port}/alert`;
      const body = JSON.stringify({
        status: "firing",
        alerts: [
          {
            status: "firing",
            labels: {
              alertname: "PatroniMemberDown",
              severity: "warning",
              member: "pg2",
              job: "patroni",
              instance: "x",
            },
            annotations: { summary: "Member pg2 is down", runbook: "First: make status" },
          },
        ],
      });
      expect((await fetch(url, { method: "POST", body })).status).toBe(401);
      expect(
        (await fetch(url, { method: "POST", body, headers: { Authorization: "Bearer wrong-token!" } })).status,
      ).toBe(401);
      const ok = await fetch(url, { method: "POST", body, headers: { Authorization: "Bearer s3cret-token" } });
      expect(ok.status).toBe(200);
      expect(readFileSync(join(dir, "got.txt"), "utf8")).toBe(
        "pgplatform alerts FIRING (stack test):\n- [firing] PatroniMemberDown (warning) member=pg2\n  Member pg2 is down\n  runbook: First: make status\n",
      );
    } finally {
      server.stop(true);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
