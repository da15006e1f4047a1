#!/usr/bin/env bun
/** make cluster-deploy: install/configure every host over SSH, bring the cluster up, verify. */
import { clusterArgs, settingsFor, withHosts } from "./lib/cluster/cli";
import { deployCluster } from "./lib/cluster/deploy";
import { runMain } from "./lib/errors";
import { logLine } from "./lib/ui";

const USAGE = `usage: make cluster-deploy CLUSTER=crm [TRUST_NEW_HOST=1]   (bun scripts/cluster-deploy.ts --cluster crm [--json])
Runs the plan (stops on any problem, nothing changed), then installs missing packages, writes each
host's files (only changed ones), starts etcd, Patroni, HAProxy and vip-manager, and verifies 3 members
with a sync standby, the VIP on the leader's host and a write through it. Safe to re-run.`;
await runMain(async () => {
  const flags = clusterArgs(process.argv.slice(2), USAGE);
  if (flags.help) return void console.log(USAGE);
  const { settings: s } = settingsFor(flags);
  const r = await withHosts(s, !!flags.trustNewHost, async (conns, recorded) => {
    for (const x of recorded) logLine(x);
    return deployCluster(s, conns, flags.json ? () => {} : logLine);
  });
  if (flags.json) return void console.log(JSON.stringify(r, null, 2));
  const what =
    r.started.length || r.restarted.length
      ? `started ${r.started.join(", ") || "nothing"}; restarted ${r.restarted.join(", ") || "nothing"}`
      : "no change";
  logLine(`cluster ${s.name} deployed in ${(r.ms / 1000).toFixed(1)} s: ${what}`);
});
