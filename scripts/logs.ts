#!/usr/bin/env bun
/** make logs [SVC=pg1]: the last lines of each component's log (or one), --follow to keep reading. */
import { existsSync, readdirSync } from "node:fs";
import { loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { start } from "./lib/exec";
import { parseFlags } from "./lib/flags";
import { tailFile } from "./lib/procs";
import { redact } from "./lib/redact";

const USAGE = "usage: make logs [SVC=pg1|etcd1|haproxy|nginx|...] [LINES=50]\n       bun scripts/logs.ts [svc] [--lines N] [--follow]";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { lines: "number", follow: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const svc = flags._[0] || process.env.SVC || "";
  const all = existsSync(cfg.logsDir) ? readdirSync(cfg.logsDir).filter((f) => f.endsWith(".log")).map((f) => f.slice(0, -4)).sort() : [];
  const pick = svc ? all.filter((n) => n === svc) : all;
  if (svc && pick.length === 0) throw new ToolkitError("NO_SUCH_LOG", `no log for ${svc}`, `known: ${all.join(", ") || "(none: start the stack with make dev-up)"}`);
  if (flags.follow) {
    const child = start(["tail", "-F", ...pick.map((n) => `${cfg.logsDir}/${n}.log`)], { stdio: ["ignore", "pipe", "inherit"] });
    child.stdout?.on("data", (d) => process.stdout.write(redact(String(d))));
    await child;
    return;
  }
  for (const n of pick) {
    console.log(`==> ${n} (${cfg.logsDir}/${n}.log)`);
    console.log(redact(tailFile(`${cfg.logsDir}/${n}.log`, flags.lines ?? Number(process.env.LINES ?? 30))));
  }
});
