#!/usr/bin/env bun
/** make alerts: every alert rule and its state (inactive, pending, firing) from the stack's Prometheus. */
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { parseFlags } from "./lib/flags";
import { fetchRuleStates } from "./lib/monitoring";
import { table } from "./lib/ui";

const USAGE =
  "usage: make alerts [STACK=dev]   (bun scripts/alerts.ts [--json])\nevery alert rule (monitoring/alerts.yml.tmpl) and its state; exit 1 when one fires";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { json: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  await openRuntime(cfg, "alerts");
  const rules = await fetchRuleStates(cfg);
  const firing = rules.some((r) => r.state === "firing");
  if (flags.json) {
    console.log(JSON.stringify(rules, null, 2));
    return firing ? 1 : 0;
  }
  const rows = [["alert", "state", "where", "since"]];
  for (const r of rules) {
    if (r.active.length === 0) rows.push([r.alert, r.state, "", ""]);
    for (const a of r.active)
      rows.push([
        r.alert,
        a.state,
        Object.entries(a.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(" "),
        a.since.replace(/\.\d+Z$/, "Z"),
      ]);
  }
  console.log(table(rows));
  for (const r of rules.filter((x) => x.state === "firing")) console.log(`\n${r.alert}: ${r.runbook}`);
  return firing ? 1 : 0;
});
