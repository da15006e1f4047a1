#!/usr/bin/env bun
/** make cluster-switchover: hand the leader role to another member (default: the sync standby); the VIP follows. */
import { clusterArgs, settingsFor, withHosts } from "./lib/cluster/cli";
import { switchover } from "./lib/cluster/switchover";
import { runMain } from "./lib/errors";
import { logLine } from "./lib/ui";

const USAGE =
  "usage: make cluster-switchover CLUSTER=crm [TO=crm2]   (bun scripts/cluster-switchover.ts --cluster crm [--to crm2] [--json])";
await runMain(async () => {
  const flags = clusterArgs(process.argv.slice(2), USAGE);
  if (flags.help) return void console.log(USAGE);
  const { settings: s } = settingsFor(flags);
  const r = await withHosts(s, !!flags.trustNewHost, (conns) => switchover(s, conns, flags.to));
  if (flags.json) return void console.log(JSON.stringify(r));
  logLine(
    `cluster ${s.name}: ${r.from} -> ${r.to}; ${r.to} holds the VIP ${s.vip}; healthy after ${(r.ms / 1000).toFixed(1)} s`,
  );
});
