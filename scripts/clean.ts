#!/usr/bin/env bun
/** make clean: stop the stack and delete its state (data, logs, rendered files) and what refers to it (app registry, app env files). Asks first, or --yes / YES=1. */
import * as p from "@clack/prompts";
import { applyClean, describeClean, planClean, planIsEmpty } from "./lib/clean";
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { envFlag, parseFlags } from "./lib/flags";
import { openRuntime } from "./lib/runtimes/index";
import { isInteractive, logLine } from "./lib/ui";

const USAGE = `usage: make clean [STACK=dev] [YES=1]   (bun scripts/clean.ts [--yes] [--purge-secrets])
Stops the stack and deletes every database of it (data, logs, backups, rendered files), the app
registry and the apps' env files (they name databases and roles that go with the data; the dev
stack's committed envs/apps.yaml is emptied, not deleted). Lists what it deletes and keeps first.
  --yes            do not ask (make: YES=1)
  --purge-secrets  also delete the generated passwords (envs/.secrets.<stack>.env); kept by default`;
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { yes: "boolean", purgeSecrets: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const rt = await openRuntime(cfg, "clean");
  const opts = { purgeSecrets: Boolean(flags.purgeSecrets) };
  const plan = planClean(cfg, opts);
  if (planIsEmpty(plan)) return void logLine(`stack ${cfg.stack}: nothing to clean`);
  const lines = describeClean(cfg, plan, opts);
  if (!(flags.yes || envFlag("YES"))) {
    if (!isInteractive())
      throw new ToolkitError(
        "NEEDS_CONFIRMATION",
        `make clean deletes all data of stack ${cfg.stack}:\n  ${lines.join("\n  ")}`,
        "re-run with YES=1 (make) or --yes (script)",
      );
    p.note(lines.join("\n"), `clean stack ${cfg.stack}`);
    const ok = await p.confirm({ message: `Delete ALL data of stack ${cfg.stack}?`, initialValue: false });
    if (p.isCancel(ok) || !ok) return void logLine("cancelled: nothing deleted");
  }
  await rt.down((c, m) => logLine(`${c}: ${m}`));
  for (const r of (await rt.removeAll?.()) ?? []) logLine(r);
  const done = applyClean(cfg, plan, opts);
  logLine(`deleted ${done.map((d) => d.replace(cfg.rootDir + "/", "")).join(", ")}`);
  for (const k of plan.kept) logLine(`kept ${k.path.replace(cfg.rootDir + "/", "")}: ${k.why}`);
});
