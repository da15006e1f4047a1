#!/usr/bin/env bun
/** make logs [SVC=pg1]: the last lines of each component's log (or one), --follow to keep reading. */
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { start } from "./lib/exec";
import { openRuntime } from "./lib/runtimes/index";
import { parseFlags } from "./lib/flags";
import { tailFile } from "./lib/procs";
import { redact } from "./lib/redact";

const USAGE =
  "usage: make logs [SVC=pg1|etcd1|haproxy|nginx|...] [LINES=50]\n       bun scripts/logs.ts [svc] [--lines N] [--follow]";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { lines: "number", follow: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const sources = (await openRuntime(cfg, "logs")).logs();
  const svc = flags._[0] || process.env.SVC || "";
  const pick = svc ? sources.filter((l) => l.name === svc) : sources;
  if (svc && pick.length === 0)
    throw new ToolkitError(
      "NO_SUCH_LOG",
      `no log for ${svc}`,
      `known: ${sources.map((l) => l.name).join(", ") || "(none: start the stack with make dev-up)"}`,
    );
  if (flags.follow) {
    const child = start(["tail", "-F", ...pick.map((l) => l.path)], { stdio: ["ignore", "pipe", "inherit"] });
    child.stdout?.on("data", (d) => process.stdout.write(redact(String(d))));
    await child;
    return;
  }
  for (const l of pick) {
    console.log(`==> ${l.name} (${l.path})`);
    console.log(redact(tailFile(l.path, flags.lines ?? Number(process.env.LINES ?? 30))));
  }
});
