/**
 * The multi-host runtime's small surface, for the lead to plug in beside
 * native and docker as the third Runtime: up / down / status, and per
 * member exec / pids / logs. A member is a host (crm1, crm2, crm3); every
 * call opens the hosts over SSH and closes them again.
 */
import type { RunResult } from "../exec";
import { ToolkitError } from "../errors";
import { logsCommand, parsePids, pidsCommand, SERVICES, type ServiceName } from "./commands";
import { deployCluster, stopCluster, type DeployResult } from "./deploy";
import { closeAll, openHost, type HostConn } from "./remote";
import { loadClusterSettings, type ClusterSettings } from "./settings";
import { clusterStatus, type ClusterStatus } from "./status";
import { withHosts } from "./cli";

export interface MultiHostRuntime {
  kind: "multi-host";
  settings: ClusterSettings;
  up(log?: (m: string) => void): Promise<DeployResult>;
  down(): Promise<void>;
  status(): Promise<ClusterStatus>;
  exec(member: string, argv: readonly string[]): Promise<RunResult>;
  pids(member: string): Promise<Record<ServiceName, number | undefined>>;
  logs(member: string, service: ServiceName, lines?: number): Promise<string>;
}

function member(s: ClusterSettings, name: string) {
  const h = s.hosts.find((x) => x.name === name);
  if (!h)
    throw new ToolkitError(
      "NO_MEMBER",
      `cluster ${s.name} has no member ${name}`,
      `members: ${s.hosts.map((x) => x.name).join(", ")}`,
    );
  return h;
}

async function onMember<T>(s: ClusterSettings, name: string, fn: (c: HostConn) => Promise<T>): Promise<T> {
  const c = openHost(s, member(s, name));
  try {
    return await fn(c);
  } finally {
    await closeAll([c]);
  }
}

export function multiHostRuntime(clusterName: string, opts: { trustNewHost?: boolean } = {}): MultiHostRuntime {
  const s = loadClusterSettings(clusterName);
  const trust = !!opts.trustNewHost;
  return {
    kind: "multi-host",
    settings: s,
    up: (log) => withHosts(s, trust, (conns) => deployCluster(s, conns, log)),
    down: () => withHosts(s, trust, (conns) => stopCluster(s, conns)),
    status: async () => {
      const conns = s.hosts.map((h) => openHost(s, h));
      try {
        const reachable = await Promise.all(
          conns.map((c) =>
            c.target.connect().then(
              () => c,
              () => undefined,
            ),
          ),
        );
        return await clusterStatus(s, reachable);
      } finally {
        await closeAll(conns);
      }
    },
    exec: (name, argv) => onMember(s, name, (c) => c.exec(argv, { nothrow: true })),
    pids: (name) =>
      onMember(s, name, async (c) =>
        parsePids(s, c.host, (await c.exec(pidsCommand(s, c.host), { nothrow: true })).stdout),
      ),
    logs: (name, service, lines = 40) => {
      if (!SERVICES.includes(service))
        throw new ToolkitError("NO_SERVICE", `no service ${service}`, `services: ${SERVICES.join(", ")}`);
      return onMember(
        s,
        name,
        async (c) => (await c.exec(logsCommand(s, c.host, service, lines), { nothrow: true })).stdout,
      );
    },
  };
}
