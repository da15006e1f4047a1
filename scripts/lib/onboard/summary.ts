/**
 * What `make new-app` prints once an app is onboarded: where its database,
 * port, hostname, env file and access are, what was created or already in
 * place, and the next steps. Pure: text from the onboarding and access results.
 */
import type { applyAccess } from "../access";
import { registryPath } from "../apps";
import type { Config } from "../config";
import { stackHttpAddress } from "../stack-files";
import type { OnboardResult } from "./onboard";
import { appUpstream, supabaseUrl } from "./plan";

export function onboardSummary(cfg: Config, r: OnboardResult, access: Awaited<ReturnType<typeof applyAccess>>): string {
  const a = r.app;
  const v = access.plan.apps.find((x) => x.name === a.name);
  const rel = (path: string) => path.replace(cfg.rootDir + "/", "");
  const stackArg = cfg.stack === "dev" ? "" : ` STACK=${cfg.stack}`;
  const lines = [
    `database   ${a.database} (owner ${a.role}; other roles cannot connect)`,
    `port       ${a.port}`,
    `hostname   ${a.domain} -> ${appUpstream(a)} via nginx http://${stackHttpAddress(cfg)}:${cfg.api.port}${r.nginxServing ? "" : " (nginx not running: loaded at the next dev-up)"}`,
    `env file   ${rel(r.envFile)} (0600): DATABASE_URL, DATABASE_READONLY_URL, SUPABASE_URL, PORT`,
    `supabase   ${a.supabase ? `yes (${supabaseUrl(cfg)})` : "no (re-run with --supabase to add it)"}`,
    `registry   ${rel(registryPath(cfg))} (included in \`make backup\`)`,
    `access     ${v?.access ?? "private"}: private ${v?.privateUrl ?? "-"}, public ${v?.publicUrl ?? "-"} (make access-plan)`,
  ];
  if (access.changed.length) lines.push(...access.changed.map((f) => `           + ${f}`));
  for (const t of access.tools.filter((x) => !x.installed))
    lines.push(
      `           ${t.tool} not installed: configs written, not applied (make access-apply says what to install)`,
    );
  if (r.changes.length) lines.push("", "created:", ...r.changes.map((c) => `  + ${c}`));
  else lines.push("", "already in place:", ...r.unchanged.map((c) => `  = ${c}`));
  lines.push(
    "",
    "next steps:",
    `  1. load ${rel(r.envFile)} in the app (e.g. bun --env-file=${rel(r.envFile)} run start)`,
    `  2. start it on port ${a.port}`,
    `  3. curl -H 'Host: ${a.domain}' http://${stackHttpAddress(cfg)}:${cfg.api.port}/`,
    `  a URL any time: make -s db-url DB=${a.database} ROLE=${a.role}${stackArg}`,
  );
  return lines.join("\n");
}
