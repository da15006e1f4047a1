/**
 * The arithmetic of a failover drill, kept pure so it can be tested on
 * recorded timelines: RTO (the longest stretch with no acknowledged write
 * after the fault), RPO (acknowledged ids missing on the final primary),
 * duplicates, split brain, and the verdict against the budget.
 *
 * All times are epoch milliseconds; derived figures are milliseconds relative
 * to the fault.
 */
import type { Config } from "../config";
import {
  LEADER_EXPECTATION,
  type MonitorSample,
  type Recording,
  type RunMetrics,
  type RunResult,
  type Scenario,
} from "./model";

// The drill's scenarios and records (model.ts); callers of analysis.ts import these here.
export {
  LEADER_EXPECTATION,
  parseScenarios,
  SCENARIOS,
  type MonitorSample,
  type ReadRecord,
  type Recording,
  type RunResult,
  type Scenario,
  type WriteRecord,
} from "./model";

/**
 * Patroni asks every other member's REST API (timeout 2 s, patroni/ha.py
 * fetch_node_status) before it promotes; a hung member only answers with that
 * timeout, so hang-primary gets these 2 s on top.
 */
export const PATRONI_MEMBER_CHECK_TIMEOUT_MS = 2000;

/** Default RTO budget: ttl + loop_wait + HAProxy's time to mark the new primary up + a margin (+ 2 s when the old leader hangs). */
export function defaultBudgetMs(cfg: Pick<Config, "timing" | "haproxy">, scenario?: Scenario, marginMs = 2000): number {
  const haproxyDetectMs = cfg.haproxy.interMs * Math.max(cfg.haproxy.rise, cfg.haproxy.fall);
  const hung = scenario === "hang-primary" ? PATRONI_MEMBER_CHECK_TIMEOUT_MS : 0;
  return cfg.timing.ttl * 1000 + cfg.timing.loopWait * 1000 + haproxyDetectMs + hung + marginMs;
}

/**
 * The longest stretch without an acknowledged write that ends after the fault:
 * from the last ack before it (or the fault, if there was none) to the next ack.
 * The stretch from the last ack to the end of the load counts too (writes that
 * stalled again); `end` is null only when no write was acknowledged after the
 * fault at all: writes never came back.
 */
export function writeGap(
  ackTimes: number[],
  faultAt: number,
  endAt: number,
): { start: number; end: number | null; ms: number } {
  const acks = [...ackTimes].sort((a, b) => a - b);
  let prev = faultAt;
  for (const t of acks) {
    if (t > faultAt) break;
    prev = t;
  }
  let best = { start: prev, end: null as number | null, ms: -1 };
  for (const t of acks) {
    if (t <= faultAt) continue;
    const ms = t - prev;
    if (ms > best.ms) best = { start: prev, end: t, ms };
    prev = t;
  }
  const last = acks[acks.length - 1];
  if (last === undefined || last <= faultAt) return { start: prev, end: null, ms: Math.max(0, endAt - prev) };
  const tailMs = endAt - prev;
  if (tailMs > best.ms) return { start: prev, end: endAt, ms: tailMs };
  return best as { start: number; end: number; ms: number };
}

/** Acknowledged ids that are missing (RPO) and ids present more than once. */
export function checkIds(
  acked: Iterable<number>,
  found: Map<number, number>,
): { lost: number[]; duplicates: number[] } {
  const lost: number[] = [];
  for (const id of acked) if (!found.has(id)) lost.push(id);
  const duplicates = [...found.entries()].filter(([, n]) => n > 1).map(([id]) => id);
  return { lost: lost.sort((a, b) => a - b), duplicates: duplicates.sort((a, b) => a - b) };
}

export function quantile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export const median = (values: number[]) => quantile(values, 0.5);

/** Patroni's history timestamps carry microseconds and an offset: "2026-11-21T21:50:01.123456+00:00". */
export function parsePatroniTime(ts: string | undefined): number | undefined {
  if (!ts) return undefined;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/.exec(ts.trim().replace(" ", "T"));
  if (!m) return undefined;
  const frac = (m[2] ?? "0").padEnd(3, "0").slice(0, 3);
  const zone = m[3] ?? "Z";
  const t = Date.parse(
    `${m[1]}.${frac}${zone === "Z" ? "Z" : zone.includes(":") ? zone : zone.slice(0, 3) + ":" + zone.slice(3)}`,
  );
  return Number.isNaN(t) ? undefined : t;
}

const isLeaderRunning = (m: { role: string; state: string } | undefined) =>
  !!m && m.role === "leader" && (m.state === "running" || m.state === "streaming");

/** The first sample after the fault in which the DCS view of the target differs from its role before. */
export function detectionAt(
  rec: Pick<Recording, "samples" | "faultAt" | "target" | "leaderBefore" | "syncBefore" | "scenario">,
): number | undefined {
  if (rec.scenario.startsWith("etcd-")) return undefined;
  const wasLeader = rec.target === rec.leaderBefore;
  for (const s of rec.samples) {
    if (s.at <= rec.faultAt || !s.members) continue;
    const m = s.members.find((x) => x.name === rec.target);
    const healthy = wasLeader
      ? isLeaderRunning(m)
      : !!m && m.role === "sync_standby" && (m.state === "running" || m.state === "streaming");
    if (!healthy) return s.at;
  }
  return undefined;
}

/** HAProxy routes again: the first sample, after one where the write route was disturbed, with only `leader` UP. */
export function routedAt(samples: MonitorSample[], faultAt: number, leader: string | undefined): number | undefined {
  if (!leader) return undefined;
  let disturbed = false;
  for (const s of samples) {
    if (s.at <= faultAt || !s.rwUp) continue;
    const ok = s.rwUp.length === 1 && s.rwUp[0] === leader;
    if (!ok) disturbed = true;
    else if (disturbed) return s.at;
  }
  return undefined;
}

function longestGap(times: number[], from: number, to: number): number {
  const ts = [from, ...times.filter((t) => t > from && t < to).sort((a, b) => a - b), to];
  let g = 0;
  for (let i = 1; i < ts.length; i++) g = Math.max(g, ts[i]! - ts[i - 1]!);
  return g;
}

const rel = (t: number | undefined, faultAt: number) => (t === undefined ? null : Math.max(0, t - faultAt));

export function analyze(rec: Recording, budgetMs: number): RunResult {
  const found =
    rec.found instanceof Map ? rec.found : new Map(Object.entries(rec.found).map(([k, v]) => [Number(k), v]));
  const acked = rec.writes.filter((w) => w.ok);
  const gap = writeGap(
    acked.map((w) => w.end),
    rec.faultAt,
    rec.loadEndAt,
  );
  const { lost, duplicates } = checkIds(
    acked.map((w) => w.id),
    found,
  );
  const after = rec.reads.filter((r) => r.start >= rec.faultAt);
  const readsOk = after.filter((r) => r.ok);
  const latencies = acked.map((w) => w.end - w.start);
  const durationS = Math.max(0.001, (rec.loadEndAt - rec.loadStartAt) / 1000);
  const maxPrimaries = rec.samples.reduce((mx, s) => Math.max(mx, s.primaries.length), 0);
  const metrics: RunMetrics = {
    writesAttempted: rec.writes.length,
    writesAcked: acked.length,
    writesFailed: rec.writes.length - acked.length,
    writesPerSecond: Math.round(acked.length / durationS),
    rtoMs: gap.end === null ? null : gap.ms,
    gapStartMs: gap.start - rec.faultAt,
    gapEndMs: gap.end === null ? null : gap.end - rec.faultAt,
    detectionMs: rel(detectionAt(rec), rec.faultAt),
    promotionMs:
      rec.promotedAt !== undefined && rec.timelineAfter !== rec.timelineBefore ? rec.promotedAt - rec.faultAt : null,
    routedMs: rel(routedAt(rec.samples, rec.faultAt, rec.leaderAfter), rec.faultAt),
    healthyMs: rel(rec.convergence.at, rec.faultAt),
    readsAttempted: after.length,
    readsOk: readsOk.length,
    readAvailability: after.length ? readsOk.length / after.length : null,
    longestReadGapMs: after.length
      ? longestGap(
          readsOk.map((r) => r.end),
          rec.faultAt,
          rec.loadEndAt,
        )
      : null,
    lost,
    duplicates,
    maxPrimaries,
    p50LatencyMs: quantile(latencies, 0.5),
    p99LatencyMs: quantile(latencies, 0.99),
  };

  const failures: string[] = [];
  if (lost.length)
    failures.push(`${lost.length} acknowledged write(s) lost (RPO > 0), e.g. id ${lost.slice(0, 5).join(", ")}`);
  if (duplicates.length)
    failures.push(`${duplicates.length} id(s) present more than once, e.g. ${duplicates.slice(0, 5).join(", ")}`);
  if (acked.length === 0) failures.push("no write was acknowledged at all: the load never ran");
  if (gap.end === null)
    failures.push(`no write acknowledged after the fault (${(gap.ms / 1000).toFixed(1)} s without one)`);
  else if (gap.ms > budgetMs)
    failures.push(`RTO ${(gap.ms / 1000).toFixed(1)} s exceeds the budget of ${(budgetMs / 1000).toFixed(1)} s`);
  if (maxPrimaries > 1) failures.push(`${maxPrimaries} members answered as primary at the same time (split brain)`);
  if (!rec.convergence.ok)
    failures.push(`cluster did not converge: ${rec.convergence.problems.join(", ") || "unknown"}`);
  const expect = LEADER_EXPECTATION[rec.scenario];
  if (rec.leaderAfter) {
    if (expect === "change" && rec.leaderAfter === rec.leaderBefore)
      failures.push(`leader is still ${rec.leaderBefore}: no failover happened`);
    if (expect === "same" && rec.leaderAfter !== rec.leaderBefore)
      failures.push(`leader moved ${rec.leaderBefore} -> ${rec.leaderAfter}: ${rec.scenario} must not fail over`);
  }
  if (
    expect === "change" &&
    rec.convergence.ok &&
    rec.oldLeaderRole &&
    !["replica", "sync_standby"].includes(rec.oldLeaderRole)
  ) {
    failures.push(`old primary ${rec.leaderBefore} did not rejoin as a replica (role ${rec.oldLeaderRole})`);
  }

  return {
    scenario: rec.scenario,
    round: rec.round,
    target: rec.target,
    leaderBefore: rec.leaderBefore,
    leaderAfter: rec.leaderAfter,
    timelineBefore: rec.timelineBefore,
    timelineAfter: rec.timelineAfter,
    faultAt: new Date(rec.faultAt).toISOString(),
    metrics,
    budgetMs,
    rewound: rec.rewound,
    passed: failures.length === 0,
    failures,
  };
}

/** Per-scenario medians over rounds (the figures the README reports). */
export function summarize(results: RunResult[]) {
  const by = new Map<Scenario, RunResult[]>();
  for (const r of results) by.set(r.scenario, [...(by.get(r.scenario) ?? []), r]);
  return [...by.entries()].map(([scenario, rs]) => ({
    scenario,
    rounds: rs.length,
    passed: rs.filter((r) => r.passed).length,
    medianRtoMs: median(rs.map((r) => r.metrics.rtoMs).filter((x): x is number => x !== null)),
    maxRtoMs: rs.reduce<number | null>(
      (mx, r) => (r.metrics.rtoMs === null ? mx : Math.max(mx ?? 0, r.metrics.rtoMs)),
      null,
    ),
    lostTotal: rs.reduce((n, r) => n + r.metrics.lost.length, 0),
  }));
}
