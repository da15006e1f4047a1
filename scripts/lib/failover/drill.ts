/**
 * One failover drill run: a healthy cluster, load through HAProxy, a fault,
 * recovery, convergence, then the books are checked. Returns the recording
 * and its analysis; never prints (progress goes through a callback).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import type { Config, Member } from "../config";
import { ToolkitError } from "../errors";
import { haproxyBackends } from "../haproxy";
import { etcdHealthy, logFile, postmasterPid, procSpecs } from "../native";
import { assessCluster, clusterView, isRunning, restGet, restSend, type ClusterView } from "../patroni";
import { connect, quoteIdent, rwTarget } from "../pg";
import { runningPid, startProc, stopProc } from "../procs";
import { analyze, defaultBudgetMs, parsePatroniTime, type MonitorSample, type Recording, type RunResult, type Scenario } from "./analysis";
import { etcdLeader, memberProcs, requirePids, signalAll } from "./faults";
import { createTableSql, DRILL_SCHEMA, Load, tableRef, type LoadOptions } from "./load";

export interface DrillOptions extends LoadOptions {
  /** RTO budget for every scenario; default: derived per scenario from the HA timing (defaultBudgetMs) */
  budgetMs?: number;
  /** load before the fault, to have a baseline */
  warmupMs: number;
  /** how long hang-primary keeps the leader stopped (must exceed ttl) */
  hangMs: number;
  /** how long the etcd scenarios keep members down (must exceed ttl, so a lost lock would show) */
  holdMs: number;
  /** switchover target; default: the sync standby */
  candidate?: string;
  convergeTimeoutMs: number;
  keepData: boolean;
}

export type DrillProgress = (message: string) => void;

export interface DrillRun {
  result: RunResult;
  recording: Recording & { connectFailures: number[] };
}

const sleep = (ms: number) => Bun.sleep(ms);
const byName = (cfg: Config, name: string): Member => cfg.members.find((m) => m.name === name)!;

/** Default drill settings derived from the HA timing. */
export function defaultDrillOptions(cfg: Config): DrillOptions {
  const ttlMs = cfg.timing.ttl * 1000;
  return {
    writers: 4,
    ratePerWriter: 50,
    writeTimeoutMs: 20_000,
    warmupMs: 2000,
    hangMs: ttlMs + 5000,
    holdMs: ttlMs + 5000,
    convergeTimeoutMs: 120_000,
    keepData: false,
  };
}

/** Polls roles, /primary answers and HAProxy's write backends every 200 ms. */
class Monitor {
  readonly samples: MonitorSample[] = [];
  private stopping = false;
  private loop?: Promise<void>;
  constructor(private cfg: Config, private avoid: string) {}

  start() {
    this.loop = (async () => {
      while (!this.stopping) {
        const at = Date.now();
        const [primaries, view, backends] = await Promise.all([
          Promise.all(this.cfg.members.map(async (m) => ((await restGet(m, "/primary", 600))?.status === 200 ? m.name : undefined))),
          this.view(),
          haproxyBackends(this.cfg),
        ]);
        this.samples.push({
          at,
          primaries: primaries.filter((x): x is string => !!x),
          members: view ? view.members.map((m) => ({ name: m.name, role: m.role, state: m.state, timeline: m.timeline })) : null,
          rwUp: backends ? backends.filter((b) => b.proxy === "postgres_rw" && b.status === "UP").map((b) => b.server) : null,
        });
        await sleep(Math.max(0, 200 - (Date.now() - at)));
      }
    })();
  }

  /** Ask a member other than the fault's target first: a hung member would answer with stale roles. */
  private async view(): Promise<ClusterView | undefined> {
    const order = [...this.cfg.members].sort((a, b) => Number(a.name === this.avoid) - Number(b.name === this.avoid));
    for (const m of order) {
      const r = await restGet(m, "/cluster", 600);
      if (r && r.status === 200 && Array.isArray(r.body?.members)) return r.body as ClusterView;
    }
    return undefined;
  }

  async stop() {
    this.stopping = true;
    await this.loop;
  }
}

interface Converged {
  ok: boolean;
  at?: number;
  problems: string[];
  view?: ClusterView;
}

/** 3 running members, one leader, one sync standby, one timeline, HAProxy routing to the leader, every process up. */
export async function convergence(cfg: Config): Promise<Converged> {
  const view = await clusterView(cfg);
  const h = assessCluster(cfg, view);
  const problems = [...h.problems];
  if (view) {
    const tls = new Set(view.members.filter(isRunning).map((m) => m.timeline));
    if (tls.size > 1) problems.push(`members on ${tls.size} timelines (${[...tls].join(", ")})`);
    const lagging = view.members.filter((m) => m.role !== "leader" && typeof m.lag === "number" && m.lag > cfg.timing.maximumLagOnFailover);
    if (lagging.length) problems.push(`lagging: ${lagging.map((m) => m.name).join(", ")}`);
  }
  const backends = await haproxyBackends(cfg);
  if (!backends) problems.push("HAProxy stats do not answer");
  else {
    const rw = backends.filter((b) => b.proxy === "postgres_rw" && b.status === "UP").map((b) => b.server);
    if (rw.length !== 1 || rw[0] !== h.leader) problems.push(`HAProxy read-write routes to [${rw.join(", ")}], leader is ${h.leader ?? "none"}`);
    const ro = backends.filter((b) => b.proxy === "postgres_ro" && b.status === "UP").length;
    if (ro !== cfg.members.length - 1) problems.push(`HAProxy read-only has ${ro} replicas up`);
  }
  const specs = procSpecs(cfg);
  const down = [...specs.etcd, ...specs.patroni].filter((s) => !runningPid(s)).map((s) => s.name);
  if (down.length) problems.push(`not running: ${down.join(", ")}`);
  return { ok: problems.length === 0, problems, view };
}

export async function waitConverged(cfg: Config, timeoutMs: number): Promise<Converged> {
  const deadline = Date.now() + timeoutMs;
  let last: Converged = { ok: false, problems: ["not checked"] };
  while (Date.now() < deadline) {
    const at = Date.now();
    last = await convergence(cfg);
    if (last.ok) return { ...last, at };
    await sleep(250);
  }
  return last;
}

async function waitUntil(timeoutMs: number, probe: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await sleep(200);
  }
  return false;
}

const leaderOf = (v: ClusterView | undefined) => v?.members.find((m) => m.role === "leader" && isRunning(m));

/** Restart a member's Patroni (it starts Postgres, and rewinds it when it must). */
function restartPatroni(cfg: Config, m: Member) {
  const spec = procSpecs(cfg).patroni[m.index]!;
  if (!runningPid(spec)) startProc(spec);
}

/**
 * The undo of a fault in progress (restart what was killed, SIGCONT what was
 * stopped, start the stopped etcd members). Synchronous, so the entry script
 * can run it from an exit handler when the drill is interrupted mid-fault:
 * a Ctrl-C must not leave the cluster a member short.
 */
let pendingUndo: (() => void) | undefined;
export function undoPendingFault(): void {
  const undo = pendingUndo;
  pendingUndo = undefined;
  if (undo) undo();
}

interface FaultContext {
  cfg: Config;
  opts: DrillOptions;
  budgetMs: number;
  leader: string;
  sync: string;
  progress: DrillProgress;
  marks: { faultAt?: number; restoreAt?: number };
}

/** Deal the fault and undo it (restart, SIGCONT, restore); resolves when the drill may wait for convergence. */
async function dealFault(scenario: Scenario, ctx: FaultContext): Promise<void> {
  const { cfg, opts, progress, marks } = ctx;
  const leader = byName(cfg, ctx.leader);
  const failoverWait = ctx.budgetMs + 30_000;
  const newLeader = () =>
    waitUntil(failoverWait, async () => {
      const l = leaderOf(await clusterView(cfg));
      return !!l && l.name !== ctx.leader;
    });

  switch (scenario) {
    case "kill-primary": {
      const procs = memberProcs(cfg, leader);
      requirePids(`leader ${leader.name}`, [procs.patroni, procs.postmaster]);
      pendingUndo = () => restartPatroni(cfg, leader);
      marks.faultAt = Date.now();
      signalAll(procs.all, "SIGKILL");
      progress(`SIGKILL ${leader.name}: Patroni and ${procs.all.length - 1} Postgres processes`);
      if (!(await newLeader())) progress("no new leader elected in time");
      await sleep(1000);
      marks.restoreAt = Date.now();
      undoPendingFault();
      progress(`restarted ${leader.name}'s Patroni (it must rejoin as a replica)`);
      return;
    }
    case "crash-postgres": {
      const procs = memberProcs(cfg, leader);
      const [pm] = requirePids(`postmaster of ${leader.name}`, [procs.postmaster]);
      marks.faultAt = Date.now();
      signalAll([pm!], "SIGKILL");
      progress(`SIGKILL ${leader.name}'s postmaster (pid ${pm}); Patroni lives`);
      // Convergence is only meaningful once Patroni has acted: a new postmaster, or a new leader.
      const acted = await waitUntil(failoverWait, async () => {
        const now = postmasterPid(leader);
        if (now && now !== pm) return true;
        const l = leaderOf(await clusterView(cfg));
        return !!l && l.name !== ctx.leader;
      });
      progress(acted ? `Patroni recovered: postmaster ${postmasterPid(leader) ?? "-"}, leader ${leaderOf(await clusterView(cfg))?.name ?? "none yet"}` : "Patroni did not restart Postgres or fail over in time");
      return;
    }
    case "hang-primary": {
      const procs = memberProcs(cfg, leader);
      requirePids(`leader ${leader.name}`, [procs.patroni, procs.postmaster]);
      // Whatever ran (or was forked) under the stopped processes gets its SIGCONT too.
      pendingUndo = () => void signalAll([...new Set([...procs.all, ...memberProcs(cfg, leader).all])], "SIGCONT");
      marks.faultAt = Date.now();
      signalAll(procs.all, "SIGSTOP");
      progress(`SIGSTOP ${leader.name} (Patroni and Postgres) for ${(opts.hangMs / 1000).toFixed(0)} s`);
      await sleep(opts.hangMs);
      marks.restoreAt = Date.now();
      undoPendingFault();
      progress(`SIGCONT ${leader.name}: it must demote and rejoin`);
      return;
    }
    case "switchover": {
      const candidate = opts.candidate ?? ctx.sync;
      if (candidate === ctx.leader) throw new ToolkitError("BAD_CANDIDATE", `${candidate} is already the leader`, "pick a replica: --candidate pgN (see `make status`)");
      marks.faultAt = Date.now();
      const res = await restSend(cfg, leader, "POST", "/switchover", { leader: ctx.leader, candidate }, 60_000);
      progress(`switchover ${ctx.leader} -> ${candidate}: ${res.status} ${res.text.trim().slice(0, 80)}`);
      if (res.status !== 200) throw new ToolkitError("SWITCHOVER_REFUSED", `Patroni refused the switchover to ${candidate}: ${res.status} ${res.text.trim()}`, "the candidate must be a running replica (the sync standby in synchronous mode); see `make status`");
      return;
    }
    case "kill-sync-standby": {
      const sync = byName(cfg, ctx.sync);
      const procs = memberProcs(cfg, sync);
      requirePids(`sync standby ${sync.name}`, [procs.patroni, procs.postmaster]);
      pendingUndo = () => restartPatroni(cfg, sync);
      marks.faultAt = Date.now();
      signalAll(procs.all, "SIGKILL");
      progress(`SIGKILL sync standby ${sync.name}`);
      const moved = await waitUntil(failoverWait, async () => {
        const v = await clusterView(cfg);
        return !!v?.members.some((m) => m.role === "sync_standby" && m.name !== sync.name);
      });
      progress(moved ? "synchronous standby moved to the other replica" : "synchronous standby did not move in time");
      await sleep(1000);
      marks.restoreAt = Date.now();
      undoPendingFault();
      progress(`restarted ${sync.name}'s Patroni`);
      return;
    }
    case "etcd-member-loss":
    case "etcd-quorum-loss": {
      const specs = procSpecs(cfg).etcd;
      const first = (await etcdLeader(cfg)) ?? cfg.members[0]!;
      const victims = [first];
      if (scenario === "etcd-quorum-loss") victims.push(cfg.members.find((m) => m !== first)!);
      pendingUndo = () => {
        for (const m of victims) if (!runningPid(specs[m.index]!)) startProc(specs[m.index]!);
      };
      marks.faultAt = Date.now();
      await Promise.all(victims.map((m) => stopProc(specs[m.index]!, 5000)));
      progress(`stopped ${victims.map((m) => m.etcdName).join(", ")} for ${(opts.holdMs / 1000).toFixed(0)} s${scenario === "etcd-quorum-loss" ? " (no quorum: failsafe mode must keep the primary)" : ""}`);
      await sleep(opts.holdMs);
      marks.restoreAt = Date.now();
      undoPendingFault();
      const back = await waitUntil(30_000, async () => (await Promise.all(victims.map((m) => etcdHealthy(cfg, m)))).every(Boolean));
      progress(back ? `restored ${victims.map((m) => m.etcdName).join(", ")}` : "etcd members did not come back in 30 s");
      return;
    }
  }
}

/** Tables left by earlier drills (--keep-data, or an interrupted run) go before a new one starts. */
export async function dropDrillTables(cfg: Config): Promise<void> {
  const c = await connect(cfg, { target: rwTarget(cfg) });
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${quoteIdent(DRILL_SCHEMA)} CASCADE`);
  } finally {
    await c.end().catch(() => {});
  }
}

/** Did the old leader's Patroni run pg_rewind after `offset` bytes of its log? */
function rewoundSince(path: string, offset: number): boolean {
  if (!existsSync(path)) return false;
  const text = readFileSync(path, "utf8").slice(offset);
  return /pg_rewind/i.test(text);
}

const logSize = (path: string) => (existsSync(path) ? statSync(path).size : 0);

export async function runDrill(cfg: Config, scenario: Scenario, round: number, opts: DrillOptions, progress: DrillProgress): Promise<DrillRun> {
  // 1. A healthy starting point: nothing to measure on a cluster that is already broken.
  const start = await waitConverged(cfg, 60_000);
  if (!start.ok) throw new ToolkitError("CLUSTER_UNHEALTHY", `cluster is not healthy before ${scenario}: ${start.problems.join(", ")}`, "run `make status`; `make dev-up` repairs a stopped member");
  const before = assessCluster(cfg, start.view);
  const leaderBefore = before.leader!;
  const syncBefore = before.syncStandby ?? cfg.members.find((m) => m.name !== leaderBefore)!.name;
  const timelineBefore = start.view?.members.find((m) => m.name === leaderBefore)?.timeline;
  if (scenario === "switchover" && opts.candidate && !cfg.members.some((m) => m.name === opts.candidate)) {
    throw new ToolkitError("BAD_CANDIDATE", `no member named ${opts.candidate}`, `pick one of ${cfg.members.map((m) => m.name).join(", ")}`);
  }
  let candidate = opts.candidate;
  if (scenario === "switchover" && candidate === leaderBefore) {
    // With ROUNDS > 1 the named replica leads after round 1: move back to the sync standby instead.
    progress(`${candidate} already leads: switching over to the sync standby ${syncBefore} this round`);
    candidate = syncBefore;
  }
  const target = scenario === "kill-sync-standby" ? syncBefore : leaderBefore;
  const budgetMs = opts.budgetMs ?? defaultBudgetMs(cfg, scenario);
  progress(`leader ${leaderBefore}, sync standby ${syncBefore}, timeline ${timelineBefore ?? "?"}`);

  // 2. A fresh table per run.
  const table = `w_${scenario.replace(/-/g, "_")}_r${round}_${Date.now()}`;
  const c = await connect(cfg, { target: rwTarget(cfg) });
  try {
    for (const sql of createTableSql(table)) await c.query(sql);
  } finally {
    await c.end().catch(() => {});
  }

  const oldLeaderLog = logFile(cfg, leaderBefore);
  const logOffset = logSize(oldLeaderLog);
  const monitor = new Monitor(cfg, target);
  const load = new Load(cfg, table, opts);
  monitor.start();
  const loadStartAt = Date.now();
  load.start();
  const marks: { faultAt?: number; restoreAt?: number } = {};
  let converged: Converged;
  try {
    await sleep(opts.warmupMs);
    progress(`load: ${opts.writers} writers x ${opts.ratePerWriter}/s, ${load.writes.filter((w) => w.ok).length} writes acknowledged in warm-up`);
    await dealFault(scenario, { cfg, opts: { ...opts, candidate }, budgetMs, leader: leaderBefore, sync: syncBefore, progress, marks });
    converged = await waitConverged(cfg, opts.convergeTimeoutMs);
    progress(converged.ok ? `converged ${(((converged.at ?? 0) - marks.faultAt!) / 1000).toFixed(1)} s after the fault` : `did not converge: ${converged.problems.join(", ")}`);
    // A little load after convergence, so "writes came back" is not decided by the last millisecond.
    await sleep(1000);
  } finally {
    await load.stop();
    await monitor.stop();
  }
  const loadEndAt = load.stoppedAt ?? Date.now();
  if (marks.faultAt === undefined) throw new ToolkitError("NO_FAULT", `${scenario}: the fault was never dealt`);

  // 3. The books: every acknowledged id on the (new) primary.
  const found = new Map<number, number>();
  const v = await connect(cfg, { target: rwTarget(cfg), timeoutMs: 10_000 });
  try {
    const r = await v.query(`SELECT id, count(*)::int AS n FROM ${tableRef(table)} GROUP BY id`);
    for (const row of r.rows) found.set(Number(row.id), row.n);
    if (!opts.keepData) await v.query(`DROP TABLE ${tableRef(table)}`);
  } finally {
    await v.end().catch(() => {});
  }

  const after = await clusterView(cfg);
  const leaderAfter = leaderOf(after)?.name;
  const timelineAfter = after?.members.find((m) => m.name === leaderAfter)?.timeline;
  let promotedAt: number | undefined;
  if (leaderAfter && timelineAfter !== undefined && timelineAfter !== timelineBefore) {
    const h = await restGet(byName(cfg, leaderAfter), "/history", 2000);
    const last = Array.isArray(h?.body) ? h!.body[h!.body.length - 1] : undefined;
    promotedAt = Array.isArray(last) ? parsePatroniTime(String(last[3])) : undefined;
  }
  const recording = {
    scenario,
    round,
    target,
    leaderBefore,
    syncBefore,
    timelineBefore,
    loadStartAt,
    faultAt: marks.faultAt,
    restoreAt: marks.restoreAt,
    loadEndAt,
    writes: load.writes,
    reads: load.reads,
    connectFailures: load.connectFailures,
    samples: monitor.samples,
    found,
    promotedAt,
    leaderAfter,
    timelineAfter,
    convergence: { ok: converged.ok, at: converged.at, problems: converged.problems },
    rewound: leaderAfter !== leaderBefore ? rewoundSince(oldLeaderLog, logOffset) : undefined,
    oldLeaderRole: after?.members.find((m) => m.name === leaderBefore)?.role,
  };
  return { result: analyze(recording, budgetMs), recording };
}
