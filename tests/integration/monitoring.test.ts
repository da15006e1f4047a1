/**
 * Monitoring on a live stack (MONITORING=true): nothing fires on a healthy
 * stack; stopping a replica fires PatroniMemberDown, visible in Alertmanager's
 * API and delivered to the webhook BACKUP_ALERT_URL names, and it resolves
 * after the restart. `make test` runs this file alone on its own stack,
 * envs/test-monitoring.env (MONITORING=true, MONITORING_INTERVAL=2, the
 * webhook at BACKUP_ALERT_URL=http://127.0.8.1:18099/alerts), after the
 * shared stack's files: "nothing fires on a healthy stack" needs a stack no
 * other test has disturbed. By hand:
 *   make test-integration TEST_STACK=test-monitoring FILES=tests/integration/monitoring.test.ts
 * On a stack with MONITORING=false the file is skipped with the reason printed.
 */
import { describe, expect, test } from "bun:test";
import { isRunning, clusterView } from "../../scripts/lib/patroni";
import { procSpecs, stopComponent } from "../../scripts/lib/native/specs";
import { startProc, runningPid } from "../../scripts/lib/procs";
import {
  monitoringListeners,
  monitoringSpecs,
  monitoringUiPassword,
  monitoringUiPort,
  monitoringUiUrl,
} from "../../scripts/lib/monitoring";
import { run } from "../../scripts/lib/exec";
import { testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const mon = cfg.monitoring;
const enabled = mon.enabled;
if (!enabled)
  console.log(
    `SKIP monitoring integration: MONITORING=false in ${cfg.file} (run it on a stack with MONITORING=true, see the head of this file)`,
  );

const prom = `http://${mon.address}:${mon.prometheusPort}`;
const am = `http://${mon.address}:${mon.alertmanagerPort}`;

interface PromAlert {
  labels: Record<string, string>;
  state: string;
}
interface AmAlert {
  labels: Record<string, string>;
  status: { state: string };
}
interface Hook {
  status: string;
  alerts: { status: string; labels: Record<string, string> }[];
}

const promAlerts = async () =>
  ((await (await fetch(`${prom}/api/v1/alerts`)).json()) as { data: { alerts: PromAlert[] } }).data.alerts;
const amAlerts = async () =>
  (await (await fetch(`${am}/api/v2/alerts?active=true&silenced=false&inhibited=false`)).json()) as AmAlert[];

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return { value: v, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await Bun.sleep(500);
  }
}

/** The webhook: listens where BACKUP_ALERT_URL points when that is this stack's loopback address. */
function webhook() {
  const url = cfg.backup.alertUrl ? new URL(cfg.backup.alertUrl) : undefined;
  if (!url || url.hostname !== mon.address || url.protocol !== "http:") return undefined;
  const received: Hook[] = [];
  const server = Bun.serve({
    hostname: url.hostname,
    port: Number(url.port),
    async fetch(req) {
      received.push((await req.json()) as Hook);
      return new Response("ok");
    },
  });
  return { received, stop: () => server.stop(true) };
}

describe.skipIf(!enabled)("monitoring on a live stack", () => {
  test("every monitoring listener is on the stack's address, nowhere else", async () => {
    const ss = await run(["ss", "-Hltnp"]);
    for (const spec of monitoringSpecs(cfg)) {
      const pid = runningPid(spec);
      expect({ spec: spec.name, running: Boolean(pid) }).toEqual({ spec: spec.name, running: true });
      const bound = ss.stdout
        .split("\n")
        .filter((l) => l.includes(`pid=${pid},`))
        .map((l) => l.trim().split(/\s+/)[3]);
      const want = monitoringListeners(cfg).find((l) => l.name === spec.name)!;
      expect({ spec: spec.name, bound }).toEqual({ spec: spec.name, bound: [`${want.address}:${want.port}`] });
    }
  });

  test("every target is scraped, and nothing fires on a healthy stack for 2 minutes", async () => {
    await waitClusterHealthy(cfg);
    const targets = await until("all targets up", 60_000, async () => {
      const t = (
        (await (await fetch(`${prom}/api/v1/targets`)).json()) as {
          data: { activeTargets: { labels: { job: string }; health: string }[] };
        }
      ).data.activeTargets;
      return t.length === 12 && t.every((x) => x.health === "up") ? t : undefined;
    });
    expect(targets.value.map((t) => t.labels.job).sort()).toEqual([
      "etcd",
      "etcd",
      "etcd",
      "haproxy",
      "node",
      "patroni",
      "patroni",
      "patroni",
      "pgbouncer",
      "postgres",
      "postgres",
      "postgres",
    ]);
    // each member's own postgres_exporter, and pgbouncer's pools through its exporter
    const q = async (expr: string) =>
      (
        (await (await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as {
          data: { result: { metric: Record<string, string>; value: [number, string] }[] };
        }
      ).data.result;
    expect((await q("pg_up")).map((r) => [r.metric.member, r.value[1]]).sort()).toEqual([
      ["pg1", "1"],
      ["pg2", "1"],
      ["pg3", "1"],
    ]);
    expect((await q("pgbouncer_up")).map((r) => r.value[1])).toEqual(["1"]);
    const t0 = Date.now();
    while (Date.now() - t0 < 120_000) {
      expect((await promAlerts()).filter((a) => a.state === "firing")).toEqual([]);
      await Bun.sleep(5000);
    }
  }, 240_000);

  test("a stopped pgbouncer fires PgbouncerDown within 60 s; it goes quiet once pgbouncer is back", async () => {
    const spec = procSpecs(cfg).pool;
    const firing = async () =>
      (await promAlerts()).filter((a) => a.labels.alertname === "PgbouncerDown" && a.state === "firing");
    expect(await firing()).toEqual([]);
    await stopComponent(cfg, spec, 10_000);
    try {
      const f = await until("PgbouncerDown firing", 60_000, async () => ((await firing()).length ? true : undefined));
      console.log(`PgbouncerDown firing ${(f.ms / 1000).toFixed(1)} s after pgbouncer stopped`);
    } finally {
      startProc(spec);
    }
    await until("PgbouncerDown quiet", 60_000, async () =>
      (await promAlerts()).some((a) => a.labels.alertname === "PgbouncerDown") ? undefined : true,
    );
  }, 180_000);

  test("Prometheus's UI behind nginx: refused without the password or with a wrong one, served with it, only on the stack's address", async () => {
    const ui = monitoringUiUrl(cfg);
    const auth = (user: string, pw: string) => ({
      authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`,
    });
    const none = await fetch(`${ui}api/v1/status/buildinfo`);
    expect([none.status, none.headers.get("www-authenticate")]).toEqual([
      401,
      `Basic realm="pgplatform monitoring (${cfg.stack})"`,
    ]);
    expect((await fetch(`${ui}api/v1/status/buildinfo`, { headers: auth("monitor", "not-the-password") })).status).toBe(
      401,
    );
    const ok = await fetch(`${ui}api/v1/status/buildinfo`, { headers: auth("monitor", monitoringUiPassword(cfg)) });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { status: string; data: { version: string } }).status).toBe("success");
    const page = await fetch(`${ui}graph`, { headers: auth("monitor", monitoringUiPassword(cfg)) });
    expect([page.status, (await page.text()).includes("Prometheus")]).toEqual([200, true]);
    // nginx holds the UI port on the stack's address only; Prometheus its own (the listener test above)
    const ss = await run(["ss", "-Hltn"]);
    const uiPort = `:${monitoringUiPort(cfg)}`;
    expect(
      ss.stdout
        .split("\n")
        .map((l) => l.trim().split(/\s+/)[3])
        .filter((a) => a?.endsWith(uiPort)),
    ).toEqual([`${mon.address}${uiPort}`]);
  });

  test("a verified-backup marker older than 26 h makes BackupStale match (pending) on the real textfile", async () => {
    const { recordVerification, textfileDir } = await import("../../scripts/lib/monitoring");
    const { existsSync, readFileSync, writeFileSync, rmSync } = await import("node:fs");
    const path = `${textfileDir(cfg)}/pgplatform_verify.prom`;
    const saved = existsSync(path) ? readFileSync(path, "utf8") : undefined;
    try {
      recordVerification(cfg, true, Math.floor(Date.now() / 1000) - 27 * 3600);
      const seen = await until("BackupStale pending", 60_000, async () =>
        (await promAlerts()).find((a) => a.labels.alertname === "BackupStale"),
      );
      console.log(`BackupStale ${seen.value.state} after ${(seen.ms / 1000).toFixed(1)} s (it fires after 5 min)`);
      expect(["pending", "firing"]).toContain(seen.value.state);
    } finally {
      if (saved !== undefined) writeFileSync(path, saved);
      else rmSync(path, { force: true });
    }
    await until("BackupStale gone", 60_000, async () =>
      (await promAlerts()).some((a) => a.labels.alertname === "BackupStale") ? undefined : true,
    );
  }, 180_000);

  test("a stopped replica fires PatroniMemberDown within 60 s (Alertmanager API and webhook); it resolves after the restart", async () => {
    const hook = webhook();
    if (!hook)
      console.log(
        `note: BACKUP_ALERT_URL (${cfg.backup.alertUrl || "empty"}) is not http://${mon.address}:<port>/...: webhook delivery not checked`,
      );
    try {
      const view = await clusterView(cfg);
      const replica = view!.members.find((m) => m.role !== "leader" && isRunning(m))!.name;
      const spec = procSpecs(cfg).patroni.find((s) => s.name === replica)!;
      await stopComponent(cfg, spec, 30_000);
      const fired = await until("PatroniMemberDown in Alertmanager", 60_000, async () => {
        const a = (await amAlerts()).find(
          (x) => x.labels.alertname === "PatroniMemberDown" && x.labels.member === replica,
        );
        return a ?? undefined;
      });
      console.log(`PatroniMemberDown for ${replica} in Alertmanager after ${(fired.ms / 1000).toFixed(1)} s`);
      expect(fired.value.labels).toMatchObject({
        alertname: "PatroniMemberDown",
        member: replica,
        severity: "warning",
        cluster: cfg.clusterName,
        job: "patroni",
      });
      if (hook) {
        const got = await until("webhook delivery", 60_000 - fired.ms, async () =>
          hook.received.find(
            (h) =>
              h.status === "firing" &&
              h.alerts.some((a) => a.labels.alertname === "PatroniMemberDown" && a.labels.member === replica),
          ),
        );
        console.log(`webhook received it ${(got.ms / 1000).toFixed(1)} s later`);
      }
      startProc(spec);
      await waitClusterHealthy(cfg);
      const gone = await until("PatroniMemberDown resolved in Alertmanager", 60_000, async () =>
        (await amAlerts()).some((x) => x.labels.alertname === "PatroniMemberDown") ? undefined : true,
      );
      console.log(`resolved in Alertmanager ${(gone.ms / 1000).toFixed(1)} s after the member was healthy again`);
      if (hook) {
        // Resolved notifications go out at the next group_interval (20 x MONITORING_INTERVAL, at most 5 min).
        const r = await until("resolved webhook", 120_000, async () =>
          hook.received.find(
            (h) =>
              h.status === "resolved" &&
              h.alerts.some((a) => a.labels.alertname === "PatroniMemberDown" && a.labels.member === replica),
          ),
        );
        console.log(`webhook received the resolution ${(r.ms / 1000).toFixed(1)} s later`);
      }
    } finally {
      hook?.stop();
      // leave the cluster whole for the next file
      for (const s of procSpecs(cfg).patroni) if (!runningPid(s)) startProc(s);
      await waitClusterHealthy(cfg);
    }
  }, 400_000);
});
