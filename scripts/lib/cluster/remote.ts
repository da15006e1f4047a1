/**
 * One SSH connection per cluster host, with deploy-client's runner
 * (scripts/lib/deploy/target.ts): argument arrays quoted in one place, one
 * multiplexed connection per host, host keys pinned in
 * clusters/<name>/known_hosts (TRUST_NEW_HOST=1 records a first-seen key; a
 * changed key is always refused), nothing forwarded.
 */
import { ToolkitError } from "../errors";
import type { RunOptions, RunResult } from "../exec";
import type { ClientSettings } from "../deploy/settings";
import { openTarget, type Target } from "../deploy/target";
import { clusterKnownHosts, type ClusterHost, type ClusterSettings } from "./settings";

export interface HostConn {
  host: ClusterHost;
  target: Target;
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

/** deploy-client's words name clients/<name>/client.env and HOST; a cluster's are cluster.env and HOSTS. Pure. */
export function clusterWords(e: ToolkitError, s: Pick<ClusterSettings, "name">): ToolkitError {
  const fix = (t?: string) =>
    t
      ?.replaceAll(`clients/${s.name}/client.env`, `clusters/${s.name}/cluster.env`)
      .replace(/\bHOST\/SSH_PORT\b/g, "HOSTS/SSH_PORT")
      .replace(/\bfix HOST in\b/g, "fix HOSTS in");
  return new ToolkitError(e.code, fix(e.message)!, fix(e.fix), e.detail);
}

export function openHost(s: ClusterSettings, h: ClusterHost, opts: { trustNewHost?: boolean } = {}): HostConn {
  // openTarget reads only the ssh fields of a client's settings.
  const ssh = {
    name: s.name,
    host: h.ssh,
    sshPort: s.ssh.port,
    sshIdentity: s.ssh.identity,
    sshKnownHosts: clusterKnownHosts(s),
  } as Partial<ClientSettings> as ClientSettings;
  const target = openTarget(ssh, opts);
  return {
    host: h,
    target,
    exec: async (argv, o) => {
      try {
        return await target.exec([...argv], o);
      } catch (e) {
        throw e instanceof ToolkitError ? clusterWords(e, s) : e;
      }
    },
  };
}

/** Open every host (in parallel); on failure the ones opened are closed and the first error is thrown. */
export async function connectAll(
  s: ClusterSettings,
  opts: { trustNewHost?: boolean } = {},
): Promise<{ conns: HostConn[]; recorded: string[] }> {
  const conns = s.hosts.map((h) => openHost(s, h, opts));
  const results = await Promise.allSettled(conns.map((c) => c.target.connect()));
  const failed = results.map((r, i) => ({ r, h: s.hosts[i]! })).filter((x) => x.r.status === "rejected");
  if (failed.length) {
    await closeAll(conns);
    const errs = failed.map((f) => {
      const e = (f.r as PromiseRejectedResult).reason;
      return e instanceof ToolkitError
        ? clusterWords(e, s)
        : new ToolkitError("SSH_FAILED", `${f.h.ssh}: ${String(e)}`);
    });
    const first = errs[0]!;
    const others = errs
      .slice(1)
      .map((e) => `also: ${e.message}`)
      .join("\n");
    throw new ToolkitError(
      first.code,
      `host ${failed[0]!.h.index} (${failed[0]!.h.ssh}): ${first.message}`,
      first.fix,
      [first.detail, others].filter(Boolean).join("\n") || undefined,
    );
  }
  const recorded = results.flatMap((r) => (r.status === "fulfilled" && r.value.recorded ? [r.value.recorded] : []));
  return { conns, recorded };
}

export async function closeAll(conns: HostConn[]): Promise<void> {
  await Promise.all(conns.map((c) => c.target.close()));
}
