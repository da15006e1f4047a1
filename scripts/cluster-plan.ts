#!/usr/bin/env bun
/** make cluster-plan: read-only preflight of the three hosts of a cluster over SSH. */
import { clusterArgs, settingsFor, withHosts } from "./lib/cluster/cli";
import { planCluster, planError } from "./lib/cluster/plan";
import { runMain } from "./lib/errors";
import { logLine, table } from "./lib/ui";

const USAGE = `usage: make cluster-plan CLUSTER=crm [HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3 VIP=10.0.0.50] [TRUST_NEW_HOST=1]
       bun scripts/cluster-plan.ts --cluster crm [--hosts ...] [--vip ...] [--trust-new-host] [--json]
Checks every host (ssh with the pinned host key, passwordless sudo, architecture, one machine per
host, VIP free, no other cluster, interface, ports, packages) and changes nothing on them. Given
HOSTS and VIP for a new cluster, it writes clusters/<CLUSTER>/cluster.env. Exit 1 on any problem.`;
await runMain(async () => {
  const flags = clusterArgs(process.argv.slice(2), USAGE);
  if (flags.help) return void console.log(USAGE);
  const started = Date.now();
  const { settings: s, wrote } = settingsFor(flags, true);
  if (wrote) logLine(`wrote ${wrote}`);
  const report = await withHosts(s, !!flags.trustNewHost, async (conns, recorded) => {
    for (const r of recorded) logLine(r);
    return planCluster(s, conns);
  });
  const ms = Date.now() - started;
  if (flags.json) console.log(JSON.stringify({ ...report, totalMs: ms }, null, 2));
  else {
    console.log(
      table([
        ["host", "arch", "sudo", "cluster", "VIP here", "missing packages"],
        ...report.hosts.map((h) => [
          h.host,
          h.arch,
          h.sudo ? "yes" : "NO",
          h.memberOf ?? "-",
          h.holdsVip ? "yes" : "no",
          h.missingPackages.join(" ") || "-",
        ]),
      ]),
    );
  }
  const err = planError(report);
  if (err) throw err;
  if (!flags.json)
    logLine(
      `plan for ${s.name}: ready to deploy (${(ms / 1000).toFixed(1)} s); next: make cluster-deploy CLUSTER=${s.name}`,
    );
});
