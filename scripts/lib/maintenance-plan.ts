/**
 * The plans of a planned switchover and a member restart: which member leads, which takes over, and
 * the steps, as data (pure: unit-tested from a cluster view; maintenance.ts runs them).
 */
import { ToolkitError } from "./errors";
import { isRunning, type ClusterView } from "./patroni";

export type MaintStep =
  | "preflight"
  | "checkpoint"
  | "pause"
  | "switchover"
  | "wait-route"
  | "resume"
  | "restart"
  | "wait-member";

export interface MaintPlan {
  op: "switchover" | "restart-member";
  leader: string;
  /** the member that becomes leader (switchover steps) */
  candidate?: string;
  /** the member restarted (restart-member) */
  member?: string;
  steps: MaintStep[];
}

/**
 * The steps that move the leader with clients held in the pooler. The CHECKPOINT comes first, while
 * clients still run: Patroni's graceful demote checkpoints before stopping Postgres, and that flush
 * then happens inside the pause (0.2 s after 10 s of pgbench -c 50 on scale 10, in the leader's log),
 * so the one before it leaves the demote's only the pages written since.
 */
const SWITCH: MaintStep[] = ["checkpoint", "pause", "switchover", "wait-route", "resume"];

function leaderOf(view: ClusterView): string {
  const leaders = view.members.filter((m) => m.role === "leader");
  if (leaders.length !== 1)
    throw new ToolkitError(
      "NO_LEADER",
      `the cluster has ${leaders.length} leaders`,
      "wait for it to settle; see `make status`",
    );
  return leaders[0]!.name;
}

/** Default target: the synchronous standby (it holds every acknowledged commit), else a running replica. */
function pickCandidate(view: ClusterView, leader: string, to?: string): string {
  const names = view.members.map((m) => m.name);
  if (to !== undefined) {
    if (!names.includes(to))
      throw new ToolkitError(
        "BAD_INPUT",
        `TO=${to} is not a member (members: ${names.join(", ")})`,
        `pick one of ${names.filter((n) => n !== leader).join(", ")}`,
      );
    if (to === leader)
      throw new ToolkitError(
        "BAD_INPUT",
        `TO=${to} is already the leader`,
        `pick one of ${names.filter((n) => n !== leader).join(", ")}`,
      );
    const m = view.members.find((x) => x.name === to)!;
    if (!isRunning(m))
      throw new ToolkitError("BAD_INPUT", `TO=${to} is not running (state ${m.state})`, "see `make status`");
    return to;
  }
  const sync = view.members.find((m) => m.role === "sync_standby" && isRunning(m));
  const any = view.members.find((m) => m.name !== leader && isRunning(m));
  const c = sync ?? any;
  if (!c) throw new ToolkitError("NO_CANDIDATE", "no running replica to switch over to", "see `make status`");
  return c.name;
}

export function planSwitchover(view: ClusterView, to?: string): MaintPlan {
  const leader = leaderOf(view);
  return { op: "switchover", leader, candidate: pickCandidate(view, leader, to), steps: ["preflight", ...SWITCH] };
}

/**
 * A replica restarts in place (the pooler never routes to it); the leader is switched away first,
 * inside PAUSE/RESUME, and restarted once it has rejoined as a replica (Patroni refuses a restart mid-demote).
 */
export function planRestart(view: ClusterView, member: string): MaintPlan {
  const leader = leaderOf(view);
  const names = view.members.map((m) => m.name);
  if (!names.includes(member))
    throw new ToolkitError(
      "BAD_INPUT",
      `MEMBER=${member} is not a member (members: ${names.join(", ")})`,
      `pick one of ${names.join(", ")}`,
    );
  if (member !== leader)
    return { op: "restart-member", leader, member, steps: ["preflight", "restart", "wait-member"] };
  return {
    op: "restart-member",
    leader,
    member,
    candidate: pickCandidate(view, leader),
    steps: ["preflight", ...SWITCH, "wait-member", "restart", "wait-member"],
  };
}
