#!/usr/bin/env bun
/**
 * make cluster-lab: three hosts in network namespaces (each with its own sshd)
 * and an operator namespace, then clusters/lab/cluster.env so every cluster
 * verb works with CLUSTER=lab (run inside the operator namespace by make).
 */
import { LAB_OPERATOR, labUp } from "./lib/cluster/lab";
import { writeLabCluster } from "./lib/cluster/lab-env";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { logLine } from "./lib/ui";

const USAGE =
  "usage: sudo make cluster-lab   (bun scripts/cluster-lab.ts)\nbuilds the namespace lab (removing a leftover one first); make cluster-lab-down removes it";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), {}, USAGE);
  if (flags.help) return void console.log(USAGE);
  const started = Date.now();
  const lab = await labUp(logLine);
  writeLabCluster(lab);
  logLine(
    `wrote clusters/lab/cluster.env and clusters/lab/known_hosts (host keys pinned) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  logLine(`next: make cluster-plan CLUSTER=lab; make cluster-deploy CLUSTER=lab (they run inside ${LAB_OPERATOR.ns})`);
});
