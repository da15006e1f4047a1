#!/usr/bin/env bun
/** make cluster-lab-down: remove the namespace lab and everything of it, found by prefix (also after a crash). */
import { rmSync } from "node:fs";
import { clusterDir } from "./lib/cluster/settings";
import { labDown } from "./lib/cluster/lab";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { logLine } from "./lib/ui";

const USAGE = "usage: sudo make cluster-lab-down   (bun scripts/cluster-lab-down.ts)";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), {}, USAGE);
  if (flags.help) return void console.log(USAGE);
  const removed = await labDown();
  rmSync(clusterDir("lab"), { recursive: true, force: true });
  logLine(removed.length ? `removed: ${removed.join(", ")}, clusters/lab/` : "no lab found (nothing to remove)");
});
