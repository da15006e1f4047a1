#!/usr/bin/env bun
/** make cluster-status: members, roles, sync standby, VIP holder, etcd, pids of a cluster on three hosts. */
import { clusterArgs } from "./lib/cluster/cli";
import { SERVICES } from "./lib/cluster/commands";
import { multiHostRuntime } from "./lib/cluster/index";
import { runMain } from "./lib/errors";
import { table } from "./lib/ui";

const USAGE =
  "usage: make cluster-status CLUSTER=crm [ARGS=--json]   (bun scripts/cluster-status.ts --cluster crm [--json])\nexit 0 when healthy, 1 when not";
await runMain(async () => {
  const flags = clusterArgs(process.argv.slice(2), USAGE);
  if (flags.help) return void console.log(USAGE);
  // A host that cannot be reached is a row of the status, not an error of the command.
  const st = await multiHostRuntime(flags.cluster!).status();
  if (flags.json) console.log(JSON.stringify(st, null, 2));
  else {
    console.log(
      `cluster ${st.cluster} (${st.timing}): ${st.health.ok ? "healthy" : "NOT healthy: " + st.health.problems.join(", ")}`,
    );
    console.log(
      table([
        ["member", "host", "role", "state", "timeline", "lag"],
        ...st.members.map((m) => [m.name, m.host, m.role, m.state, String(m.timeline ?? "-"), String(m.lag ?? "-")]),
      ]),
    );
    console.log("");
    console.log(
      table([
        ["host", "address", "ssh", "etcd", "VIP", "pids (etcd patroni haproxy vip-manager)"],
        ...st.hosts.map((h) => [
          h.name,
          h.address,
          h.reachable ? "ok" : "DOWN",
          h.etcdHealthy ? "healthy" : "NOT healthy",
          h.holdsVip ? st.vip : "-",
          SERVICES.map((n) => h.pids[n] ?? "-").join(" "),
        ]),
      ]),
    );
  }
  return st.health.ok ? 0 : 1;
});
