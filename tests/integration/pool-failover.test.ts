/**
 * Unplanned: the leader's Patroni and Postgres SIGKILLed under writers on the pooled URL.
 * No acknowledged write is lost, and the longest stretch without an acknowledged write stays
 * inside the failover drill's RTO budget for kill-primary (pgbouncer drops the dead server
 * connections: server_check_delay, HAProxy's on-marked-down shutdown-sessions).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import pg from "pg";
import { appEnvPath, loadApps } from "../../scripts/lib/apps";
import { defaultBudgetMs } from "../../scripts/lib/failover/analysis";
import { memberProcs, signalAll } from "../../scripts/lib/failover/faults";
import { runtimeFor } from "../../scripts/lib/runtimes/index";
import { procSpecs } from "../../scripts/lib/native/specs";
import { onboardApp } from "../../scripts/lib/onboard/onboard";
import { removeApp } from "../../scripts/lib/onboard/remove";
import { clusterView } from "../../scripts/lib/patroni";
import { portFree } from "../../scripts/lib/ports";
import { startProc } from "../../scripts/lib/procs";
import { testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const APP = "it_poolfo_a";
const SLOW = 240_000;
const url = () => readFileSync(appEnvPath(cfg, APP), "utf8").match(/^DATABASE_URL=(.*)$/m)![1]!;

async function cleanup() {
  for (const a of loadApps(cfg).filter((x) => x.name === APP)) await removeApp(cfg, a.name).catch(() => {});
}

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  await cleanup();
  let port = 29600;
  while (!(await portFree("127.0.0.1", port)) || loadApps(cfg).some((a) => a.port === port)) port++;
  await onboardApp(cfg, { name: APP, port });
}, SLOW);

afterAll(async () => {
  await cleanup();
  await waitClusterHealthy(cfg);
}, SLOW);

describe("kill-primary through the pooler", () => {
  test(
    "0 acknowledged writes lost; the gap without acknowledged writes is within the kill-primary RTO budget",
    async () => {
      const setup = new pg.Client({ connectionString: url() });
      await setup.connect();
      await setup.query("CREATE TABLE acks (id bigint PRIMARY KEY, w int NOT NULL)");
      await setup.end();

      const acked: { id: number; at: number }[] = [];
      const errors: string[] = [];
      let stop = false;
      const writer = async (w: number) => {
        let n = 0;
        let c: pg.Client | undefined;
        while (!stop) {
          try {
            if (!c) {
              c = new pg.Client({ connectionString: url(), connectionTimeoutMillis: 3000 });
              c.on("error", () => {});
              await c.connect();
            }
            const id = w * 10_000_000 + ++n;
            await c.query("INSERT INTO acks VALUES ($1, $2)", [id, w]);
            acked.push({ id, at: Date.now() });
          } catch (e) {
            errors.push((e as Error).message);
            await c?.end().catch(() => {});
            c = undefined;
            await Bun.sleep(100);
          }
        }
        await c?.end().catch(() => {});
      };
      const writers = [0, 1, 2, 3].map(writer);
      await Bun.sleep(3000);
      const view = (await clusterView(cfg))!;
      const leader = cfg.members.find((m) => m.name === view.members.find((x) => x.role === "leader")!.name)!;
      const killedAt = Date.now();
      expect(
        signalAll((await memberProcs(cfg, runtimeFor(cfg, "native"), leader)).all, "SIGKILL").length,
      ).toBeGreaterThan(0);
      // until writes flow again, then 5 s more
      while (!acked.some((a) => a.at > killedAt + 1000) && Date.now() - killedAt < 90_000) await Bun.sleep(200);
      await Bun.sleep(5000);
      stop = true;
      await Promise.all(writers);
      startProc(procSpecs(cfg).patroni[leader.index]!);

      const times = [killedAt, ...acked.map((a) => a.at).filter((t) => t >= killedAt)].sort((a, b) => a - b);
      const before = Math.max(...acked.map((a) => a.at).filter((t) => t < killedAt));
      let gap = times[1]! - before;
      for (let i = 2; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
      const check = new pg.Client({ connectionString: url() });
      await check.connect();
      const have = new Set((await check.query("SELECT id::int AS id FROM acks")).rows.map((r) => r.id as number));
      await check.end();
      const lost = acked.filter((a) => !have.has(a.id)).map((a) => a.id);
      const budget = defaultBudgetMs(cfg, "kill-primary");
      console.log(
        `kill-primary through pgbouncer: ${acked.length} acknowledged, ${lost.length} lost, gap ${(gap / 1000).toFixed(1)} s (budget ${(budget / 1000).toFixed(1)} s), ${errors.length} failed statements: ${[...new Set(errors)].slice(0, 3).join(" | ")}`,
      );
      expect(lost).toEqual([]);
      expect(gap).toBeLessThanOrEqual(budget);
      await waitClusterHealthy(cfg, 120_000);
    },
    SLOW,
  );
});
