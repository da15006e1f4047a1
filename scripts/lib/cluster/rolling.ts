/**
 * make cluster-rolling-restart: every member restarted (Patroni and the
 * Postgres it runs: a new binary, a changed setting that needs a restart),
 * one at a time, so the cluster always keeps a leader and a sync standby:
 * the replicas first (the plain replica, then the sync standby), each
 * waited for until it streams again; then a switchover to the sync standby
 * (switchover.ts, the VIP follows); then the old leader, now a replica.
 */
import { ToolkitError } from "../errors";
import { startCommand, stopCommand } from "./commands";
import type { HostConn } from "./remote";
import type { ClusterHost, ClusterSettings } from "./settings";
import { clusterStatus, type ClusterStatus } from "./status";
import { switchover } from "./switchover";

export type RollingStep = { action: "restart"; member: string } | { action: "switchover"; from: string };

/** Pure: the order of a rolling restart for one status. Refused unless healthy (a restart would cost the sync standby). */
export function rollingPlan(
  s: ClusterSettings,
  st: Pick<ClusterStatus, "leader" | "syncStandby" | "health">,
): RollingStep[] {
  if (!st.health.ok || !st.leader || !st.syncStandby)
    throw new ToolkitError(
      "CLUSTER_NOT_HEALTHY",
      `cluster ${s.name} is not healthy (${st.health.problems.join(", ") || "no leader or sync standby"}): a rolling restart needs 3 running members with a sync standby`,
      `run make cluster-status CLUSTER=${s.name}; make cluster-deploy CLUSTER=${s.name} starts what is stopped`,
    );
  const plain = s.hosts.map((h) => h.name).filter((n) => n !== st.leader && n !== st.syncStandby);
  return [
    ...plain.map((member) => ({ action: "restart" as const, member })),
    { action: "restart", member: st.syncStandby },
    { action: "switchover", from: st.leader },
    { action: "restart", member: st.leader },
  ];
}

export interface RollingResult {
  /** per step: what, when it began (epoch ms), and ms until the cluster was healthy again */
  steps: { step: string; at: number; ms: number }[];
  switchover: { from: string; to: string; ms: number };
  leader: string;
  ms: number;
}

/** Patroni's own view of one member: a replica whose Postgres started after `since` and streams. */
async function restartedReplica(s: ClusterSettings, h: ClusterHost, since: number): Promise<boolean> {
  try {
    const r = await fetch(`http://${h.address}:${s.ports.patroni}/patroni`, { signal: AbortSignal.timeout(3000) });
    const b = (await r.json()) as { state?: string; role?: string; postmaster_start_time?: string };
    const started = Date.parse(b.postmaster_start_time?.replace(" ", "T") ?? "");
    return b.state === "running" && b.role === "replica" && started >= since - 1000;
  } catch {
    return false;
  }
}

/** Stop Patroni on a host (it stops its Postgres), start it again, wait until it streams and the cluster is healthy. */
export async function restartMember(s: ClusterSettings, conns: HostConn[], name: string, timeoutMs = 180_000) {
  const c = conns.find((x) => x.host.name === name)!;
  const t0 = Date.now();
  for (const cmd of [stopCommand(s, c.host, "patroni"), startCommand(s, c.host, "patroni")]) {
    const r = await c.exec(cmd, { nothrow: true, timeoutMs: 60_000 });
    if (r.code !== 0)
      throw new ToolkitError(
        "RESTART_FAILED",
        `${cmd.slice(2, 4).join(" ")} patroni on ${c.host.ssh} failed (exit ${r.code})`,
        `see /var/log/pgplatform/${s.name}/patroni.log on ${c.host.ssh}; make cluster-deploy CLUSTER=${s.name} starts it again`,
        r.stderr.trim().split("\n").slice(-5).join("\n"),
      );
  }
  for (const deadline = Date.now() + timeoutMs; ; await Bun.sleep(500)) {
    if (await restartedReplica(s, c.host, t0)) {
      const st = await clusterStatus(s, conns);
      const m = st.members.find((x) => x.name === name);
      if (st.health.ok && m && m.role !== "leader" && ["streaming", "running"].includes(m.state))
        return Date.now() - t0;
    }
    if (Date.now() > deadline)
      throw new ToolkitError(
        "RESTART_NOT_SETTLED",
        `${name} does not stream again with a healthy cluster within ${timeoutMs / 1000} s of its restart`,
        `run make cluster-status CLUSTER=${s.name}; the rolling restart stopped here (re-run it when healthy)`,
      );
  }
}

export async function rollingRestart(
  s: ClusterSettings,
  conns: HostConn[],
  log: (m: string) => void = () => {},
): Promise<RollingResult> {
  const t0 = Date.now();
  const plan = rollingPlan(s, await clusterStatus(s, conns));
  const steps: RollingResult["steps"] = [];
  let sw: RollingResult["switchover"] | undefined;
  for (const step of plan) {
    if (step.action === "restart") {
      const at = Date.now();
      const ms = await restartMember(s, conns, step.member);
      steps.push({ step: `restart ${step.member}`, at, ms });
      log(`${step.member} restarted, streaming again after ${(ms / 1000).toFixed(1)} s`);
    } else {
      const at = Date.now();
      sw = await switchover(s, conns); // to whoever is the sync standby now
      steps.push({ step: `switchover ${sw.from} -> ${sw.to}`, at, ms: sw.ms });
      log(`switchover ${sw.from} -> ${sw.to} (VIP follows), healthy after ${(sw.ms / 1000).toFixed(1)} s`);
    }
  }
  return { steps, switchover: sw!, leader: sw!.to, ms: Date.now() - t0 };
}
