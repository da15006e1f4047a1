#!/usr/bin/env bun
/**
 * Alertmanager's webhook -> BACKUP_ALERT_COMMAND (Alertmanager cannot run a command).
 * Started by dev-up when MONITORING=true and BACKUP_ALERT_COMMAND is set; listens on the
 * stack's address next to Alertmanager and answers only a caller with the token in
 * <member root>/monitoring/relay.token (Alertmanager's credentials_file).
 */
import { readFileSync } from "node:fs";
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { monitoringFiles, relayHandler, relayPort } from "./lib/monitoring";

const USAGE = "usage: bun scripts/alert-relay.ts --stack <stack>   (run by make dev-up)";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { stack: "string" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  if (!flags.stack) throw new ToolkitError("USAGE", "--stack is required", USAGE);
  const cfg = loadConfig(flags.stack);
  if (!cfg.backup.alertCommand)
    throw new ToolkitError(
      "NO_ALERT_COMMAND",
      `BACKUP_ALERT_COMMAND is empty in ${cfg.file}`,
      "set it, or leave the relay off (dev-up starts it only when it is set)",
    );
  const token = readFileSync(monitoringFiles(cfg).relayToken, "utf8").trim();
  const log = (l: string) => console.log(`${new Date().toISOString()} ${l}`);
  Bun.serve({
    hostname: cfg.monitoring.address,
    port: relayPort(cfg),
    fetch: relayHandler(cfg.stack, token, cfg.backup.alertCommand, log),
  });
  log(
    `alert relay on http://${cfg.monitoring.address}:${relayPort(cfg)}/alert -> ${cfg.backup.alertCommand.split(/\s+/)[0]}`,
  );
  await new Promise(() => {});
});
