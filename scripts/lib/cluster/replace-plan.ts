/**
 * make cluster-replace, as data: which member goes, which host comes (it takes
 * the old one's place in HOSTS, so its member name), the etcd commands
 * (etcdctl on a surviving host, mutual TLS with the host's client pair), and
 * the order of every step. Pure: unit-tested; replace.ts carries it out.
 *
 * etcd's runtime reconfiguration (etcd 3.4, "Replace a failed machine"):
 * remove the old member first, then `member add` the new one, then start it
 * with initial-cluster-state=existing and the new member list. Removing first
 * keeps the quorum reachable: adding a fourth, not yet started member to three
 * of which one is gone would need 3 of 4 up.
 */
import { ToolkitError } from "../errors";
import type { Cmd } from "../exec";
import { hostPaths } from "./render";
import type { ServiceName } from "./commands";
import type { PlanProblem } from "./plan";
import { parseClusterSettings, type ClusterHost, type ClusterSettings } from "./settings";

export interface ReplaceTarget {
  /** the settings after the replace (NEW in OLD's place in HOSTS) */
  next: ClusterSettings;
  /** the member leaving (undefined: the replace already happened) */
  old?: ClusterHost;
  /** the host coming, as a member of `next` */
  added: ClusterHost;
  /** cluster.env's text after the replace */
  envText: string;
  /** true: OLD is gone from HOSTS and NEW is in it already (a re-run) */
  done: boolean;
}

const SSH_RE = /^[a-z_][a-z0-9_.-]*@[0-9.]+$/;
const addressOf = (ssh: string) => ssh.slice(ssh.indexOf("@") + 1);

/** HOSTS=... of cluster.env replaced, every other line kept as written. Pure. */
export function withHosts(envText: string, hosts: string[], rel: string): string {
  const lines = envText.split("\n");
  const i = lines.findIndex((l) => /^\s*HOSTS\s*=/.test(l));
  if (i < 0) throw new ToolkitError("NO_HOSTS_LINE", `${rel} has no HOSTS= line to change`, `add HOSTS=... to ${rel}`);
  lines[i] = `HOSTS=${hosts.join(",")}`;
  return lines.join("\n");
}

/**
 * Resolve OLD (a member name like crm3, an address, or user@address) and NEW
 * (user@address) against the cluster's settings. Pure.
 */
export function resolveReplace(s: ClusterSettings, envText: string, oldArg = "", newArg = ""): ReplaceTarget {
  const env = `clusters/${s.name}/cluster.env`;
  const members = s.hosts.map((h) => `${h.name} (${h.ssh})`).join(", ");
  if (!oldArg) throw new ToolkitError("NO_OLD_HOST", "OLD is required: the member to replace", `one of: ${members}`);
  if (!SSH_RE.test(newArg))
    throw new ToolkitError(
      "BAD_NEW_HOST",
      `NEW=${JSON.stringify(newArg)}: must be user@address of the new host`,
      "e.g. make cluster-replace CLUSTER=crm OLD=crm3 NEW=ops@10.0.0.4",
    );
  const old = s.hosts.find((h) => oldArg === h.name || oldArg === h.address || oldArg === h.ssh);
  const already = s.hosts.find((h) => h.address === addressOf(newArg));
  if (already && (!old || old === already)) return { next: s, added: already, envText, done: true };
  if (!old)
    throw new ToolkitError(
      "NO_MEMBER",
      `OLD=${oldArg}: cluster ${s.name} has no such member (and ${newArg} is not one either)`,
      `one of: ${members} (${env})`,
    );
  if (already)
    throw new ToolkitError(
      "DUPLICATE_HOST",
      `NEW=${newArg} is already member ${already.name} of cluster ${s.name}: two members on one machine are not HA`,
      "name a host that is not in the cluster",
    );
  const hosts = s.hosts.map((h) => (h === old ? newArg : h.ssh));
  const text = withHosts(envText, hosts, env);
  const next = parseClusterSettings(text, env);
  return { next, old, added: next.hosts[old.index - 1]!, envText: text, done: false };
}

/**
 * The plan's problems that stand for a replace (pure): while a member of the
 * cluster holds the VIP (OLD itself, before it stops), the address answering
 * ARP on the network is the cluster's own, not another machine's.
 */
export const replaceProblems = (problems: PlanProblem[], vipHeldByMember: boolean) =>
  problems.filter((p) => !(vipHeldByMember && p.code === "VIP_IN_USE" && p.host === undefined));

/** One member of `etcdctl member list -w json`; ids as hex (what `member remove` takes). */
export interface EtcdMember {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  learner: boolean;
}

export const peerUrl = (s: Pick<ClusterSettings, "ports">, h: Pick<ClusterHost, "address">) =>
  `https://${h.address}:${s.ports.etcdPeer}`;

/** etcdctl on host h against its own etcd, with the host's TLS client pair (root's copy). Pure. */
export function etcdctlCommand(s: ClusterSettings, h: ClusterHost, ...args: string[]): Cmd {
  const p = hostPaths(s, h).tls;
  return [
    "sudo",
    "-n",
    "env",
    "ETCDCTL_API=3",
    "etcdctl",
    `--endpoints=https://${h.address}:${s.ports.etcdClient}`,
    `--cacert=${p.ca}`,
    `--cert=${p.clientCert}`,
    `--key=${p.clientKey}`,
    "--command-timeout=10s",
    ...args,
  ];
}
export const memberListCommand = (s: ClusterSettings, on: ClusterHost) =>
  etcdctlCommand(s, on, "member", "list", "-w", "json");
export const memberRemoveCommand = (s: ClusterSettings, on: ClusterHost, id: string) =>
  etcdctlCommand(s, on, "member", "remove", id);
export const memberAddCommand = (s: ClusterSettings, on: ClusterHost, added: ClusterHost) =>
  etcdctlCommand(s, on, "member", "add", added.name, `--peer-urls=${peerUrl(s, added)}`);

/** Parse `member list -w json` (ids are uint64: read as text, never as a JS number). Pure. */
export function parseMemberList(json: string): EtcdMember[] {
  const body = JSON.parse(json.replace(/"(ID|cluster_id|member_id)":(\d+)/g, '"$1":"$2"')) as {
    members?: { ID: string; name?: string; peerURLs?: string[]; clientURLs?: string[]; isLearner?: boolean }[];
  };
  return (body.members ?? []).map((m) => ({
    id: BigInt(m.ID).toString(16),
    name: m.name ?? "",
    peerUrls: m.peerURLs ?? [],
    clientUrls: m.clientURLs ?? [],
    learner: !!m.isLearner,
  }));
}

/** What etcd's membership needs for `next`: members whose peer URL is no host of it go; hosts without a member come. Pure. */
export function etcdChanges(next: ClusterSettings, members: EtcdMember[]) {
  const want = next.hosts.map((h) => peerUrl(next, h));
  return {
    remove: members.filter((m) => !m.peerUrls.some((u) => want.includes(u))),
    add: next.hosts.filter((h) => !members.some((m) => m.peerUrls.includes(peerUrl(next, h)))),
  };
}

/**
 * A joining member starts from empty data: an etcd data dir left from an
 * earlier membership (a host replaced out that now comes back) would speak
 * as a removed member, and an old Postgres data dir would need WAL the
 * leader no longer keeps (no archive here). Each is moved aside, never
 * deleted; etcd gets an empty dir, Patroni clones into a new one. Pure.
 */
export function staleDataCommands(s: ClusterSettings, h: ClusterHost, stamp: string) {
  const p = hostPaths(s, h);
  const aside = (dir: string): Cmd => ["sudo", "-n", "mv", "-T", dir, `${dir}.before-${stamp}`];
  return {
    etcd: {
      test: ["sudo", "-n", "test", "-e", `${p.etcdData}/member`] as Cmd,
      moveAside: [
        aside(p.etcdData),
        ["sudo", "-n", "install", "-d", "-m", "0700", "-o", "etcd", "-g", "etcd", p.etcdData],
      ] as Cmd[],
    },
    patroni: {
      test: ["sudo", "-n", "test", "-e", `${p.pgData}/PG_VERSION`] as Cmd,
      moveAside: [aside(p.pgData)],
    },
  };
}

/** The new member's etcd.yml while it joins: initial-cluster-state existing (read only with an empty data dir). Pure. */
export function joiningEtcdYml(content: string): string {
  if (!content.includes("\ninitial-cluster-state: new\n"))
    throw new ToolkitError(
      "TEMPLATE_DRIFT",
      "etcd/etcd.yml.tmpl no longer has the line `initial-cluster-state: new` the replace changes",
      "update scripts/lib/cluster/replace-plan.ts to the template",
    );
  return content.replace("\ninitial-cluster-state: new\n", "\ninitial-cluster-state: existing\n");
}

export type ReplaceStep =
  | { action: "switchover"; from: string }
  | { action: "stop"; host: string; service: ServiceName }
  | { action: "unmark"; host: string }
  | { action: "etcd-remove"; member: string; id: string }
  | { action: "etcd-add"; member: string; peerUrl: string }
  | { action: "write-settings"; hosts: string }
  | { action: "files"; host: string }
  | { action: "reload-patroni"; host: string }
  | { action: "etcd-join"; host: string }
  | { action: "start"; host: string; service: ServiceName }
  | { action: "restart"; host: string; service: ServiceName }
  | { action: "verify" };

/**
 * The order of a replace (pure; `batches` says which neighbours may run at once). OLD reachable: a leader hands over first,
 * then its services stop (reverse start order) and its cluster mark goes.
 * etcd: the stale member removed before the new one is added. Then the
 * settings file, the survivors' files (Patroni reloaded: pg_hba lets the new
 * host replicate before it asks), the new host (etcd joins, Patroni clones
 * from the leader, HAProxy, vip-manager), the survivors' HAProxy and
 * vip-manager restarted on their new member lists (the leader's host last:
 * the VIP and the clients' proxy move for one moment only), then verify.
 */
export function replaceSteps(
  t: ReplaceTarget,
  opts: {
    /** OLD leads: hand over first (to the sync standby) */
    oldIsLeader: boolean;
    /** the leader once any handover is done: its host's proxies restart last */
    leader?: string;
    oldReachable: boolean;
    members: EtcdMember[];
    nextEnvHosts: string;
  },
): ReplaceStep[] {
  const steps: ReplaceStep[] = [];
  const at = (h: ClusterHost) => `${h.name}@${h.address}`;
  if (t.old && opts.oldReachable) {
    if (opts.oldIsLeader) steps.push({ action: "switchover", from: t.old.name });
    for (const service of ["vip-manager", "haproxy", "patroni", "etcd"] as ServiceName[])
      steps.push({ action: "stop", host: at(t.old), service });
    steps.push({ action: "unmark", host: at(t.old) });
  }
  const { remove, add } = etcdChanges(t.next, opts.members);
  for (const m of remove) steps.push({ action: "etcd-remove", member: m.name || "(unstarted)", id: m.id });
  for (const h of add) steps.push({ action: "etcd-add", member: h.name, peerUrl: peerUrl(t.next, h) });
  if (!t.done) steps.push({ action: "write-settings", hosts: opts.nextEnvHosts });
  const survivors = t.next.hosts.filter((h) => h !== t.added);
  for (const h of [...survivors, t.added]) steps.push({ action: "files", host: at(h) });
  for (const h of survivors) steps.push({ action: "reload-patroni", host: at(h) });
  steps.push({ action: "etcd-join", host: at(t.added) });
  for (const service of ["patroni", "haproxy", "vip-manager"] as ServiceName[])
    steps.push({ action: "start", host: at(t.added), service });
  const order = [
    ...survivors.filter((h) => h.name !== opts.leader),
    ...survivors.filter((h) => h.name === opts.leader),
  ];
  for (const h of order)
    for (const service of ["haproxy", "vip-manager"] as ServiceName[])
      steps.push({ action: "restart", host: at(h), service });
  steps.push({ action: "verify" });
  return steps;
}

/** Neighbouring steps that run at once: every host's files, the survivors' reloads, one host's two proxies (HAProxy, vip-manager). Pure. */
export function batches(steps: ReplaceStep[]): ReplaceStep[][] {
  const proxies = (x: ReplaceStep) => "service" in x && (x.service === "haproxy" || x.service === "vip-manager");
  const together = (a: ReplaceStep, b: ReplaceStep) =>
    a.action === b.action &&
    (a.action === "files" ||
      a.action === "reload-patroni" ||
      ((a.action === "stop" || a.action === "start" || a.action === "restart") &&
        proxies(a) &&
        proxies(b) &&
        a.host === (b as typeof a).host));
  const out: ReplaceStep[][] = [];
  for (const x of steps) {
    const last = out.at(-1);
    if (last && together(last[0]!, x)) last.push(x);
    else out.push([x]);
  }
  return out;
}
