/**
 * Deal one fault and undo it (restart what was killed, SIGCONT what was
 * stopped, start the stopped etcd members), through the stack's runtime.
 */
import type { Config, Member } from "../config";
import { etcdHealthy } from "../cluster-ops";
import { ToolkitError } from "../errors";
import { clusterView, restSend } from "../patroni";
import type { Runtime } from "../runtime";
import type { Scenario } from "./analysis";
import { etcdLeader, memberProcs, memberTree, requirePids, signalAll } from "./faults";
import { leaderOf, waitUntil } from "./monitor";
import type { DrillOptions, DrillProgress } from "./options";

const sleep = (ms: number) => Bun.sleep(ms);
const byName = (cfg: Config, name: string): Member => cfg.members.find((m) => m.name === name)!;

/** Restart a member's Patroni (it starts Postgres, and rewinds it when it must); synchronous in the native runtime. */
const restartPatroni = (rt: Runtime, m: Member) => void rt.start(m.name);

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
  rt: Runtime;
  opts: DrillOptions;
  budgetMs: number;
  leader: string;
  sync: string;
  progress: DrillProgress;
  marks: { faultAt?: number; restoreAt?: number };
}

/** Deal the fault and undo it (restart, SIGCONT, restore); resolves when the drill may wait for convergence. */
export async function dealFault(scenario: Scenario, ctx: FaultContext): Promise<void> {
  const { cfg, rt, opts, progress, marks } = ctx;
  const leader = byName(cfg, ctx.leader);
  const failoverWait = ctx.budgetMs + 30_000;
  const newLeader = () =>
    waitUntil(failoverWait, async () => {
      const l = leaderOf(await clusterView(cfg));
      return !!l && l.name !== ctx.leader;
    });

  switch (scenario) {
    case "kill-primary": {
      const procs = await memberProcs(cfg, rt, leader);
      requirePids(`leader ${leader.name}`, [procs.patroni, procs.postmaster]);
      pendingUndo = () => restartPatroni(rt, leader);
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
      const procs = await memberProcs(cfg, rt, leader);
      const [pm] = requirePids(`postmaster of ${leader.name}`, [procs.postmaster]);
      marks.faultAt = Date.now();
      signalAll([pm!], "SIGKILL");
      progress(`SIGKILL ${leader.name}'s postmaster (pid ${pm}); Patroni lives`);
      // Convergence is only meaningful once Patroni has acted: a new postmaster, or a new leader.
      const acted = await waitUntil(failoverWait, async () => {
        const now = (await rt.pids(leader.name)).postmaster;
        if (now && now !== pm) return true;
        const l = leaderOf(await clusterView(cfg));
        return !!l && l.name !== ctx.leader;
      });
      progress(
        acted
          ? `Patroni recovered: postmaster ${(await rt.pids(leader.name)).postmaster ?? "-"}, leader ${leaderOf(await clusterView(cfg))?.name ?? "none yet"}`
          : "Patroni did not restart Postgres or fail over in time",
      );
      return;
    }
    case "hang-primary": {
      const procs = await memberProcs(cfg, rt, leader);
      requirePids(`leader ${leader.name}`, [procs.patroni, procs.postmaster]);
      // Whatever ran (or was forked) under the stopped processes gets its SIGCONT too.
      pendingUndo = () =>
        void signalAll([...new Set([...procs.all, ...memberTree(cfg, leader, procs).all])], "SIGCONT");
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
      if (candidate === ctx.leader)
        throw new ToolkitError(
          "BAD_CANDIDATE",
          `${candidate} is already the leader`,
          "pick a replica: --candidate pgN (see `make status`)",
        );
      marks.faultAt = Date.now();
      const res = await restSend(cfg, leader, "POST", "/switchover", { leader: ctx.leader, candidate }, 60_000);
      progress(`switchover ${ctx.leader} -> ${candidate}: ${res.status} ${res.text.trim().slice(0, 80)}`);
      if (res.status !== 200)
        throw new ToolkitError(
          "SWITCHOVER_REFUSED",
          `Patroni refused the switchover to ${candidate}: ${res.status} ${res.text.trim()}`,
          "the candidate must be a running replica (the sync standby in synchronous mode); see `make status`",
        );
      return;
    }
    case "kill-sync-standby": {
      const sync = byName(cfg, ctx.sync);
      const procs = await memberProcs(cfg, rt, sync);
      requirePids(`sync standby ${sync.name}`, [procs.patroni, procs.postmaster]);
      pendingUndo = () => restartPatroni(rt, sync);
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
      const first = (await etcdLeader(cfg)) ?? cfg.members[0]!;
      const victims = [first];
      if (scenario === "etcd-quorum-loss") victims.push(cfg.members.find((m) => m !== first)!);
      pendingUndo = () => {
        for (const m of victims) void rt.start(m.etcdName);
      };
      marks.faultAt = Date.now();
      await Promise.all(victims.map((m) => rt.stop(m.etcdName, 5000)));
      progress(
        `stopped ${victims.map((m) => m.etcdName).join(", ")} for ${(opts.holdMs / 1000).toFixed(0)} s${scenario === "etcd-quorum-loss" ? " (no quorum: failsafe mode must keep the primary)" : ""}`,
      );
      await sleep(opts.holdMs);
      marks.restoreAt = Date.now();
      undoPendingFault();
      const back = await waitUntil(30_000, async () =>
        (await Promise.all(victims.map((m) => etcdHealthy(cfg, m)))).every(Boolean),
      );
      progress(
        back ? `restored ${victims.map((m) => m.etcdName).join(", ")}` : "etcd members did not come back in 30 s",
      );
      return;
    }
  }
}
