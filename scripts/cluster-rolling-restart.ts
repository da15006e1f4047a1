#!/usr/bin/env bun
/** make cluster-rolling-restart: replicas one at a time, a switchover to the sync standby, then the old leader. */
import { clusterArgs, settingsFor, withHosts } from "./lib/cluster/cli";
import { rollingRestart } from "./lib/cluster/rolling";
import { runMain } from "./lib/errors";
import { logLine } from "./lib/ui";

const USAGE = `usage: make cluster-rolling-restart CLUSTER=crm   (bun scripts/cluster-rolling-restart.ts --cluster crm [--json])
Restarts Patroni and Postgres on every host, one at a time: the replicas first (each waited for until it
streams again), then a switchover to the sync standby (the VIP follows), then the old leader. Clients
through the VIP see one short write gap, at the switchover. Refused unless the cluster is healthy.`;
await runMain(async () => {
  const flags = clusterArgs(process.argv.slice(2), USAGE);
  if (flags.help) return void console.log(USAGE);
  const { settings: s } = settingsFor(flags);
  const r = await withHosts(s, !!flags.trustNewHost, (conns) =>
    rollingRestart(s, conns, flags.json ? () => {} : logLine),
  );
  if (flags.json) return void console.log(JSON.stringify(r));
  logLine(
    `cluster ${s.name}: rolling restart done in ${(r.ms / 1000).toFixed(1)} s; ${r.leader} leads with the VIP ${s.vip}`,
  );
});
