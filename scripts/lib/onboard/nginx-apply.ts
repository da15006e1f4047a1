/**
 * Make the running nginx load the apps' blocks (checked with nginx -t first,
 * done when every old worker has exited) and wait for a route to appear or
 * go. Moved out of onboard.ts.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { procSpecs } from "../native/specs";
import { alive, runningPid } from "../procs";
import { stackHttpAddress } from "../stack-files";
import { nginxTestCmd } from "./plan";

/** Check the candidate nginx config and make the running nginx load it. */
export async function applyNginx(cfg: Config): Promise<{ running: boolean }> {
  const t = await run(nginxTestCmd(cfg), { nothrow: true, timeoutMs: 10_000 });
  if (t.code !== 0) {
    throw new ToolkitError(
      "NGINX_INVALID",
      "nginx -t rejected the configuration",
      `fix the file it names (app blocks live in ${cfg.stateDir}/nginx/apps)`,
      t.stderr || t.stdout,
    );
  }
  const pid = runningPid(procSpecs(cfg).nginx);
  if (!pid) return { running: false };
  // nginx re-reads its config and starts new workers; the old ones keep accepting
  // until they are told to stop, so the reload is done only when every worker
  // that existed before the signal has exited.
  const before = childPids(pid);
  process.kill(pid, "SIGHUP");
  const deadline = Date.now() + 10_000;
  while (before.some(alive) && Date.now() < deadline) await Bun.sleep(20);
  if (before.some(alive)) {
    throw new ToolkitError(
      "NGINX_RELOAD_SLOW",
      "nginx did not replace its workers within 10 s",
      `see ${cfg.stateDir}/nginx/error.log`,
    );
  }
  return { running: true };
}

/** Direct children of a process (nginx's workers), from /proc. */
function childPids(parent: number): number[] {
  const kids: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      // the field after the parenthesised command name: state, then ppid
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent) kids.push(Number(d));
    } catch {}
  }
  return kids;
}

/** Wait until nginx answers for `domain` as app `name` (present=true) or no longer does (present=false). */
// Each probe is a new connection (Connection: close): a pooled keep-alive connection may still be
// served by an old worker finishing gracefully after the reload, and would show the old routes.
export async function waitNginxRoute(
  cfg: Config,
  domain: string,
  name: string,
  present: boolean,
  timeoutMs = 10_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let served = false;
    try {
      const res = await fetch(`http://${stackHttpAddress(cfg)}:${cfg.api.port}/`, {
        headers: { Host: domain, Connection: "close" },
        signal: AbortSignal.timeout(1000),
        redirect: "manual",
      });
      await res.arrayBuffer();
      served = res.headers.get("x-pgplatform-app") === name;
    } catch {}
    if (served === present) return true;
    if (Date.now() > deadline) return false;
    await Bun.sleep(25);
  }
}
