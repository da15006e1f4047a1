#!/usr/bin/env bun
/**
 * make bench-pool: pgbouncer against HAProxy directly, side by side in one run,
 * with pgbench (the raw tool) as the load:
 *   1. throughput: select-only and tpcb-like, pooled vs direct-to-leader (TPS, p95 latency, ratios),
 *      saturated and at a fixed rate (-R, half the saturating tpcb-like rate: latency incl. schedule lag);
 *   2. a planned switchover (make switchover: PAUSE/RESUME) under pgbench, pooled vs direct:
 *      failed transactions (aborted clients) and the longest stall between two completed transactions;
 *   3. idle clients held by the pooler vs the server connections they use.
 * Works in a scratch app (pgp_bench_pool, removed at the end). Prints figures; never gates CI.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { appEnvPath, findApp } from "../scripts/lib/apps";
import { loadConfig, type Config } from "../scripts/lib/config";
import { runMain, ToolkitError } from "../scripts/lib/errors";
import { run } from "../scripts/lib/exec";
import { parseFlags } from "../scripts/lib/flags";
import { planSwitchover, runMaintenance } from "../scripts/lib/maintenance";
import { onboardApp } from "../scripts/lib/onboard/onboard";
import { removeApp } from "../scripts/lib/onboard/remove";
import { clusterView } from "../scripts/lib/patroni";
import { poolUsage } from "../scripts/lib/pool";
import { ensureSecrets } from "../scripts/lib/secrets";
import { logLine, table } from "../scripts/lib/ui";

const APP = "pgp_bench_pool";
const USAGE = `usage: make bench-pool [ARGS="--clients 100 --seconds 30 --switch-clients 50 --switch-seconds 60 --scale 10 --idle 1000"]
Pooled (pgbouncer) vs direct (HAProxy read-write) on the running stack, with pgbench.`;

interface Target {
  label: "pooled" | "direct";
  host: string;
  port: number;
}

interface PgbenchResult {
  tps: number;
  transactions: number;
  p95Ms: number | null;
  abortedClients: number;
  longestStallMs: number | null;
  failedLine: string;
  ms: number;
}

function pgbenchCmd(t: Target, db: string, user: string, args: string[]): string[] {
  return ["pgbench", "-h", t.host, "-p", String(t.port), "-U", user, "-n", ...args, db];
}

/** pgbench's per-transaction logs (-l): latency percentiles and the longest gap between two completions. */
function readLogs(dir: string): { p95Ms: number | null; longestStallMs: number | null } {
  const lat: number[] = [];
  const done: number[] = [];
  for (const f of readdirSync(dir).filter((x) => x.startsWith("pgbench_log"))) {
    for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
      const p = line.split(" ");
      if (p.length < 6) continue;
      // with --rate, a 7th column is the schedule lag: the wait before the transaction could start
      lat.push((Number(p[2]) + Number(p[6] ?? 0)) / 1000);
      done.push(Number(p[4]) * 1000 + Number(p[5]) / 1000);
    }
  }
  if (lat.length === 0) return { p95Ms: null, longestStallMs: null };
  lat.sort((a, b) => a - b);
  done.sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < done.length; i++) gap = Math.max(gap, done[i]! - done[i - 1]!);
  return { p95Ms: lat[Math.floor(lat.length * 0.95)]!, longestStallMs: gap };
}

async function pgbench(
  _cfg: Config,
  t: Target,
  password: string,
  args: string[],
  during?: () => Promise<void>,
): Promise<PgbenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "pgp-bench-pool-"));
  const t0 = Date.now();
  try {
    const p = run(pgbenchCmd(t, `${APP}_db`, APP, ["-l", ...args]), {
      cwd: dir,
      env: { PGPASSWORD: password },
      nothrow: true,
      timeoutMs: 900_000,
    });
    if (during) await during();
    const r = await p;
    const out = r.stdout + r.stderr;
    const tps = Number(out.match(/tps = ([\d.]+) \(without initial connection time\)/)?.[1] ?? 0);
    const transactions = Number(out.match(/number of transactions actually processed: (\d+)/)?.[1] ?? 0);
    // pgbench 15: "client 3 script 0 aborted in command 5 query 0: FATAL: ..."
    const abortedClients = (out.match(/client \d+ (script \d+ )?aborted/g) ?? []).length;
    const failedLine = out.match(/number of failed transactions: .*/)?.[0] ?? "";
    if (!transactions && !abortedClients)
      throw new ToolkitError("PGBENCH_FAILED", `pgbench (${t.label}) processed nothing`, undefined, out.slice(-2000));
    return { tps, transactions, abortedClients, failedLine, ms: Date.now() - t0, ...readLogs(dir) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    {
      clients: "number",
      seconds: "number",
      switchClients: "number",
      switchSeconds: "number",
      scale: "number",
      idle: "number",
      keep: "boolean",
    },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  let cfg = loadConfig();
  ensureSecrets(cfg.secretsFile);
  cfg = loadConfig(cfg.stack);
  const clients = flags.clients ?? 100;
  const seconds = flags.seconds ?? 30;
  const switchClients = flags.switchClients ?? 50;
  const switchSeconds = flags.switchSeconds ?? 60;
  const scale = flags.scale ?? 10;
  const idle = flags.idle ?? 1000;
  const cores = navigator.hardwareConcurrency;
  logLine(
    `bench-pool on stack ${cfg.stack}: ${cores} cores; pgbench ${clients} clients x ${seconds} s, switchover under ${switchClients} clients x ${switchSeconds} s, scale ${scale}`,
  );

  if (!findApp(cfg, APP)) await onboardApp(cfg, { name: APP, port: 29990 });
  const env = readFileSync(appEnvPath(cfg, APP), "utf8");
  const password = decodeURIComponent(new URL(env.match(/^DIRECT_URL=(.*)$/m)![1]!).password);
  const pooled: Target = { label: "pooled", host: cfg.pool.address, port: cfg.pool.port };
  const direct: Target = { label: "direct", host: cfg.haproxy.address, port: cfg.haproxy.rwPort };
  try {
    logLine(`pgbench -i -s ${scale} (direct)`);
    await run(
      pgbenchCmd(direct, `${APP}_db`, APP, ["-i", "-q", "-s", String(scale)]).filter((a) => a !== "-n"),
      { env: { PGPASSWORD: password }, timeoutMs: 900_000 },
    );

    // 1. Throughput, side by side.
    const thr: [string, PgbenchResult, PgbenchResult][] = [];
    for (const [mode, extra] of [
      ["select-only", ["-S"]],
      ["tpcb-like", []],
    ] as const) {
      const res: Record<string, PgbenchResult> = {};
      for (const t of [direct, pooled]) {
        logLine(`${mode} ${t.label}: pgbench -c ${clients} -j 2 -T ${seconds}`);
        res[t.label] = await pgbench(cfg, t, password, [
          ...extra,
          "-c",
          String(clients),
          "-j",
          "2",
          "-T",
          String(seconds),
        ]);
      }
      thr.push([mode, res.pooled!, res.direct!]);
    }

    // 1b. The same clients at a fixed rate (pgbench -R, open loop): half the saturating tpcb-like rate.
    // A saturated closed-loop run measures queueing (mean latency = clients / TPS, Little's law); a
    // fixed rate is what "100 concurrent users, 95 % of queries under 100 ms" describes.
    const tpcb = thr.find(([m]) => m === "tpcb-like")!;
    const rate = Math.max(1, Math.round(0.5 * Math.min(tpcb[1].tps, tpcb[2].tps)));
    const paced: Record<string, PgbenchResult> = {};
    for (const t of [direct, pooled]) {
      logLine(`tpcb-like at ${rate} tps ${t.label}: pgbench -c ${clients} -j 2 -R ${rate} -T ${seconds}`);
      paced[t.label] = await pgbench(cfg, t, password, [
        "-c",
        String(clients),
        "-j",
        "2",
        "-R",
        String(rate),
        "-T",
        String(seconds),
      ]);
    }
    thr.push([`tpcb-like at ${rate} tps`, paced.pooled!, paced.direct!]);

    // 2. A planned switchover under load, pooled then direct (the same make switchover both times).
    const sw: [Target, PgbenchResult, number][] = [];
    for (const t of [pooled, direct]) {
      let pausedMs = 0;
      logLine(`switchover under pgbench ${t.label}: -c ${switchClients} -j 2 -T ${switchSeconds}`);
      const r = await pgbench(
        cfg,
        t,
        password,
        ["-c", String(switchClients), "-j", "2", "-T", String(switchSeconds)],
        async () => {
          await Bun.sleep(Math.min(10_000, (switchSeconds * 1000) / 3));
          const m = await runMaintenance(cfg, planSwitchover((await clusterView(cfg))!), { healthWaitMs: 60_000 });
          pausedMs = m.pausedMs;
          logLine(
            `  switchover ${m.plan.leader} -> ${m.plan.candidate} in ${(m.ms / 1000).toFixed(1)} s (pooler paused ${(m.pausedMs / 1000).toFixed(1)} s)`,
          );
        },
      );
      sw.push([t, r, pausedMs]);
    }

    // 3. Idle clients held by the pooler.
    logLine(`${idle} idle clients through the pooler`);
    const held: pg.Client[] = [];
    let servers = -1;
    try {
      for (let i = 0; i < idle; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(50, idle - i) }, async () => {
            const c = new pg.Client({
              host: pooled.host,
              port: pooled.port,
              user: APP,
              password,
              database: `${APP}_db`,
            });
            c.on("error", () => {});
            await c.connect();
            await c.query("SELECT 1");
            return c;
          }),
        );
        held.push(...batch);
      }
      const u = (await poolUsage(cfg)).filter((p) => p.database === `${APP}_db`);
      servers = u.reduce((n, p) => n + p.serversActive + p.serversIdle + p.serversUsed, 0);
    } finally {
      await Promise.all(held.map((c) => c.end().catch(() => {})));
    }

    const f1 = (x: number | null) => (x === null ? "-" : x.toFixed(1));
    console.log("");
    console.log(
      table([
        ["throughput", "pooled TPS", "direct TPS", "pooled/direct", "pooled p95 ms", "direct p95 ms", "goal"],
        ...thr.map(([mode, p, d]) => [
          mode,
          f1(p.tps),
          f1(d.tps),
          d.tps ? `${(p.tps / d.tps).toFixed(2)}x` : "-",
          f1(p.p95Ms),
          f1(d.p95Ms),
          `>= 0.9x, p95 < 100 ms: ${p.tps >= 0.9 * d.tps && (p.p95Ms ?? 1e9) < 100 ? "met" : "MISSED"}`,
        ]),
      ]),
    );
    console.log("");
    console.log(
      table([
        [
          "switchover under pgbench",
          "ran s",
          "transactions",
          "aborted clients (failed)",
          "pgbench failed line",
          "longest stall s",
          "pooler paused s",
          "goal",
        ],
        ...sw.map(([t, r, paused]) => [
          t.label,
          `${(r.ms / 1000).toFixed(0)} of ${switchSeconds}`,
          String(r.transactions),
          `${r.abortedClients}/${switchClients}`,
          r.failedLine.replace("number of failed transactions: ", "") || "-",
          r.longestStallMs === null ? "-" : (r.longestStallMs / 1000).toFixed(2),
          t.label === "pooled" ? (paused / 1000).toFixed(1) : "-",
          t.label === "pooled"
            ? `0 failed, stall <= 3 s: ${r.abortedClients === 0 && (r.longestStallMs ?? 1e9) <= 3000 ? "met" : "MISSED"}`
            : "(shown for comparison)",
        ]),
      ]),
    );
    console.log("");
    console.log(
      table([
        ["idle clients held by the pooler", "server connections", "goal"],
        [String(held.length), String(servers), `<= 20: ${servers >= 0 && servers <= 20 ? "met" : "MISSED"}`],
      ]),
    );
    console.log(
      "Latency includes pgbench's schedule lag at a fixed rate (-R). Saturated, 100 closed-loop clients wait their turn: mean latency = clients / TPS (Little's law), so p95 < 100 ms there needs well over 1000 TPS.",
    );
    console.log(
      `\npooled: ${pooled.host}:${pooled.port} (pgbouncer, transaction mode, default_pool_size ${cfg.pool.defaultPoolSize}); direct: ${direct.host}:${direct.port} (HAProxy read-write).`,
    );
    console.log(
      `A direct client whose connection is cut by the switchover is aborted by pgbench (counted as failed); the longest stall is the longest gap between two completed transactions (pgbench -l), so a run whose clients all aborted shows only the gaps before that.`,
    );
    if (cores <= 2)
      console.log(
        `Measured on ${cores} shared cores: pgbench, pgbouncer, HAProxy and three Postgres compete for them, so the ratios mean more than the absolute figures.`,
      );
  } finally {
    if (!flags.keep)
      await removeApp(cfg, APP).catch((e) => logLine(`could not remove ${APP}: ${(e as Error).message}`));
  }
});
