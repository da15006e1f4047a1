#!/usr/bin/env bun
/**
 * make cluster-lab: three hosts in network namespaces (each with its own sshd)
 * and an operator namespace, then clusters/lab/cluster.env so every cluster
 * verb works with CLUSTER=lab (run inside the operator namespace by make).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { clusterDir, clusterEnvFile, clusterEnvText } from "./lib/cluster/settings";
import { LAB_HOST_ROOT_PATTERN, LAB_OPERATOR, labUp } from "./lib/cluster/lab";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { logLine } from "./lib/ui";

const USAGE = "usage: sudo make cluster-lab   (bun scripts/cluster-lab.ts)\nbuilds the namespace lab (removing a leftover one first); make cluster-lab-down removes it";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), {}, USAGE);
  if (flags.help) return void console.log(USAGE);
  const started = Date.now();
  const lab = await labUp(logLine);
  const dir = clusterDir("lab");
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/known_hosts`, lab.knownHosts);
  const env = clusterEnvText(
    {
      CLUSTER_NAME: "lab",
      HOSTS: lab.hosts.map((h) => `${lab.user}@${h.address}`).join(","),
      VIP: lab.vip,
      VIP_PREFIX: "24",
      VIP_INTERFACE: "eth0",
      TIMING: "lan",
      SSH_IDENTITY: lab.identity,
      HOST_ROOT: LAB_HOST_ROOT_PATTERN,
    },
    "The namespace lab (make cluster-lab writes this file; make cluster-lab-down removes it). Machine-local: gitignored.",
  );
  writeFileSync(clusterEnvFile("lab"), env);
  logLine(`wrote clusters/lab/cluster.env and clusters/lab/known_hosts (host keys pinned) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  logLine(`next: make cluster-plan CLUSTER=lab; make cluster-deploy CLUSTER=lab (they run inside ${LAB_OPERATOR.ns})`);
});
