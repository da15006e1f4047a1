import { ToolkitError } from "../errors";
import { writeFileNoFollow } from "../safe-fs";
import { reloadPatroniCommand, runningCommand, startCommand, stopCommand } from "./commands";
import { clusterSecrets, must, prepareHost, verifyThroughVip, waitFor } from "./deploy";
import { planCluster, planError } from "./plan";
import { closeAll, connectAll, openHost, type HostConn } from "./remote";
import { hostPaths, type ClusterSecrets } from "./render";
import {
  etcdChanges,
  memberAddCommand,
  memberListCommand,
  memberRemoveCommand,
  parseMemberList,
  batches,
  replaceProblems,
  replaceSteps,
  resolveReplace,
  type EtcdMember,
  type ReplaceStep,
  type ReplaceTarget,
} from "./replace-plan";
import { clusterEnvFile, type ClusterSettings } from "./settings";
import { clusterStatus, etcdHealthy, patroniCluster, type ClusterStatus } from "./status";
import { switchover } from "./switchover";
import { etcdJoin, FIX, hbaAllows, moveStaleAside } from "./replace-join";
import { ensureClusterTls, operatorEtcdTls } from "./tls";

export interface ReplaceResult {
  cluster: string;
  old?: { name: string; address: string; reachable: boolean };
  new: { name: string; address: string };
  /** the replace had already happened: nothing was changed */
  alreadyDone: boolean;
  steps: { step: string; ms: number }[];
  switchover?: { from: string; to: string; ms: number };
  etcdMembers: EtcdMember[];
  status: ClusterStatus;
  ms: number;
}

const describeStep = (x: ReplaceStep) =>
  Object.entries(x)
    .map(([, v]) => v)
    .join(" ");

async function memberList(s: ClusterSettings, c: HostConn): Promise<EtcdMember[]> {
  const r = await must(c, memberListCommand(s, c.host), "etcdctl member list", { fix: FIX });
  return parseMemberList(r.stdout);
}

/** The state a finished replace leaves: healthy, and etcd's members exactly the hosts, every one started. */
const settled = (next: ClusterSettings, st: ClusterStatus, members: EtcdMember[]) => {
  const { add, remove } = etcdChanges(next, members);
  return st.health.ok && !add.length && !remove.length && members.every((m) => m.name && !m.learner);
};

interface Ctx {
  t: ReplaceTarget;
  s: ClusterSettings;
  conns: HostConn[];
  oldConn?: HostConn;
  /** every host of the settings before, OLD's slot its connection or undefined */
  connsBefore: (HostConn | undefined)[];
  missing: string[];
  sec: ClusterSecrets;
  log: (m: string) => void;
  sw?: ReplaceResult["switchover"];
}

const connAt = (ctx: Ctx, at: string) => {
  const addr = at.slice(at.indexOf("@") + 1);
  if (ctx.oldConn && ctx.t.old?.address === addr && ctx.t.added.address !== addr) return ctx.oldConn;
  return ctx.conns.find((c) => c.host.address === addr)!;
};

async function carryOut(ctx: Ctx, x: ReplaceStep, etcdOn: () => Promise<HostConn>): Promise<void> {
  const { t } = ctx;
  const next = t.next;
  switch (x.action) {
    case "switchover":
      ctx.sw = await switchover(ctx.s, ctx.connsBefore as HostConn[]);
      return;
    case "stop": {
      const c = connAt(ctx, x.host);
      await must(c, stopCommand(ctx.s, c.host, x.service), `stopping ${x.service}`, { fix: FIX });
      return;
    }
    case "unmark": {
      const c = connAt(ctx, x.host);
      await must(c, ["sudo", "-n", "rm", "-f", hostPaths(ctx.s, c.host).marker], "removing the cluster mark", {
        fix: FIX,
      });
      return;
    }
    case "etcd-remove": {
      const c = await etcdOn();
      await must(c, memberRemoveCommand(next, c.host, x.id), `etcdctl member remove ${x.id}`, { fix: FIX });
      return;
    }
    case "etcd-add": {
      const c = await etcdOn();
      await must(c, memberAddCommand(next, c.host, t.added), `etcdctl member add ${x.member}`, { fix: FIX });
      return;
    }
    case "write-settings":
      writeFileNoFollow(clusterEnvFile(next.name), t.envText);
      return;
    case "files": {
      const c = connAt(ctx, x.host);
      await prepareHost(next, ctx.sec, c, c.host === t.added ? ctx.missing : []);
      return;
    }
    case "reload-patroni": {
      const c = connAt(ctx, x.host);
      await must(c, reloadPatroniCommand(next, c.host), "reloading patroni", { fix: FIX });
      return;
    }
    case "etcd-join":
      return etcdJoin(next, connAt(ctx, x.host));
    case "start": {
      const c = connAt(ctx, x.host);
      if (x.service === "patroni")
        await waitFor(
          `the leader's pg_hba allowing ${c.host.address}`,
          30_000,
          async () => ((await hbaAllows(next, ctx.sec, c.host.address)) ? true : undefined),
          "check that Patroni on the leader's host reloaded its file (its log)",
        );
      if (
        x.service === "patroni" &&
        (await c.exec(runningCommand(next, c.host, "patroni"), { nothrow: true })).code !== 0
      )
        await moveStaleAside(c, next, "patroni");
      await must(c, startCommand(next, c.host, x.service), `starting ${x.service}`, { fix: FIX });
      if (x.service === "patroni")
        await waitFor(
          `${c.host.name} cloned from the leader and streaming`,
          600_000,
          async () => {
            const m = (await patroniCluster(next))?.find((y) => y.name === c.host.name && y.host === c.host.address);
            return m && m.role !== "leader" && ["streaming", "running"].includes(m.state) ? true : undefined;
          },
          `see /var/log/pgplatform/${next.name}/patroni.log on ${c.host.ssh}`,
        );
      return;
    }
    case "restart": {
      const c = connAt(ctx, x.host);
      await must(c, stopCommand(next, c.host, x.service), `stopping ${x.service}`, { fix: FIX });
      await must(c, startCommand(next, c.host, x.service), `starting ${x.service}`, { fix: FIX });
      return;
    }
    case "verify":
      return;
  }
}

export async function replaceHost(
  s: ClusterSettings,
  envText: string,
  oldArg: string | undefined,
  newArg: string | undefined,
  opts: { trustNewHost?: boolean; log?: (m: string) => void } = {},
): Promise<ReplaceResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const t = resolveReplace(s, envText, oldArg, newArg);
  const { conns } = await connectAll(t.next, { trustNewHost: opts.trustNewHost });
  let oldConn: HostConn | undefined;
  try {
    if (t.old) {
      oldConn = openHost(s, t.old);
      await oldConn.target.connect().catch(() => {
        log(`${t.old!.ssh} does not answer over ssh: taken as dead; its etcd member is removed all the same`);
        oldConn = undefined;
      });
    }
    const survivors = conns.filter((c) => c.host !== t.added);
    const etcdOn = async () => {
      const tls = operatorEtcdTls(t.next);
      for (const c of survivors) if (await etcdHealthy(t.next, c.host.address, tls)) return c;
      throw new ToolkitError(
        "ETCD_NO_QUORUM",
        `no surviving host of ${s.name} has a healthy etcd`,
        `run make cluster-status CLUSTER=${s.name}; a replace needs 2 of the 3 etcd members up`,
      );
    };
    const summary = {
      cluster: s.name,
      old: t.old && { name: t.old.name, address: t.old.address, reachable: !!oldConn },
      new: { name: t.added.name, address: t.added.address },
    };
    const members = await memberList(t.next, await etcdOn());
    if (t.done) {
      const st = await clusterStatus(t.next, conns);
      if (settled(t.next, st, members)) {
        log(`${t.added.ssh} is already member ${t.added.name} of ${s.name} and the cluster is healthy: nothing to do`);
        return { ...summary, alreadyDone: true, steps: [], etcdMembers: members, status: st, ms: Date.now() - t0 };
      }
      log(`${t.added.ssh} is in HOSTS already but the cluster is not settled: finishing the replace`);
    }
    const connsBefore = s.hosts.map((h) => (h === t.old ? oldConn : conns[h.index - 1]));
    const before = await clusterStatus(t.done ? t.next : s, t.done ? conns : connsBefore);
    const plan = await planCluster(t.next, conns);
    const err = planError({ ...plan, problems: replaceProblems(plan.problems, !!before.vipHolder) });
    if (err)
      throw new ToolkitError(
        err.code,
        err.message.replace(/^cluster-plan for [^:]+/, `cluster-replace ${t.old?.name ?? ""} -> ${t.added.ssh}`),
        err.fix,
        err.detail,
      );
    if (!before.leader)
      throw new ToolkitError(
        "NO_LEADER",
        `cluster ${s.name} has no leader: a replace needs one to clone the new member from; nothing was changed`,
        `run make cluster-status CLUSTER=${s.name}`,
      );
    const oldLeads = !!t.old && before.leader === t.old.name && !!oldConn;
    if (oldLeads && !before.syncStandby)
      throw new ToolkitError(
        "NO_SYNC_STANDBY",
        `${t.old!.name} leads and there is no sync standby to hand over to; nothing was changed`,
        `wait for make cluster-status CLUSTER=${s.name} to be healthy`,
      );
    const steps = replaceSteps(t, {
      oldIsLeader: oldLeads,
      leader: oldLeads ? before.syncStandby : before.leader,
      oldReachable: !!oldConn,
      members,
      nextEnvHosts: t.next.hosts.map((h) => h.ssh).join(","),
    });
    // the new host's etcd certificate (made on the operator, like the others), before any step needs it
    await ensureClusterTls(t.next);
    const ctx: Ctx = {
      t,
      s,
      conns,
      oldConn,
      connsBefore,
      missing: plan.hosts[t.added.index - 1]!.missingPackages,
      sec: clusterSecrets(t.next),
      log,
    };
    const done: ReplaceResult["steps"] = [];
    for (const batch of batches(steps)) {
      const at = Date.now();
      await Promise.all(batch.map((x) => carryOut(ctx, x, etcdOn)));
      for (const x of batch) done.push({ step: describeStep(x), ms: Date.now() - at });
      log(`${batch.map(describeStep).join("; ")} (${((Date.now() - at) / 1000).toFixed(1)} s)`);
    }
    const status = await waitFor(
      "3 members running with a sync standby, the VIP on the leader's host, etcd healthy on every host",
      180_000,
      async () => {
        const st = await clusterStatus(t.next, conns);
        return st.health.ok ? st : undefined;
      },
      `run make cluster-status CLUSTER=${s.name}`,
    );
    const etcdMembers = await memberList(t.next, await etcdOn());
    if (!settled(t.next, status, etcdMembers))
      throw new ToolkitError(
        "ETCD_MEMBERS",
        `etcd's members are not the hosts of ${s.name}: ${etcdMembers.map((m) => `${m.name || "(unstarted)"} ${m.peerUrls.join(" ")}`).join(", ")}`,
        "re-run make cluster-replace (it removes stale members and adds missing ones)",
      );
    await waitFor(
      "a write through the VIP",
      30_000,
      async () =>
        verifyThroughVip(t.next, ctx.sec).then(
          () => true,
          () => undefined,
        ),
      `connect to ${s.vip}:${s.ports.rw} by hand`,
    );
    return {
      ...summary,
      alreadyDone: false,
      steps: done,
      switchover: ctx.sw,
      etcdMembers,
      status,
      ms: Date.now() - t0,
    };
  } finally {
    await closeAll([...conns, ...(oldConn ? [oldConn] : [])]);
  }
}
