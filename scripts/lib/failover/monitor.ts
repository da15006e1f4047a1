/**
 * What the drill watches: a 200 ms sampler of roles, /primary answers and
 * HAProxy's write backends, and the convergence check (3 running members, one
 * leader, one sync standby, one timeline, HAProxy on the leader, every process up).
 */
import type { Config } from "../config";
import { haproxyBackends } from "../haproxy";
import { assessCluster, clusterView, isRunning, restGet, type ClusterView } from "../patroni";
import type { Runtime } from "../runtime";
import type { MonitorSample } from "./analysis";

const sleep = (ms: number) => Bun.sleep(ms);

/** Polls roles, /primary answers and HAProxy's write backends every 200 ms. */
export class Monitor {
  readonly samples: MonitorSample[] = [];
  private stopping = false;
  private loop?: Promise<void>;
  constructor(
    private cfg: Config,
    private avoid: string,
  ) {}

  start() {
    this.loop = (async () => {
      while (!this.stopping) {
        const at = Date.now();
        const [primaries, view, backends] = await Promise.all([
          Promise.all(
            this.cfg.members.map(async (m) =>
              (await restGet(m, "/primary", 600))?.status === 200 ? m.name : undefined,
            ),
          ),
          this.view(),
          haproxyBackends(this.cfg),
        ]);
        this.samples.push({
          at,
          primaries: primaries.filter((x): x is string => !!x),
          members: view
            ? view.members.map((m) => ({ name: m.name, role: m.role, state: m.state, timeline: m.timeline }))
            : null,
          rwUp: backends
            ? backends.filter((b) => b.proxy === "postgres_rw" && b.status === "UP").map((b) => b.server)
            : null,
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

export interface Converged {
  ok: boolean;
  at?: number;
  problems: string[];
  view?: ClusterView;
}

/** 3 running members, one leader, one sync standby, one timeline, HAProxy routing to the leader, every process up. */
export async function convergence(cfg: Config, rt: Runtime): Promise<Converged> {
  const view = await clusterView(cfg);
  const h = assessCluster(cfg, view);
  const problems = [...h.problems];
  if (view) {
    const tls = new Set(view.members.filter(isRunning).map((m) => m.timeline));
    if (tls.size > 1) problems.push(`members on ${tls.size} timelines (${[...tls].join(", ")})`);
    const lagging = view.members.filter(
      (m) => m.role !== "leader" && typeof m.lag === "number" && m.lag > cfg.timing.maximumLagOnFailover,
    );
    if (lagging.length) problems.push(`lagging: ${lagging.map((m) => m.name).join(", ")}`);
  }
  const backends = await haproxyBackends(cfg);
  if (!backends) problems.push("HAProxy stats do not answer");
  else {
    const rw = backends.filter((b) => b.proxy === "postgres_rw" && b.status === "UP").map((b) => b.server);
    if (rw.length !== 1 || rw[0] !== h.leader)
      problems.push(`HAProxy read-write routes to [${rw.join(", ")}], leader is ${h.leader ?? "none"}`);
    const ro = backends.filter((b) => b.proxy === "postgres_ro" && b.status === "UP").length;
    if (ro !== cfg.members.length - 1) problems.push(`HAProxy read-only has ${ro} replicas up`);
  }
  const running = new Set((await rt.status()).filter((p) => p.pid).map((p) => p.name));
  const down = [...cfg.members.map((m) => m.etcdName), ...cfg.members.map((m) => m.name)].filter(
    (name) => !running.has(name),
  );
  if (down.length) problems.push(`not running: ${down.join(", ")}`);
  return { ok: problems.length === 0, problems, view };
}

export async function waitConverged(cfg: Config, rt: Runtime, timeoutMs: number): Promise<Converged> {
  const deadline = Date.now() + timeoutMs;
  let last: Converged = { ok: false, problems: ["not checked"] };
  while (Date.now() < deadline) {
    const at = Date.now();
    last = await convergence(cfg, rt);
    if (last.ok) return { ...last, at };
    await sleep(250);
  }
  return last;
}

export async function waitUntil(timeoutMs: number, probe: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await sleep(200);
  }
  return false;
}

export const leaderOf = (v: ClusterView | undefined) => v?.members.find((m) => m.role === "leader" && isRunning(m));
