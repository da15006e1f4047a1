/**
 * How each fault is dealt, against the processes this stack started. A host
 * dying is Patroni and every Postgres process of the member dying at once:
 * Patroni starts the postmaster in its own session (it outlives Patroni), so
 * both process trees are walked. We only ever signal pids whose command line
 * names this member's own dir or this cluster.
 */
import { etcdFetch } from "../etcd-client";
import { readdirSync, readFileSync } from "node:fs";
import type { Config, Member } from "../config";
import { ToolkitError } from "../errors";
import { cmdlineOf } from "../procs";
import type { Runtime } from "../runtime";

export type Signal = "SIGKILL" | "SIGSTOP" | "SIGCONT" | "SIGTERM";

/** Parent pid, from /proc/<pid>/stat (field 4, after the parenthesised command). */
export function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** A pid and everything below it (Postgres backends call setsid(), so sessions do not group them; the tree does). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const pp = parentOf(Number(d));
    if (pp !== undefined) children.set(pp, [...(children.get(pp) ?? []), Number(d)]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

export interface MemberProcs {
  patroni?: number;
  postmaster?: number;
  /** Patroni, the postmaster and every backend, walsender and helper of the member */
  all: number[];
}

/** The member's Patroni and postmaster from the runtime, and their process trees (memberTree). */
export async function memberProcs(cfg: Config, rt: Runtime, m: Member): Promise<MemberProcs> {
  const { main, postmaster } = await rt.pids(m.name);
  return memberTree(cfg, m, { patroni: main, postmaster });
}

/** Every process under the member's Patroni and postmaster (synchronous: an undo in an exit handler re-walks it). */
export function memberTree(
  cfg: Config,
  m: Member,
  { patroni, postmaster }: { patroni?: number; postmaster?: number },
): MemberProcs {
  const pids = new Set<number>();
  for (const leaderPid of [patroni, postmaster]) {
    if (!leaderPid) continue;
    for (const p of processTree(leaderPid)) {
      const cmd = cmdlineOf(p) ?? "";
      // Backends rename themselves ("postgres: pgplatform-h3: walsender ..."): the cluster name or member dir must show.
      if (p === leaderPid || cmd.includes(m.dir) || cmd.includes(`${cfg.clusterName}:`)) pids.add(p);
    }
  }
  return { patroni, postmaster, all: [...pids] };
}

/** Send a signal to each pid; a pid already gone is fine. Returns the pids that got it. */
export function signalAll(pids: number[], signal: Signal): number[] {
  const hit: number[] = [];
  for (const p of pids) {
    try {
      process.kill(p, signal);
      hit.push(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
  }
  return hit;
}

export function requirePids(what: string, pids: (number | undefined)[]): number[] {
  const ok = pids.filter((p): p is number => !!p);
  if (ok.length === 0)
    throw new ToolkitError(
      "NO_PROCESS",
      `${what}: no running process found`,
      "run `make status`; the drill needs the native stack running (make dev-up)",
    );
  return ok;
}

/** The etcd member that currently leads Raft (v2 stats). */
export async function etcdLeader(cfg: Config): Promise<Member | undefined> {
  for (const m of cfg.members) {
    try {
      const r = await etcdFetch(cfg, m, "/v2/stats/self", { signal: AbortSignal.timeout(1000) });
      const body = (await r.json()) as { state?: string };
      if (body.state === "StateLeader") return m;
    } catch {}
  }
  return undefined;
}
