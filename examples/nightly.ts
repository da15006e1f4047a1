#!/usr/bin/env bun
/**
 * A nightly job of your own, composed from the toolkit's verbs (scripts/api.ts)
 * and zx's `$`: refuse to work on a sick cluster, take a verified backup, note
 * the disk left, print one JSON line for your log or monitor.
 *
 *   STACK=dev bun examples/nightly.ts                 # the whole job
 *   STACK=dev bun examples/nightly.ts --status-only   # the cheap part: is the stack healthy, who leads
 */
import { $, backup, status, ToolkitError } from "../scripts/api";

const s = await status();
const leader = s.members.find((m) => m.role === "leader")?.name ?? null;
if (!s.health.ok) {
  console.error(`nightly: stack ${s.stack} is not healthy (${s.health.problems.join(", ")}): no backup tonight`);
  process.exit(1);
}
if (process.argv.includes("--status-only")) {
  console.log(JSON.stringify({ stack: s.stack, healthy: s.health.ok, leader, readWrite: s.endpoints.readWrite }));
  process.exit(0);
}

try {
  const report = await backup({ verify: true });
  // Argument arrays only: `$` never runs a shell, whatever the values hold.
  const df = await $`df --output=avail -B1 ${report.dir}`;
  const freeBytes = Number(df.stdout.trim().split("\n").pop());
  console.log(JSON.stringify({ stack: s.stack, leader, backup: report.id, status: report.manifest.status, freeBytes }));
} catch (err) {
  // Errors carry what failed and what to do next, like the make targets print them.
  if (err instanceof ToolkitError)
    console.error(`nightly: [${err.code}] ${err.message}${err.fix ? `\n  fix: ${err.fix}` : ""}`);
  throw err;
}
