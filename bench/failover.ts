#!/usr/bin/env bun
/**
 * make bench-failover: ROUNDS (default 5) of kill-primary, switchover and
 * crash-postgres on the running stack. For each scenario: the median
 * end-to-end RTO a client sees, next to Patroni's own promotion time from its
 * /history on the same runs (the raw tool's figure) and the ratio between
 * them, the budget and the goal. Prints figures; never part of `make test`.
 */
import { loadConfig } from "../scripts/lib/config";
import { runMain, ToolkitError } from "../scripts/lib/errors";
import { parseFlags } from "../scripts/lib/flags";
import { defaultBudgetMs, median, parseScenarios, type Scenario } from "../scripts/lib/failover/analysis";
import { defaultDrillOptions } from "../scripts/lib/failover/options";
import { openRuntime } from "../scripts/lib/runtimes/index";
import { failoverDrill } from "../scripts/lib/failover/index";
import { ensureSecrets } from "../scripts/lib/secrets";
import { logLine, table } from "../scripts/lib/ui";

/** The goals for the fast LAN profile (ttl 10, loop_wait 1, retry_timeout 3), median RTO in seconds. */
const GOALS: Partial<Record<Scenario, number>> = { "kill-primary": 12, switchover: 3, "crash-postgres": 6 };

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    { rounds: "number", scenario: "string" },
    "usage: make bench-failover [ROUNDS=5] [SCENARIO=kill-primary,switchover,crash-postgres]",
  );
  if (flags.help) return void console.log("usage: make bench-failover [ROUNDS=5] [SCENARIO=...] (STACK must be up)");
  const scenarios = parseScenarios(flags.scenario ?? "kill-primary,switchover,crash-postgres");
  if (!Array.isArray(scenarios))
    throw new ToolkitError("BAD_SCENARIO", `unknown scenario ${scenarios.unknown.join(", ")}`);
  let cfg = loadConfig();
  ensureSecrets(cfg.secretsFile);
  cfg = loadConfig(cfg.stack);
  const rounds = flags.rounds ?? 5;
  const opts = defaultDrillOptions(cfg);
  logLine(
    `bench-failover: ${scenarios.join(", ")} x ${rounds} on stack ${cfg.stack} (ttl ${cfg.timing.ttl}, loop_wait ${cfg.timing.loopWait}, retry_timeout ${cfg.timing.retryTimeout})`,
  );
  const res = await failoverDrill(cfg, await openRuntime(cfg, "test-failover"), scenarios, rounds, opts, (s, m) =>
    logLine(`${s.padEnd(18)} ${m}`),
  );
  const s1 = (ms: number | null) => (ms === null ? "-" : (ms / 1000).toFixed(1));
  const rows = [
    [
      "scenario",
      "rounds",
      "passed",
      "median RTO s",
      "min-max s",
      "Patroni promote s",
      "RTO / promote",
      "budget s",
      "goal s",
      "lost writes",
    ],
  ];
  for (const sc of scenarios) {
    const rs = res.report.results.filter((r) => r.scenario === sc);
    const rto = rs.map((r) => r.metrics.rtoMs).filter((x): x is number => x !== null);
    const promo = rs.map((r) => r.metrics.promotionMs).filter((x): x is number => x !== null);
    const mRto = median(rto);
    const mPromo = median(promo);
    rows.push([
      sc,
      String(rs.length),
      String(rs.filter((r) => r.passed).length),
      s1(mRto),
      rto.length ? `${s1(Math.min(...rto))}-${s1(Math.max(...rto))}` : "-",
      s1(mPromo),
      mRto !== null && mPromo ? `${(mRto / mPromo).toFixed(2)}x` : "-",
      s1(defaultBudgetMs(cfg, sc)),
      GOALS[sc] !== undefined
        ? `<= ${GOALS[sc]}${mRto !== null ? (mRto <= GOALS[sc]! * 1000 ? " met" : " MISSED") : ""}`
        : "-",
      String(rs.reduce((n, r) => n + r.metrics.lost.length, 0)),
    ]);
  }
  console.log("");
  console.log(table(rows));
  console.log(
    `\nRTO: longest stretch without an acknowledged write after the fault, as a client sees it through HAProxy.`,
  );
  console.log(
    `Patroni promote: fault -> the promotion timestamp in Patroni's /history (the raw tool's own view; "-" when the timeline did not change).`,
  );
  console.log(`report ${res.files.json.replace(cfg.rootDir + "/", "")}`);
  return res.passed ? 0 : 1;
});
