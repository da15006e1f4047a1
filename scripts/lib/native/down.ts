/** The native runtime's down: front doors first, replicas before the leader, etcd last. Data is kept. */
import type { Config } from "../config";
import { monitoringDown } from "../monitoring";
import { logRotatorSpec } from "../logrotate";
import { clusterView } from "../patroni";
import { runningPid, type ProcSpec } from "../procs";
import type { DownResult, Progress } from "../runtime";
import { legacyEtcdSpecs, procSpecs, stopComponent } from "./specs";

export async function nativeDown(cfg: Config, progress: Progress): Promise<DownResult> {
  const specs = procSpecs(cfg);
  const stopped: string[] = [];
  const stop = async (s: ProcSpec) => {
    if (await stopComponent(cfg, s, 60_000)) {
      stopped.push(s.name);
      progress(s.name, "stopped");
    }
  };
  await stop(logRotatorSpec(cfg));
  await monitoringDown(cfg, stop);
  await stop(specs.nginx);
  await stop(specs.pool);
  await stop(specs.haproxy);
  const view = await clusterView(cfg);
  const leader = view?.members.find((m) => m.role === "leader")?.name;
  const ordered = [...specs.patroni].sort((a, b) => Number(a.name === leader) - Number(b.name === leader));
  for (const s of ordered) await stop(s);
  // They share a pid file, and stopping a spec that is not running drops it: stop only the one that runs.
  for (const s of legacyEtcdSpecs(cfg)) if (runningPid(s)) await stop(s);
  for (const s of specs.etcd) await stop(s);
  return { stopped };
}
