/**
 * HAProxy's side of the stack, as monitoring sees it:
 * - its health checks no longer make Patroni log a ConnectionResetError traceback
 *   (they used GET, whose answer Patroni writes in two parts while HAProxy resets
 *   the connection after the status line; OPTIONS is answered in one write):
 *   member logs of an idle healthy stack grow by at most 50 KB a minute together;
 * - its Prometheus exporter (/metrics on the stats port) wants the stats password.
 */
import { describe, expect, test } from "bun:test";
import { statSync, readFileSync } from "node:fs";
import { logFile } from "../../scripts/lib/native/specs";
import { testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const size = (f: string) => statSync(f).size;

describe("HAProxy checks and exporter", () => {
  test("idle healthy stack: no ConnectionResetError in member logs, growth <= 50 KB/min", async () => {
    await waitClusterHealthy(cfg);
    await Bun.sleep(3000); // let a restart's start-up lines pass
    const logs = cfg.members.map((m) => logFile(cfg, m.name));
    const before = logs.map(size);
    const windowMs = 30_000;
    await Bun.sleep(windowMs);
    const grown = logs.map((f, i) => readFileSync(f).subarray(before[i]!).toString("utf8"));
    const bytes = grown.reduce((n, g) => n + Buffer.byteLength(g), 0);
    const perMinute = Math.round((bytes * 60_000) / windowMs);
    console.log(`member logs grew ${perMinute} bytes/min (3 members, idle)`);
    expect(grown.map((g) => g.split("\n").filter((l) => l.includes("ConnectionResetError")).length)).toEqual([0, 0, 0]);
    expect(perMinute).toBeLessThanOrEqual(50 * 1024);
  }, 120_000);

  test("HAProxy's /metrics answers 401 without the stats password and the metrics with it", async () => {
    const url = `http://${cfg.haproxy.address}:${cfg.haproxy.statsPort}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    const bad = await fetch(url, { headers: { Authorization: `Basic ${btoa("admin:wrong")}` } });
    expect(bad.status).toBe(401);
    const ok = await fetch(url, {
      headers: { Authorization: `Basic ${btoa(`admin:${cfg.secrets.HAPROXY_STATS_PASSWORD}`)}` },
    });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('haproxy_backend_active_servers{proxy="postgres_rw"} 1');
  });
});
