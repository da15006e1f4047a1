#!/usr/bin/env bun
/** make dev-down: stop the stack in a safe order (front doors, replicas, leader, etcd). Data is kept. */
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { nativeDown } from "./lib/native";
import { composeCmd } from "./lib/docker";
import { run } from "./lib/exec";
import { pickRuntime } from "./lib/runtime";
import { logLine } from "./lib/ui";

const USAGE = "usage: make dev-down [STACK=dev]\nStops nginx, HAProxy, Patroni replicas, the leader, then etcd. Keeps all data.";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), {}, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  if ((await pickRuntime(cfg)) === "docker") {
    await run(composeCmd(cfg, "stop"), { timeoutMs: 300_000 });
    return void logLine("docker stack stopped (data kept)");
  }
  const { stopped } = await nativeDown(cfg, (c, m) => logLine(`${c}: ${m}`));
  logLine(stopped.length ? `stopped ${stopped.length} processes; data kept in ${cfg.memberRoot}` : "nothing was running");
});
