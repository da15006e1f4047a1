/**
 * make bench-monitoring [ARGS="--seconds 60"]: on the running stack (idle, healthy), over the
 * given window:
 *   1. monitoring overhead: CPU (% of one core, from /proc ticks) and resident memory (MB) of every
 *      monitoring process together (Prometheus, Alertmanager, the exporters, the relay), beside the
 *      same figures for the stack's own processes (etcd, Patroni + Postgres, HAProxy, pgbouncer, nginx)
 *      as the ratio; goals <= 5 % of one core and <= 300 MB;
 *   2. log growth: KB per minute of the members' logs (everything in the log folder but the
 *      monitoring processes' own) for the whole stack, goal <= 50 KB/min, and of all logs.
 * Figures only; it never gates anything.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../scripts/lib/config";
import { runMain, ToolkitError } from "../scripts/lib/errors";
import { parseFlags } from "../scripts/lib/flags";
import { logRotatorSpec } from "../scripts/lib/logrotate";
import { monitoringSpecs } from "../scripts/lib/monitoring";
import { allSpecs, procSpecs } from "../scripts/lib/native/specs";
import { runningPid, type ProcSpec } from "../scripts/lib/procs";
import { logLine, table } from "../scripts/lib/ui";

const USAGE = `usage: make bench-monitoring [ARGS="--seconds 60"]   (the stack must be up and idle, MONITORING=true)`;
const TICK = 100; // USER_HZ on Linux

/** A process and all its descendants (Patroni's Postgres, nginx's workers). */
function tree(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => (out.push(p), (kids.get(p) ?? []).forEach(walk));
  walk(root);
  return out;
}

function usage(pids: number[]): { ticks: number; rssKb: number } {
  let ticks = 0;
  let rssKb = 0;
  for (const p of pids) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
      ticks += Number(f[11]) + Number(f[12]);
      rssKb += Number(readFileSync(`/proc/${p}/status`, "utf8").match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return { ticks, rssKb };
}

const pidsOf = (specs: ProcSpec[]) =>
  specs
    .map((s) => runningPid(s))
    .filter((p): p is number => p !== undefined)
    .flatMap(tree);

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { seconds: "number" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  if (!cfg.monitoring.enabled)
    throw new ToolkitError(
      "MONITORING_OFF",
      `MONITORING=false in ${cfg.file}`,
      "set MONITORING=true and run `make dev-up`",
    );
  const seconds = flags.seconds ?? 60;
  const mon = monitoringSpecs(cfg);
  const stack = allSpecs(procSpecs(cfg));
  const down = mon.filter((s) => !runningPid(s)).map((s) => s.name);
  if (down.length) throw new ToolkitError("MONITORING_DOWN", `not running: ${down.join(", ")}`, "run `make dev-up`");
  const monLogs = new Set([...mon, logRotatorSpec(cfg)].map((s) => s.logFile));
  const logs = () =>
    new Map(
      readdirSync(cfg.logsDir)
        .filter((f) => f.endsWith(".log"))
        .map((f) => join(cfg.logsDir, f))
        .map((f) => [f, statSync(f).size]),
    );
  logLine(
    `bench-monitoring on stack ${cfg.stack}: ${seconds} s, scrape interval ${cfg.monitoring.intervalSeconds} s, ${navigator.hardwareConcurrency} cores`,
  );
  const m0 = usage(pidsOf(mon));
  const s0 = usage(pidsOf(stack));
  const l0 = logs();
  const rss: number[] = [];
  for (let t = 0; t < seconds; t += 5) {
    await Bun.sleep(Math.min(5, seconds - t) * 1000);
    rss.push(usage(pidsOf(mon)).rssKb);
  }
  const m1 = usage(pidsOf(mon));
  const s1 = usage(pidsOf(stack));
  const l1 = logs();
  // A log rotated meanwhile (LOG_MAX_SIZE_KB) shrank: count what it had grown to before.
  const grown = (member: boolean) =>
    [...l1]
      .filter(([f]) => monLogs.has(f) !== member)
      .reduce((n, [f, size]) => n + (size >= (l0.get(f) ?? 0) ? size - (l0.get(f) ?? 0) : size), 0);
  const perMin = (bytes: number) => bytes / 1024 / (seconds / 60);
  const cpu = (a: { ticks: number }, b: { ticks: number }) => ((b.ticks - a.ticks) / TICK / seconds) * 100;
  const monCpu = cpu(m0, m1);
  const stackCpu = cpu(s0, s1);
  const monRss = Math.max(...rss) / 1024;
  const memberLogs = perMin(grown(true));
  console.log(
    table([
      ["measured", "monitoring", "the stack itself", "ratio", "goal"],
      [
        "CPU, % of one core",
        monCpu.toFixed(2),
        stackCpu.toFixed(2),
        (monCpu / stackCpu).toFixed(2),
        `<= 5 %: ${monCpu <= 5 ? "met" : "MISSED"}`,
      ],
      [
        "resident MB (peak of 5 s samples)",
        monRss.toFixed(0),
        (s1.rssKb / 1024).toFixed(0),
        (monRss / (s1.rssKb / 1024)).toFixed(2),
        `<= 300 MB: ${monRss <= 300 ? "met" : "MISSED"}`,
      ],
      [
        "member log growth, KB/min (whole stack)",
        "-",
        memberLogs.toFixed(1),
        "-",
        `<= 50 KB/min: ${memberLogs <= 50 ? "met" : "MISSED"}`,
      ],
      ["monitoring's own logs, KB/min", perMin(grown(false)).toFixed(1), "-", "-", "-"],
    ]),
  );
  const per = [...l1]
    .filter(([f]) => !monLogs.has(f))
    .map(
      ([f, size]) =>
        `${f.slice(cfg.logsDir.length + 1)} ${perMin(size >= (l0.get(f) ?? 0) ? size - (l0.get(f) ?? 0) : size).toFixed(1)}`,
    );
  console.log(`member logs, KB/min each: ${per.join(", ")}`);
});
