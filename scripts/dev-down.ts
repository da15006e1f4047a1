#!/usr/bin/env bun
/** make dev-down: stop the stack in a safe order (front doors, replicas, leader, etcd). Data is kept. */
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { openRuntime } from "./lib/runtimes/index";
import { logLine } from "./lib/ui";

const USAGE =
  "usage: make dev-down [STACK=dev]\nStops nginx, HAProxy, Patroni replicas, the leader, then etcd. Keeps all data.";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), {}, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const rt = await openRuntime(cfg, "dev-down");
  const { stopped } = await rt.down((c, m) => logLine(`${c}: ${m}`));
  if (rt.name === "docker") return void logLine("docker stack stopped (data kept)");
  logLine(
    stopped.length ? `stopped ${stopped.length} processes; data kept in ${cfg.memberRoot}` : "nothing was running",
  );
});
