/**
 * make cluster-switchover: a planned change of leader with Patroni's own
 * patronictl, run on the leader's host as postgres (it reads the 0600
 * patroni.yml). The candidate defaults to the sync standby (it holds every
 * acknowledged commit). Done when the candidate leads, holds the VIP and the
 * cluster is healthy again.
 */
import { ToolkitError } from "../errors";
import type { Cmd } from "../exec";
import type { HostConn } from "./remote";
import { hostPaths } from "./render";
import type { ClusterHost, ClusterSettings } from "./settings";
import { clusterStatus, type ClusterStatus } from "./status";

/** Pure: patronictl on the leader's host, naming leader and candidate (no prompt). */
export const switchoverCommand = (s: ClusterSettings, leader: ClusterHost, candidate: string): Cmd => [
  "sudo",
  "-n",
  "-u",
  "postgres",
  "patronictl",
  "-c",
  hostPaths(s, leader).patroniYml,
  "switchover",
  s.name,
  "--leader",
  leader.name,
  "--candidate",
  candidate,
  "--force",
];

/** The member to hand over to (pure): TO when given (a member name), else the sync standby. */
export function pickCandidate(
  s: ClusterSettings,
  st: Pick<ClusterStatus, "leader" | "syncStandby" | "members">,
  to?: string,
): string {
  const names = s.hosts.map((h) => h.name);
  if (to !== undefined && to !== "") {
    if (!names.includes(to))
      throw new ToolkitError(
        "NO_MEMBER",
        `TO=${to}: cluster ${s.name} has no member ${to}`,
        `one of: ${names.join(", ")}`,
      );
    if (to === st.leader)
      throw new ToolkitError(
        "ALREADY_LEADER",
        `${to} already leads cluster ${s.name}`,
        "nothing to do; name another member, or leave TO out (the sync standby)",
      );
    const m = st.members.find((x) => x.name === to);
    if (!m || !["running", "streaming"].includes(m.state))
      throw new ToolkitError(
        "CANDIDATE_NOT_RUNNING",
        `${to} is not a running replica (${m?.state ?? "absent"})`,
        `run make cluster-status CLUSTER=${s.name}`,
      );
    // synchronous_mode is always on here: Patroni answers 412 for any other candidate (and patronictl exits 0).
    if (to !== st.syncStandby)
      throw new ToolkitError(
        "CANDIDATE_NOT_SYNC",
        `${to} is not the sync standby (${st.syncStandby ?? "none"}): in synchronous mode Patroni hands over only to the sync standby, which holds every acknowledged commit`,
        `leave TO out, or run the switchover twice (first to ${st.syncStandby ?? "the sync standby"}; ${to} may become sync standby after)`,
      );
    return to;
  }
  if (!st.syncStandby)
    throw new ToolkitError(
      "NO_SYNC_STANDBY",
      `cluster ${s.name} has no sync standby to hand over to`,
      `name one with TO=<member>, or wait for make cluster-status CLUSTER=${s.name} to be healthy`,
    );
  return st.syncStandby;
}

export async function switchover(
  s: ClusterSettings,
  conns: HostConn[],
  to?: string,
): Promise<{ from: string; to: string; ms: number }> {
  const before = await clusterStatus(s, conns);
  if (!before.leader)
    throw new ToolkitError("NO_LEADER", `cluster ${s.name} has no leader`, `run make cluster-status CLUSTER=${s.name}`);
  const candidate = pickCandidate(s, before, to);
  const leaderConn = conns.find((c) => c.host.name === before.leader)!;
  const t0 = Date.now();
  const r = await leaderConn.exec(switchoverCommand(s, leaderConn.host, candidate), {
    nothrow: true,
    timeoutMs: 120_000,
  });
  // patronictl prints "Switchover failed, details: ..." and still exits 0.
  const refused = (r.stdout + r.stderr).split("\n").find((l) => /Switchover failed/i.test(l));
  if (r.code !== 0 || refused)
    throw new ToolkitError(
      "SWITCHOVER_FAILED",
      `patronictl switchover ${before.leader} -> ${candidate} failed: ${refused?.trim() ?? `exit ${r.code}`}`,
      `see Patroni's log on ${leaderConn.host.ssh} (/var/log/pgplatform/${s.name}/patroni.log under its HOST_ROOT)`,
      (r.stderr || r.stdout).trim().split("\n").slice(-6).join("\n"),
    );
  for (const deadline = Date.now() + 90_000; ; ) {
    const st = await clusterStatus(s, conns);
    if (st.leader === candidate && st.vipHolder === candidate && st.health.ok)
      return { from: before.leader, to: candidate, ms: Date.now() - t0 };
    if (Date.now() > deadline)
      throw new ToolkitError(
        "SWITCHOVER_NOT_SETTLED",
        `${candidate} does not lead with the VIP and a healthy cluster within 90 s (${st.health.problems.join(", ")})`,
        `run make cluster-status CLUSTER=${s.name}`,
      );
    await Bun.sleep(500);
  }
}
