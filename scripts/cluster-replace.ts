#!/usr/bin/env bun
/** make cluster-replace: swap a member's host for a new one (etcd member remove/add, Patroni re-clones). */
import { readFileSync } from "node:fs";
import { clusterArgs, settingsFor } from "./lib/cluster/cli";
import { replaceHost } from "./lib/cluster/replace";
import { clusterEnvFile } from "./lib/cluster/settings";
import { runMain } from "./lib/errors";
import { logLine } from "./lib/ui";

const USAGE = `usage: make cluster-replace CLUSTER=crm OLD=crm3 NEW=ops@10.0.0.4 [TRUST_NEW_HOST=1]
       bun scripts/cluster-replace.ts --cluster crm --old crm3 --new ops@10.0.0.4 [--trust-new-host] [--json]
OLD: the member's name, address or user@address; it may be dead. NEW takes its place in HOSTS (and its
member name). Preflight of NEW first (ssh, sudo, architecture, no other cluster, not a member): nothing
changes on a problem. Then: a switchover if OLD leads, OLD's services stopped, etcd member remove OLD and
member add NEW, clusters/<CLUSTER>/cluster.env's HOSTS rewritten, every host's files re-rendered (Patroni
reloaded, HAProxy and vip-manager restarted on their new member lists), NEW's etcd joins, its Patroni
clones from the leader; done at 3 members with a sync standby. A re-run after it says so and changes nothing.`;
await runMain(async () => {
  const flags = clusterArgs(process.argv.slice(2), USAGE);
  if (flags.help) return void console.log(USAGE);
  const { settings: s } = settingsFor(flags);
  const r = await replaceHost(s, readFileSync(clusterEnvFile(s.name), "utf8"), flags.old, flags.new, {
    trustNewHost: !!flags.trustNewHost,
    log: flags.json ? () => {} : logLine,
  });
  if (flags.json) return void console.log(JSON.stringify(r, null, 2));
  if (r.alreadyDone)
    return void logLine(
      `cluster ${s.name}: ${r.new.address} is already member ${r.new.name} and the cluster is healthy; nothing changed`,
    );
  logLine(
    `cluster ${s.name}: ${r.old ? `${r.old.name} (${r.old.address})` : "the old member"} replaced by ${r.new.address} in ${(r.ms / 1000).toFixed(1)} s; ${r.status.leader} leads, ${r.status.syncStandby} is the sync standby`,
  );
});
