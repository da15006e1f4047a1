#!/usr/bin/env bun
/** make clean: stop the stack and delete its state (data, logs, rendered files). Asks first, or --yes / YES=1. */
import { existsSync, rmSync } from "node:fs";
import * as p from "@clack/prompts";
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { envFlag, parseFlags } from "./lib/flags";
import { nativeDown } from "./lib/native";
import { isInteractive, logLine } from "./lib/ui";

const USAGE = "usage: make clean [STACK=dev] [YES=1]   (bun scripts/clean.ts [--yes] [--keep-secrets])\nDeletes every database of the stack. Generated secrets are kept unless --purge-secrets.";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { yes: "boolean", purgeSecrets: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const targets = [cfg.stateDir, cfg.memberRoot].filter((d, i, a) => existsSync(d) && a.indexOf(d) === i);
  if (targets.length === 0) return void logLine(`stack ${cfg.stack}: nothing to clean`);
  if (!(flags.yes || envFlag("YES"))) {
    if (!isInteractive()) throw new ToolkitError("NEEDS_CONFIRMATION", `make clean deletes all data of stack ${cfg.stack} (${targets.join(", ")})`, "re-run with YES=1 (make) or --yes (script)");
    const ok = await p.confirm({ message: `Delete ALL data of stack ${cfg.stack}? (${targets.join(", ")})`, initialValue: false });
    if (p.isCancel(ok) || !ok) return void logLine("cancelled: nothing deleted");
  }
  await nativeDown(cfg, (c, m) => logLine(`${c}: ${m}`));
  for (const d of targets) rmSync(d, { recursive: true, force: true });
  if (flags.purgeSecrets) rmSync(cfg.secretsFile, { force: true });
  logLine(`deleted ${targets.join(", ")}${flags.purgeSecrets ? ` and ${cfg.secretsFile}` : ""}`);
});
