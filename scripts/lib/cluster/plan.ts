/**
 * make cluster-plan: a read-only preflight of all three hosts over SSH
 * before anything changes: reachable (pinned host key), passwordless sudo,
 * one architecture, three different machines, the VIP free (or already
 * ours), no host in another cluster, the interface carrying the host's
 * address, the cluster's ports free, packages present (missing ones are
 * installed by the deploy). Every problem is collected; any is an error.
 */
import { readFileSync, existsSync } from "node:fs";
import { ToolkitError } from "../errors";
import { parseListeners } from "../deploy/preflight";
import { HOST_PACKAGES, holdsVip, vipProbeCommand } from "./commands";
import { hostPaths } from "./render";
import { clusterKnownHosts, type ClusterHost, type ClusterSettings } from "./settings";
import type { HostConn } from "./remote";

export interface HostFacts {
  host: string;
  arch: string;
  sudo: boolean;
  /** the cluster this host belongs to (marker file), or undefined: none */
  memberOf?: string;
  missingPackages: string[];
  holdsVip: boolean;
  interfaceOk: boolean;
  busyPorts: string[];
}

export interface PlanProblem {
  code: string;
  host?: string;
  message: string;
  fix: string;
}

export interface PlanReport {
  cluster: string;
  hosts: HostFacts[];
  vipAnsweredBy?: string;
  problems: PlanProblem[];
  ms: number;
}

/** Who answers ARP for the VIP, as seen from a host (no packages needed: bash's /dev/tcp makes the kernel ask). */
export const vipNeighbourCommand = (vip: string) => [
  "bash",
  "-c",
  'timeout 2 bash -c "exec 3<>/dev/tcp/$1/9" _ "$1" 2>/dev/null; ip -4 neigh show "$1"',
  "_",
  vip,
];
/** The MAC that answered for the VIP, from `ip neigh show` (undefined: nobody). Pure. */
export const neighbourMac = (out: string) => out.match(/lladdr ([0-9a-f:]{17})/)?.[1];

const PKG_QUERY = ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n", ...HOST_PACKAGES];

/** Everything the plan needs from one host, read-only, in one round of commands. */
export async function hostFacts(s: ClusterSettings, c: HostConn): Promise<HostFacts> {
  const h = c.host;
  const p = hostPaths(s, h);
  const [sudo, arch, marker, pkgs, addr, ss] = await Promise.all([
    c.exec(["sudo", "-n", "true"], { nothrow: true }),
    c.exec(["uname", "-m"], { nothrow: true }),
    c.exec(["cat", p.marker], { nothrow: true }),
    c.exec(PKG_QUERY, { nothrow: true }),
    c.exec(vipProbeCommand(s), { nothrow: true }),
    c.exec(["ss", "-ltnH"], { nothrow: true }),
  ]);
  const installed = new Set(
    pkgs.stdout
      .split("\n")
      .filter((l) => / installed$/.test(l))
      .map((l) => l.split(" ")[0]),
  );
  const memberOf = marker.code === 0 ? marker.stdout.trim() || undefined : undefined;
  const ports = [s.ports.pg, s.ports.patroni, s.ports.etcdClient, s.ports.etcdPeer];
  const busy =
    memberOf === s.name
      ? []
      : parseListeners(ss.stdout)
          .filter((l) => ports.includes(l.port) && [h.address, "0.0.0.0", "*", "::"].includes(l.address))
          .map((l) => `${l.address}:${l.port}`);
  return {
    host: h.ssh,
    arch: arch.stdout.trim(),
    sudo: sudo.code === 0,
    memberOf,
    missingPackages: HOST_PACKAGES.filter((x) => !installed.has(x)),
    holdsVip: holdsVip(s, addr.stdout),
    interfaceOk: addr.code === 0 && addr.stdout.includes(` inet ${h.address}/`),
    busyPorts: busy,
  };
}

/** Two addresses pinned with the same host key are one machine. Pure. */
export function sameMachine(
  knownHosts: string,
  hosts: Pick<ClusterHost, "address" | "index">[],
): [number, number] | undefined {
  const keyOf = (addr: string) =>
    knownHosts
      .split("\n")
      .find((l) => l.split(/\s+/)[0]?.split(",").includes(addr))
      ?.split(/\s+/)
      .slice(1, 3)
      .join(" ");
  for (const a of hosts)
    for (const b of hosts)
      if (a.index < b.index && keyOf(a.address) && keyOf(a.address) === keyOf(b.address)) return [a.index, b.index];
  return undefined;
}

/** The problems in a set of facts (pure: unit-tested). */
export function planProblems(
  s: ClusterSettings,
  facts: HostFacts[],
  opts: { knownHosts?: string; vipAnsweredBy?: string } = {},
): PlanProblem[] {
  const out: PlanProblem[] = [];
  const env = `clusters/${s.name}/cluster.env`;
  for (const f of facts) {
    if (!f.sudo)
      out.push({
        code: "NO_SUDO",
        host: f.host,
        message: `${f.host}: sudo asks for a password (or is not allowed)`,
        fix: `give the ssh user passwordless sudo on that host (e.g. a line '<user> ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/), or use another user in HOSTS of ${env}`,
      });
    if (f.memberOf && f.memberOf !== s.name)
      out.push({
        code: "HOST_IN_OTHER_CLUSTER",
        host: f.host,
        message: `${f.host} already belongs to cluster ${f.memberOf} (its /etc/pgplatform/cluster says so)`,
        fix: `use another host in ${env}, or remove it from cluster ${f.memberOf} first`,
      });
    if (!f.interfaceOk)
      out.push({
        code: "BAD_INTERFACE",
        host: f.host,
        message: `${f.host}: interface ${s.vipInterface} does not carry the host's address ${f.host.split("@")[1]}`,
        fix: `set VIP_INTERFACE in ${env} to the interface of the private network (see \`ip -br addr\` on the host)`,
      });
    if (f.busyPorts.length)
      out.push({
        code: "PORT_IN_USE",
        host: f.host,
        message: `${f.host}: ${f.busyPorts.join(", ")} already in use`,
        fix: `stop what listens there (\`sudo ss -ltnp\` on the host), or choose other ports in ${env}`,
      });
  }
  const arches = [...new Set(facts.map((f) => f.arch))];
  if (arches.length > 1)
    out.push({
      code: "ARCH_MISMATCH",
      message: `the hosts differ in architecture: ${facts.map((f) => `${f.host} ${f.arch}`).join(", ")}`,
      fix: "use three hosts of one architecture (Postgres replicas must match their primary's binary format)",
    });
  const same = opts.knownHosts ? sameMachine(opts.knownHosts, s.hosts) : undefined;
  if (same)
    out.push({
      code: "DUPLICATE_HOST",
      message: `hosts ${same[0]} and ${same[1]} (${s.hosts[same[0] - 1]!.address}, ${s.hosts[same[1] - 1]!.address}) are one machine (the same ssh host key)`,
      fix: `list three different machines in HOSTS of ${env}`,
    });
  const ours = facts.some((f) => f.holdsVip && f.memberOf === s.name);
  const held = facts.find((f) => f.holdsVip && f.memberOf !== s.name);
  if (held)
    out.push({
      code: "VIP_IN_USE",
      host: held.host,
      message: `VIP ${s.vip} is already configured on ${held.host}, which is not a member of ${s.name}`,
      fix: `choose a free address for VIP in ${env}, or remove it from that host`,
    });
  else if (opts.vipAnsweredBy && !ours)
    out.push({
      code: "VIP_IN_USE",
      message: `VIP ${s.vip} already answers on the network (MAC ${opts.vipAnsweredBy}): another machine uses it`,
      fix: `choose a free address for VIP in ${env}`,
    });
  return out;
}

/** Run the whole plan on open connections (read-only). */
export async function planCluster(s: ClusterSettings, conns: HostConn[]): Promise<PlanReport> {
  const started = Date.now();
  const facts = await Promise.all(conns.map((c) => hostFacts(s, c)));
  const kh = clusterKnownHosts(s);
  const knownHosts = existsSync(kh) ? readFileSync(kh, "utf8") : "";
  // Ask from a host that does not hold the VIP: the holder answers its own ARP only to others.
  const asker = conns.find((_c, i) => !facts[i]!.holdsVip) ?? conns[0]!;
  const neigh = facts.some((f) => f.holdsVip)
    ? undefined
    : neighbourMac((await asker.exec(vipNeighbourCommand(s.vip), { nothrow: true, timeoutMs: 15_000 })).stdout);
  const problems = planProblems(s, facts, { knownHosts, vipAnsweredBy: neigh });
  return { cluster: s.name, hosts: facts, vipAnsweredBy: neigh, problems, ms: Date.now() - started };
}

/** A plan with problems as one ToolkitError: the first problem's code, every problem listed. */
export function planError(r: PlanReport): ToolkitError | undefined {
  if (!r.problems.length) return undefined;
  const [first, ...rest] = r.problems;
  return new ToolkitError(
    first!.code,
    `cluster-plan for ${r.cluster}: ${first!.message}; nothing was changed`,
    first!.fix,
    rest.length ? rest.map((p) => `${p.code}: ${p.message} (fix: ${p.fix})`).join("\n") : undefined,
  );
}
