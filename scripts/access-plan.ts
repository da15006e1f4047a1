#!/usr/bin/env bun
/** make access-plan: who can reach which app (private over the tailnet, public through the tunnel), from the registry. */
import { planAccess, renderCloudflared, renderServe, serveCommands } from "./lib/access";
import { loadApps } from "./lib/apps";
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { note, table } from "./lib/ui";

const USAGE = `usage: make access-plan [ARGS=--json]
       bun scripts/access-plan.ts [--json]

Prints, for every app in the registry, its access level and who can reach it:
the private URL (TAILNET=tailscale: http://<server>:<port> on the tailnet) and
the public URL (TUNNEL=cloudflare: https://<app>.<PUBLIC_DOMAIN>). Warns when
an app holding production data would become public. Changes nothing; exit 1
when the plan has problems (bad or clashing hostnames). --json adds the
cloudflared config, the serve config and the serve commands.`;

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { json: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const apps = loadApps(cfg);
  const plan = planAccess(cfg, apps);
  if (flags.json) {
    const cloudflared = cfg.access.tunnel === "cloudflare" ? renderCloudflared(cfg, apps) : undefined;
    const serve =
      cfg.access.tailnet === "tailscale"
        ? { config: renderServe(cfg, apps), commands: serveCommands(apps) }
        : undefined;
    console.log(JSON.stringify({ ...plan, cloudflared, serve }, null, 2));
    return plan.problems.length ? 1 : 0;
  }
  const rows = [["app", "access", "private URL", "public URL", "local (this machine)"]];
  for (const v of plan.apps) rows.push([v.name, v.access, v.privateUrl ?? "-", v.publicUrl ?? "-", v.localUrl]);
  const head = `stack ${cfg.stack}: TAILNET=${cfg.access.tailnet}, TUNNEL=${cfg.access.tunnel}${cfg.access.publicDomain ? `, PUBLIC_DOMAIN=${cfg.access.publicDomain}` : ""}`;
  note(plan.apps.length ? table(rows) : "no apps in the registry (make new-app NAME=<app>)", head);
  for (const w of plan.warnings) process.stderr.write(`warning: ${w}\n`);
  for (const p of plan.problems) process.stderr.write(`problem: ${p}\n`);
  return plan.problems.length ? 1 : 0;
});
