#!/usr/bin/env bun
/** make setup: install the OS packages the native runtime needs (apt, as root), or say what to install. */
import { runMain } from "./lib/errors";
import { ensureOsPackages, missingPackages } from "./lib/setup";
import { parseFlags } from "./lib/flags";

const USAGE = "usage: make setup   (bun scripts/setup.ts [--check] [--tests])\n--check: only list what is missing, exit 1 if anything is\n--tests: also what make test needs (openssh-server, openssh-client, openssl, python3, sudo)";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { check: "boolean", tests: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  if (flags.check) {
    const missing = await missingPackages({ tests: flags.tests });
    console.log(missing.length ? `missing: ${missing.join(" ")}` : "all OS packages present");
    return missing.length ? 1 : 0;
  }
  const installed = await ensureOsPackages({ tests: flags.tests });
  console.log(installed.length ? `installed: ${installed.join(" ")}` : "all OS packages present: nothing installed");
});
