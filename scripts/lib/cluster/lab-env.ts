/** clusters/lab/cluster.env for the namespace lab (lab.ts builds the lab; this names it as a cluster). */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LAB_HOST_ROOT_PATTERN, type LabInfo } from "./lab";
import { clusterDir, clusterEnvFile, clusterEnvText } from "./settings";

/** clusters/lab/cluster.env and known_hosts (the lab's host keys, pinned) so every cluster verb works with CLUSTER=lab. */
export function writeLabCluster(lab: LabInfo, root?: string): void {
  mkdirSync(clusterDir("lab", root), { recursive: true });
  writeFileSync(join(clusterDir("lab", root), "known_hosts"), lab.knownHosts);
  const values = {
    CLUSTER_NAME: "lab",
    HOSTS: lab.hosts.map((h) => `${lab.user}@${h.address}`).join(","),
    VIP: lab.vip,
    VIP_PREFIX: "24",
    VIP_INTERFACE: "eth0",
    TIMING: "lan",
    SSH_IDENTITY: lab.identity,
    HOST_ROOT: LAB_HOST_ROOT_PATTERN,
  };
  writeFileSync(
    clusterEnvFile("lab", root),
    clusterEnvText(
      values,
      "The namespace lab (make cluster-lab writes this file; make cluster-lab-down removes it). Machine-local: gitignored.",
    ),
  );
}
