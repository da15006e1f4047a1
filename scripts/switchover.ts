#!/usr/bin/env bun
/**
 * make switchover [TO=pg2] / make restart-member MEMBER=pg1: planned leader
 * moves with clients held in pgbouncer (CHECKPOINT -> PAUSE -> Patroni -> HAProxy
 * routes to the new leader -> RESUME). One entry for both verbs: --restart-member names the member.
 */
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { parseFlags } from "./lib/flags";
import { planRestart, planSwitchover, runMaintenance } from "./lib/maintenance";
import { requireClusterView } from "./lib/patroni";
import { logLine } from "./lib/ui";

const USAGE = `usage: make switchover [TO=pgN] [STACK=dev]
       make restart-member MEMBER=pgN [STACK=dev]
       bun scripts/switchover.ts [--to pgN] [--restart-member pgN] [--pause-timeout S] [--json]

switchover: CHECKPOINT on the leader (so its demote has little left to flush), PAUSE pgbouncer (in-flight transactions finish; new ones wait in the pooler,
bounded by POOL_PAUSE_TIMEOUT), Patroni switchover to TO (default: the sync standby), wait
until HAProxy routes read-write to the new leader, RESUME. Clients see a pause, not an error.
restart-member: a replica restarts in place; the leader is first switched away as above.
On any failure pgbouncer is resumed and the error names the step.`;

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    { to: "string", restartMember: "string", pauseTimeout: "number", json: "boolean" },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  await openRuntime(cfg, flags.restartMember !== undefined ? "restart-member" : "switchover");
  if (!cfg.secrets.PATRONI_API_PASSWORD)
    throw new ToolkitError("NO_SECRETS", `${cfg.secretsFile} does not exist yet`, "run `make dev-up` first");
  const view = await requireClusterView(cfg);
  const member = flags.restartMember;
  const to = flags.to ?? (process.env.TO || undefined);
  const plan = member !== undefined ? planRestart(view, member) : planSwitchover(view, to);
  // Ctrl-C: stop at the next step; the runner resumes pgbouncer on the way out.
  const ac = new AbortController();
  process.removeAllListeners("SIGINT");
  process.on("SIGINT", () => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write("\ninterrupted: stopping at the next step (pgbouncer will be resumed)\n");
    ac.abort();
  });
  const r = await runMaintenance(cfg, plan, {
    signal: ac.signal,
    pauseTimeoutS: flags.pauseTimeout,
    progress: flags.json ? undefined : (s, m) => logLine(`${s.padEnd(11)} ${m}`),
  });
  if (flags.json) console.log(JSON.stringify(r, null, 2));
  else
    logLine(
      `${plan.op} done in ${(r.ms / 1000).toFixed(1)} s; clients waited in the pooler for ${(r.pausedMs / 1000).toFixed(1)} s`,
    );
});
