#!/usr/bin/env bun
/** make setup: install the OS packages the native runtime needs (apt, as root), or say what to install. */
import { runMain } from "./lib/errors";
import { ensureOsPackages, missingPackages } from "./lib/setup";
import { parseFlags } from "./lib/flags";

const USAGE = "usage: make setup   (bun scripts/setup.ts [--check])\n--check: only list what is missing, exit 1 if anything is";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { check: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  if (flags.check) {
    const missing = await missingPackages();
    console.log(missing.length ? `missing: ${missing.join(" ")}` : "all OS packages present");
    return missing.length ? 1 : 0;
  }
  const installed = await ensureOsPackages();
  console.log(installed.length ? `installed: ${installed.join(" ")}` : "all OS packages present: nothing installed");
});
