/**
 * make cluster-status: the cluster as the operator sees it. Patroni's
 * /cluster (any member that answers), etcd's /health on every host (mutual
 * TLS with the operator's client certificate), which host holds the VIP and
 * each host's service pids (over SSH). Data only; the entry script prints.
 */
import { holdsVip, parsePids, pidsCommand, vipProbeCommand, type ServiceName } from "./commands";
import type { HostConn } from "./remote";
import { operatorEtcdTls } from "./tls";
import type { ClusterSettings } from "./settings";

export interface MemberState {
  name: string;
  host: string;
  role: string;
  state: string;
  timeline?: number;
  lag?: number | string;
}

export interface HostState {
  name: string;
  address: string;
  reachable: boolean;
  holdsVip: boolean;
  pids: Partial<Record<ServiceName, number | undefined>>;
  etcdHealthy: boolean;
}

export interface ClusterStatus {
  cluster: string;
  vip: string;
  timing: string;
  leader?: string;
  syncStandby?: string;
  vipHolder?: string;
  members: MemberState[];
  hosts: HostState[];
  health: { ok: boolean; problems: string[] };
}

/** Patroni's /cluster from the first member that answers (GET is open; the operator is on the hosts' network). */
export async function patroniCluster(s: ClusterSettings, timeoutMs = 3000): Promise<MemberState[] | undefined> {
  for (const h of s.hosts) {
    try {
      const r = await fetch(`http://${h.address}:${s.ports.patroni}/cluster`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!r.ok) continue;
      const body = (await r.json()) as {
        members?: MemberState[];
      };
      return (body.members ?? []).map((m) => ({
        name: m.name,
        host: m.host,
        role: m.role,
        state: m.state,
        timeline: m.timeline,
        lag: m.lag,
      }));
    } catch {
      /* next member */
    }
  }
  return undefined;
}

export async function etcdHealthy(
  s: ClusterSettings,
  address: string,
  tls: ReturnType<typeof operatorEtcdTls>,
): Promise<boolean> {
  try {
    const r = await fetch(`https://${address}:${s.ports.etcdClient}/health`, {
      signal: AbortSignal.timeout(3000),
      tls,
    } as RequestInit);
    return r.ok && ((await r.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

/** The health rules (pure): 3 members running, a leader, a sync standby, the VIP on the leader's host, etcd healthy. */
export function clusterProblems(s: ClusterSettings, members: MemberState[] | undefined, hosts: HostState[]): string[] {
  const p: string[] = [];
  for (const h of hosts.filter((x) => !x.reachable)) p.push(`${h.name} (${h.address}) unreachable over ssh`);
  for (const h of hosts.filter((x) => x.reachable && !x.etcdHealthy)) p.push(`etcd on ${h.name} not healthy`);
  if (!members) return [...p, "no Patroni member answers"];
  const leader = members.find((m) => m.role === "leader");
  if (!leader) p.push("no leader");
  if (!members.some((m) => m.role === "sync_standby" && (m.state === "streaming" || m.state === "running")))
    p.push("no sync standby");
  const running = members.filter((m) => ["running", "streaming"].includes(m.state));
  if (running.length !== s.hosts.length) p.push(`${running.length} of ${s.hosts.length} members running`);
  const holders = hosts.filter((h) => h.holdsVip);
  if (holders.length > 1) p.push(`VIP ${s.vip} on ${holders.length} hosts: ${holders.map((h) => h.name).join(", ")}`);
  if (leader && !holders.some((h) => h.name === leader.name))
    p.push(`VIP ${s.vip} not on the leader's host (${leader.name})`);
  return p;
}

export async function clusterStatus(s: ClusterSettings, conns: (HostConn | undefined)[]): Promise<ClusterStatus> {
  let tls: ReturnType<typeof operatorEtcdTls> | undefined;
  try {
    tls = operatorEtcdTls(s);
  } catch {
    tls = undefined; // not deployed from here yet: etcd counts as unhealthy
  }
  const [members, hosts] = await Promise.all([
    patroniCluster(s),
    Promise.all(
      s.hosts.map(async (h, i): Promise<HostState> => {
        const c = conns[i];
        const [addr, pids, etcd] = await Promise.all([
          c ? c.exec(vipProbeCommand(s), { nothrow: true, timeoutMs: 15_000 }).catch(() => undefined) : undefined,
          c ? c.exec(pidsCommand(s, h), { nothrow: true, timeoutMs: 15_000 }).catch(() => undefined) : undefined,
          tls ? etcdHealthy(s, h.address, tls) : false,
        ]);
        return {
          name: h.name,
          address: h.address,
          reachable: !!addr,
          holdsVip: !!addr && holdsVip(s, addr.stdout),
          pids: pids ? parsePids(s, h, pids.stdout) : {},
          etcdHealthy: etcd,
        };
      }),
    ),
  ]);
  const problems = clusterProblems(s, members, hosts);
  return {
    cluster: s.name,
    vip: s.vip,
    timing: s.timing.name,
    leader: members?.find((m) => m.role === "leader")?.name,
    syncStandby: members?.find((m) => m.role === "sync_standby")?.name,
    vipHolder: hosts.find((h) => h.holdsVip)?.name,
    members: members ?? [],
    hosts,
    health: { ok: problems.length === 0, problems },
  };
}
