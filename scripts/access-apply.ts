#!/usr/bin/env bun
/** make access-apply: write the cloudflared config, the tailscale serve config and the tunnel-origin nginx vhosts; reload what is installed. */
import { applyAccess } from "./lib/access";
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { parseFlags } from "./lib/flags";
import { note } from "./lib/ui";

const USAGE = `usage: make access-apply [ALLOW_PUBLIC_PRODUCTION=1] [ARGS=--json]
       bun scripts/access-apply.ts [--allow-public-production] [--json]

From the registry, writes <state>/access/cloudflared.yml (TUNNEL=cloudflare),
<state>/access/tailscale-serve.json (TAILNET=tailscale) and the tunnel-origin
nginx vhosts (<state>/nginx/apps/tunnel-origin.conf, checked with nginx -t and
loaded), and removes those whose access is off. Where cloudflared or tailscale
is installed it validates and reloads it (tailscale serve per app; a removed
app's port is turned off); where not, it says what to install and touches
nothing else. An app holding production data is never made public without
--allow-public-production. Re-running changes nothing.`;

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { json: "boolean", allowPublicProduction: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  await openRuntime(cfg, "access-apply");
  const r = await applyAccess(cfg, { allowPublicProduction: Boolean(flags.allowPublicProduction) });
  if (flags.json) return void console.log(JSON.stringify(r, null, 2));
  const lines = [
    ...r.changed.map((f) => `  + ${f}`),
    ...r.removed.map((f) => `  - ${f}`),
    ...r.unchanged.map((f) => `  = ${f}`),
    `nginx: ${r.nginx}`,
  ];
  for (const t of r.tools) {
    lines.push("", t.installed ? `${t.tool}: ran` : `${t.tool}: NOT APPLIED. ${t.install}`);
    lines.push(...t.commands.map((c) => `  ${t.installed ? "$" : "would run:"} ${c.join(" ")}`));
  }
  if (!r.tools.length) lines.push("", "TUNNEL=none and TAILNET=none: apps are reachable on this machine only");
  for (const w of r.plan.warnings) lines.push(`warning: ${w}`);
  note(lines.join("\n"), `access for stack ${cfg.stack}`);
});
