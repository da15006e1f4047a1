#!/usr/bin/env bun
/** make cluster-drill: one failure (partition-leader, kill-host, partition-etcd-minority) under a write load, healed, with its figures. */
import { clusterArgs, settingsFor } from "./lib/cluster/cli";
import { drill, labActions, parseScenario } from "./lib/cluster/drill";
import { runMain } from "./lib/errors";
import { logLine } from "./lib/ui";

const USAGE = `usage: make cluster-drill CLUSTER=lab SCENARIO=partition-leader|kill-host|partition-etcd-minority
   (bun scripts/cluster-drill.ts --cluster lab --scenario kill-host [--json]; make runs it in the lab's operator namespace)
Under a write load through the VIP: cuts the leader's link, powers the leader's host off, or cuts the sync
standby's link; probes every host's Postgres directly for writes; heals; waits for 3 healthy members.
Exit 1 when an acknowledged write was lost or two hosts accepted writes at the same moment.
Needs the namespace lab (make cluster-lab): on real hosts the toolkit has no switch to cut (see README).`;
await runMain(async () => {
  const flags = clusterArgs(process.argv.slice(2), USAGE);
  if (flags.help) return void console.log(USAGE);
  const { settings: s } = settingsFor(flags);
  const scenario = parseScenario(flags.scenario);
  const r = await drill(s, scenario, labActions(s), flags.json ? () => {} : logLine);
  const bad = r.lost.length > 0 || r.twoWritable.length > 0;
  if (flags.json) console.log(JSON.stringify(r));
  else
    logLine(
      `${scenario} on ${r.victim}: leader ${r.leaderBefore} -> ${r.leaderAfter}; write gap ${(r.writeGapMs / 1000).toFixed(1)} s; ` +
        `${r.acked} acknowledged writes, ${r.lost.length} lost; ${r.twoWritable.length} of ${r.probeRounds} probe rounds with two writable hosts; ` +
        `rejoined ${(r.rejoinMs / 1000).toFixed(1)} s after heal`,
    );
  return bad ? 1 : 0;
});
