#!/usr/bin/env bun
/** make setup: install the OS packages the native runtime needs (apt, as root), or say what to install. */
import { runMain } from "./lib/errors";
import { ensureOsPackages, missingPackages } from "./lib/setup";
import { parseFlags } from "./lib/flags";
import { loadConfig } from "./lib/config";

/** The stack's MONITORING setting; a stack whose env file does not load yet wants nothing more. */
function stackWantsMonitoring(): boolean {
  try {
    return loadConfig().monitoring.enabled;
  } catch {
    return false;
  }
}

const USAGE =
  "usage: make setup   (bun scripts/setup.ts [--check] [--tests] [--monitoring])\n--check: only list what is missing, exit 1 if anything is\n--tests: also what make test needs (openssh-server, openssh-client, openssl, python3, sudo, prometheus and prometheus-alertmanager for promtool/amtool, podman, runc, docker-compose and debootstrap for the docker runtime, vip-manager for the namespace lab)\n--monitoring: also prometheus, prometheus-alertmanager and the exporters (implied when the stack's MONITORING=true)";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { check: "boolean", tests: "boolean", monitoring: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const monitoring = Boolean(flags.monitoring) || stackWantsMonitoring();
  if (flags.check) {
    const missing = await missingPackages({ tests: flags.tests, monitoring });
    console.log(missing.length ? `missing: ${missing.join(" ")}` : "all OS packages present");
    return missing.length ? 1 : 0;
  }
  const installed = await ensureOsPackages({ tests: flags.tests, monitoring });
  console.log(installed.length ? `installed: ${installed.join(" ")}` : "all OS packages present: nothing installed");
});
