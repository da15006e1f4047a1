#!/usr/bin/env bun
/** make test-failover: a failover drill under write load that measures RTO and RPO and fails loudly. */
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { defaultBudgetMs, parseScenarios, SCENARIOS } from "./lib/failover/analysis";
import { undoPendingFault } from "./lib/failover/deal";
import { convergence } from "./lib/failover/monitor";
import { defaultDrillOptions } from "./lib/failover/options";
import { failoverDrill } from "./lib/failover/index";
import { resultRows, summaryRows } from "./lib/failover/report";
import { openRuntime, runtimeFor } from "./lib/runtimes/index";
import { ensureSecrets } from "./lib/secrets";
import { logLine, table } from "./lib/ui";

const USAGE = `usage: make test-failover [SCENARIO=kill-primary|all|a,b] [ROUNDS=1] [RTO_BUDGET=<s>] [STACK=dev]
       bun scripts/test-failover.ts [--scenario S] [--rounds N] [--rto-budget S] [--candidate pgN]
                                    [--writers N] [--rate N] [--hang S] [--hold S] [--keep-data] [--no-up] [--json]

Runs a failover drill against the running stack (brings it up if it is down):
concurrent writers through HAProxy's read-write port and a reader on the
read-only port, a fault, then checks that every acknowledged write survived,
that the cluster is back to 3 members with a sync standby, and how long writes
were unavailable (RTO). Exit 1 if a write was lost, RTO exceeded the budget, or
the cluster did not converge.

scenarios: ${SCENARIOS.join(", ")} (or all)
  --rto-budget S  fail above this RTO (default: ttl + loop_wait + HAProxy max(rise,fall) x inter + 2 s;
                  hang-primary +2 s, Patroni's timeout for asking a hung member)
  --candidate     switchover target (default: the sync standby)
  --writers/--rate  concurrent writers (4) and writes per second each (50)
  --hang S        how long hang-primary keeps the leader stopped (ttl + 5)
  --hold S        how long the etcd scenarios keep members down (ttl + 5)
  --keep-data     keep the drill's tables (schema pgplatform_drill) until the next drill
  --no-up         fail instead of bringing a stopped stack up
Reports: <state>/reports/failover-<time>.json, .html and one .svg per scenario round.`;

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    {
      scenario: "string",
      rounds: "number",
      rtoBudget: "number",
      candidate: "string",
      writers: "number",
      rate: "number",
      hang: "number",
      hold: "number",
      keepData: "boolean",
      noUp: "boolean",
      json: "boolean",
    },
    "run `bun scripts/test-failover.ts --help` for the flags",
  );
  if (flags.help) return void console.log(USAGE);
  const scenarios = parseScenarios(flags.scenario ?? process.env.SCENARIO);
  if (!Array.isArray(scenarios)) {
    throw new ToolkitError(
      "BAD_SCENARIO",
      `unknown scenario ${scenarios.unknown.join(", ")}`,
      `use one of ${SCENARIOS.join(", ")}, a comma list, or all`,
    );
  }
  const rounds = flags.rounds ?? Number(process.env.ROUNDS || 1);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100)
    throw new ToolkitError(
      "BAD_FLAG",
      `--rounds must be a whole number 1-100 (got ${rounds})`,
      "e.g. ROUNDS=5 (make) or --rounds 5",
    );
  const positive = (name: string, v: number | undefined, max: number) => {
    if (v !== undefined && !(v > 0 && v <= max))
      throw new ToolkitError("BAD_FLAG", `--${name} must be above 0 and at most ${max} (got ${v})`);
    return v;
  };
  const budgetS = positive(
    "rto-budget",
    flags.rtoBudget ?? (process.env.RTO_BUDGET ? Number(process.env.RTO_BUDGET) : undefined),
    3600,
  );
  positive("writers", flags.writers, 64);
  positive("rate", flags.rate, 2000);
  positive("hang", flags.hang, 600);
  positive("hold", flags.hold, 600);
  if (flags.writers !== undefined && !Number.isInteger(flags.writers))
    throw new ToolkitError("BAD_FLAG", `--writers must be a whole number (got ${flags.writers})`);

  let cfg = loadConfig();
  // The drill signals the member processes directly: only the native runtime carries it out.
  const native = await openRuntime(cfg, "test-failover");
  ensureSecrets(cfg.secretsFile); // registers secrets for redaction
  cfg = loadConfig(cfg.stack);
  const rt = runtimeFor(cfg, native.name);
  if (flags.candidate && !cfg.members.some((m) => m.name === flags.candidate)) {
    throw new ToolkitError(
      "BAD_CANDIDATE",
      `no member named ${flags.candidate}`,
      `pick one of ${cfg.members.map((m) => m.name).join(", ")}`,
    );
  }
  const defaults = defaultDrillOptions(cfg);
  const ttlMs = cfg.timing.ttl * 1000;
  const hangMs = flags.hang !== undefined ? flags.hang * 1000 : defaults.hangMs;
  if (scenarios.includes("hang-primary") && hangMs <= ttlMs) {
    throw new ToolkitError(
      "BAD_FLAG",
      `--hang must exceed the leader ttl (${cfg.timing.ttl} s), or the lock never expires`,
      `e.g. --hang ${cfg.timing.ttl + 5}`,
    );
  }
  const opts = {
    ...defaults,
    writers: flags.writers ?? defaults.writers,
    ratePerWriter: flags.rate ?? defaults.ratePerWriter,
    hangMs,
    holdMs: flags.hold !== undefined ? flags.hold * 1000 : defaults.holdMs,
    candidate: flags.candidate,
    keepData: !!flags.keepData,
    budgetMs: budgetS !== undefined ? Math.round(budgetS * 1000) : undefined,
  };
  const say = flags.json ? () => {} : logLine;
  // Interrupted mid-fault (Ctrl-C, a CI timeout): give back what the drill took, so the cluster is not left a member short.
  process.on("exit", undoPendingFault);
  process.on("SIGTERM", () => process.exit(143));

  const now = await convergence(cfg, rt);
  if (!now.ok) {
    if (flags.noUp)
      throw new ToolkitError(
        "CLUSTER_UNHEALTHY",
        `stack ${cfg.stack} is not healthy: ${now.problems.join(", ")}`,
        "run `make dev-up` (or drop --no-up)",
      );
    say(`stack ${cfg.stack} is not healthy (${now.problems.join(", ")}): bringing it up`);
    await rt.up((c, m) => say(`  ${c} ${m}`));
  }
  say(
    `failover drill on stack ${cfg.stack}: ${scenarios.join(", ")} x ${rounds}; RTO budget ${
      opts.budgetMs !== undefined
        ? (opts.budgetMs / 1000).toFixed(1)
        : scenarios
            .map((s) => (defaultBudgetMs(cfg, s) / 1000).toFixed(0))
            .filter((v, i, a) => a.indexOf(v) === i)
            .join("/")
    } s (ttl ${cfg.timing.ttl}, loop_wait ${cfg.timing.loopWait}, retry_timeout ${cfg.timing.retryTimeout})`,
  );
  const res = await failoverDrill(cfg, rt, scenarios, rounds, opts, (s, m) => say(`${s.padEnd(18)} ${m}`));
  if (flags.json) {
    const { results, ...rest } = res.report;
    console.log(JSON.stringify({ ...rest, results: results.map(({ series, ...r }) => r), files: res.files }, null, 2));
    return res.passed ? 0 : 1;
  }
  console.log("");
  console.log(table(resultRows(res.report.results)));
  if (rounds > 1) {
    console.log("");
    console.log(table(summaryRows(res.report.results)));
  }
  for (const r of res.report.results.filter((x) => !x.passed))
    console.log(`\nFAIL ${r.scenario} round ${r.round}:\n  - ${r.failures.join("\n  - ")}`);
  const rel = (f: string) => f.replace(cfg.rootDir + "/", "");
  console.log(`\nreport ${rel(res.files.json)}\npicture ${rel(res.files.html)} (+ ${res.files.svgs.length} svg)`);
  console.log(res.passed ? "failover drill passed" : "failover drill FAILED");
  return res.passed ? 0 : 1;
});
