#!/usr/bin/env bun
/**
 * make bench-cluster: ROUNDS (default 5) of partition-leader and kill-host on
 * the namespace lab (built, deployed and removed here; root). Per scenario:
 * the median write gap a client sees through the VIP next to Patroni's own
 * promotion time from its /history (the raw tool's figure) and their ratio,
 * acknowledged writes lost, probe rounds with two writable primaries, the
 * rejoin time after heal; printed against issue 14's goals. Never in `make test`.
 */
import { rmSync } from "node:fs";
import type { DrillResult, DrillScenario } from "../scripts/lib/cluster/drill";
import { inNs, labDown, labUp } from "../scripts/lib/cluster/lab";
import { writeLabCluster } from "../scripts/lib/cluster/lab-env";
import { clusterDir } from "../scripts/lib/cluster/settings";
import { runMain, ToolkitError } from "../scripts/lib/errors";
import { median } from "../scripts/lib/failover/analysis";
import { run } from "../scripts/lib/exec";
import { parseFlags } from "../scripts/lib/flags";
import { logLine, table } from "../scripts/lib/ui";

const SCENARIOS: DrillScenario[] = ["partition-leader", "kill-host"];
/** issue 14's goals (lan preset): median write gap, rejoin after heal. */
const GOAL = { gapS: 15, rejoinS: 60 };

const inOperator = (script: string, ...args: string[]) =>
  run(inNs("pgplab-op", [process.execPath, script, "--cluster", "lab", "--json", ...args]), {
    cwd: `${import.meta.dir}/..`,
    nothrow: true,
    timeoutMs: 600_000,
  });

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { rounds: "number" }, "usage: make bench-cluster [ROUNDS=5] (root)");
  if (flags.help)
    return void console.log("usage: make bench-cluster [ROUNDS=5]   (root; builds and removes the namespace lab)");
  const rounds = flags.rounds ?? 5;
  const results: DrillResult[] = [];
  try {
    writeLabCluster(await labUp());
    const dep = await inOperator("scripts/cluster-deploy.ts");
    if (dep.code !== 0)
      throw new ToolkitError("DEPLOY_FAILED", "deploying the lab failed", undefined, dep.stderr.trim());
    logLine(
      `lab deployed in ${(JSON.parse(dep.stdout).ms / 1000).toFixed(1)} s; ${rounds} round(s) of ${SCENARIOS.join(", ")}`,
    );
    for (let i = 1; i <= rounds; i++)
      for (const sc of SCENARIOS) {
        const r = await inOperator("scripts/cluster-drill.ts", "--scenario", sc);
        const line = r.stdout.trim().split("\n").pop() ?? "";
        if (!line.startsWith("{"))
          throw new ToolkitError(
            "DRILL_FAILED",
            `${sc} round ${i} failed`,
            undefined,
            r.stderr.trim().split("\n").slice(-8).join("\n"),
          );
        const d = JSON.parse(line) as DrillResult;
        results.push(d);
        logLine(
          `round ${i} ${sc.padEnd(16)} victim ${d.victim}: gap ${(d.writeGapMs / 1000).toFixed(1)} s, Patroni promoted ${d.patroniPromotedMs === undefined ? "-" : (d.patroniPromotedMs / 1000).toFixed(1)} s, lost ${d.lost.length}, two writable ${d.twoWritable.length}/${d.probeRounds}, rejoin ${(d.rejoinMs / 1000).toFixed(1)} s`,
        );
      }
  } finally {
    await labDown();
    rmSync(clusterDir("lab"), { recursive: true, force: true });
  }
  const s1 = (ms: number | null | undefined) => (ms === null || ms === undefined ? "-" : (ms / 1000).toFixed(1));
  const rows = [
    [
      "scenario",
      "rounds",
      "median gap s",
      "min-max gap s",
      "Patroni promote s",
      "gap / promote",
      "acked",
      "lost",
      "two writable",
      "median rejoin s",
      "max rejoin s",
      "goals",
    ],
  ];
  for (const sc of SCENARIOS) {
    const rs = results.filter((r) => r.scenario === sc);
    const gaps = rs.map((r) => r.writeGapMs);
    const promote = median(rs.map((r) => r.patroniPromotedMs).filter((x): x is number => x !== undefined));
    const gap = median(gaps);
    rows.push([
      sc,
      String(rs.length),
      s1(gap),
      `${s1(Math.min(...gaps))}-${s1(Math.max(...gaps))}`,
      s1(promote),
      gap !== null && promote ? (gap / promote).toFixed(2) : "-",
      String(rs.reduce((a, r) => a + r.acked, 0)),
      String(rs.reduce((a, r) => a + r.lost.length, 0)),
      String(rs.reduce((a, r) => a + r.twoWritable.length, 0)),
      s1(median(rs.map((r) => r.rejoinMs))),
      s1(Math.max(...rs.map((r) => r.rejoinMs))),
      `gap <= ${GOAL.gapS} s, 0 lost, 0 two writable, rejoin <= ${GOAL.rejoinS} s`,
    ]);
  }
  console.log(table(rows));
  const missed = results.filter((r) => r.lost.length || r.twoWritable.length || r.rejoinMs > GOAL.rejoinS * 1000);
  return missed.length ? 1 : 0;
});
