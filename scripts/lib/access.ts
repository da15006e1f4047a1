/**
 * Who can reach which app, generated from the app registry: privately over
 * the tailnet (`tailscale serve`), publicly through a Cloudflare Tunnel, or
 * only on this machine. The pure renderers (the cloudflared config, the serve
 * config, the commands as argv arrays, the nginx vhosts) live in
 * access-render.ts and are re-exported here; this module plans who reaches
 * what, and one function writes the files and reloads what is installed.
 *
 * Upstream references (the rules the validator, cloudflared.ts, mirrors; the
 * renderers' references are in access-render.ts):
 * - cloudflared's own ingress validation (ingress/ingress.go): no port in a
 *   hostname, at most one `*` and only as the leading label (`*.example.com`),
 *   the last rule matches everything, and no earlier rule does.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  cloudflaredRestartCmd,
  cloudflaredValidateCmd,
  cloudflaredYaml,
  privateApps,
  publicHostname,
  registryRel,
  renderCloudflared,
  renderServe,
  renderTunnelNginx,
  serveCommands,
  serveOffCmd,
  tunnelOriginNginxPath,
} from "./access-render";
import { cloudflaredProblems } from "./cloudflared";
import { appAccess, loadApps, type AccessLevel, type AppEntry } from "./apps";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { run, which } from "./exec";
import { withAppsLock } from "./onboard/lock";
import { domainProblem } from "./onboard/plan";
import { writeIfChanged } from "./render";

export {
  cloudflaredRestartCmd,
  cloudflaredValidateCmd,
  cloudflaredYaml,
  DOCKER_CREDENTIALS_PATH,
  DOCKER_ORIGIN_PORT,
  publicHostname,
  renderCloudflared,
  renderServe,
  renderTunnelNginx,
  serveCommands,
  serveOffCmd,
  serveOnCmd,
  tailnetHost,
  tunnelOrigin,
  tunnelOriginNginxPath,
  type ServeConfig,
} from "./access-render";
export { cloudflaredProblems, type CloudflaredConfig, type CloudflaredIngressRule } from "./cloudflared";

// --- who reaches what -------------------------------------------------------

export interface AppAccessView {
  name: string;
  access: AccessLevel;
  port: number;
  database: string;
  /** nginx on this machine, always */
  localUrl: string;
  /** over the tailnet (TAILNET=tailscale, access private or public) */
  privateUrl?: string;
  /** through the tunnel (TUNNEL=cloudflare, access public) */
  publicUrl?: string;
  publicHostname?: string;
  productionData: boolean;
}

export interface AccessPlan {
  stack: string;
  tunnel: Config["access"]["tunnel"];
  tailnet: Config["access"]["tailnet"];
  apps: AppAccessView[];
  /** shown, never fatal: e.g. an app holding production data that would become public */
  warnings: string[];
  /** fatal: bad hostnames, clashes */
  problems: string[];
}

/**
 * An app holds production data when its database, or the stack itself, is
 * named for production (orders_production, shop_prod_db, stack prod-eu).
 */
export function holdsProductionData(cfg: Pick<Config, "stack">, app: Pick<AppEntry, "database">): boolean {
  return /(^|_)prod(uction)?(_|$)/.test(app.database) || /(^|-)prod(uction)?(-|$)/.test(cfg.stack);
}

export function planAccess(cfg: Config, apps: AppEntry[]): AccessPlan {
  const a = cfg.access;
  const warnings: string[] = [];
  const problems: string[] = [];
  const views = apps.map((app): AppAccessView => {
    const access = appAccess(app);
    const view: AppAccessView = {
      name: app.name,
      access,
      port: app.port,
      database: app.database,
      localUrl: `http://${app.domain}:${cfg.api.port} (nginx ${cfg.api.address})`,
      productionData: holdsProductionData(cfg, app),
    };
    // Without TAILNET_HOSTNAME the name is only known to tailscale: shown as <server>.
    if (access !== "none" && a.tailnet === "tailscale")
      view.privateUrl = `http://${a.tailnetHostname || "<server>"}:${app.port}`;
    if (access === "public") {
      if (a.tunnel !== "cloudflare")
        warnings.push(`${app.name} is public in the registry but TUNNEL=none in ${cfg.file}: nothing is published`);
      else {
        const host = publicHostname(cfg, app);
        const hp = hostnameProblem(host);
        if (hp) problems.push(`${app.name}: public hostname ${hp}`);
        const clash = apps.find((o) => o.domain === host);
        if (clash)
          problems.push(
            `${app.name}: public hostname ${host} is also ${clash.name}'s nginx hostname (a name answers either on the tunnel or locally, never both)`,
          );
        view.publicHostname = host;
        view.publicUrl = `https://${host}`;
        if (view.productionData) {
          warnings.push(
            `${app.name} holds production data (database ${app.database}${/prod/.test(cfg.stack) ? `, stack ${cfg.stack}` : ""}) and would be public at ${view.publicUrl}`,
          );
        }
      }
    }
    return view;
  });
  return { stack: cfg.stack, tunnel: a.tunnel, tailnet: a.tailnet, apps: views, warnings, problems };
}

/** A public hostname cloudflared and nginx both accept: a plain DNS name, no port, no wildcard. */
// new-app's hostname rule (labels of 1-63 lowercase letters, digits, dashes; 253 characters at most).
export const hostnameProblem = (host: string): string | undefined => domainProblem(host);

// --- files and apply ---------------------------------------------------------

export const accessDir = (cfg: Config) => join(cfg.stateDir, "access");
export const cloudflaredPath = (cfg: Config) => join(accessDir(cfg), "cloudflared.yml");
export const servePath = (cfg: Config) => join(accessDir(cfg), "tailscale-serve.json");
/** Ports this toolkit turned on with `tailscale serve`, so a removed app's port is turned off (and nobody else's). */
const serveAppliedPath = (cfg: Config) => join(accessDir(cfg), "tailscale-applied.json");

export interface AccessFile {
  path: string;
  /** undefined: the file must not exist (that access is off) */
  content: string | undefined;
}

/** Every file access-apply owns, with its content for this registry. */
export function accessFiles(cfg: Config, apps: AppEntry[]): AccessFile[] {
  const cf = cfg.access.tunnel === "cloudflare";
  const ts = cfg.access.tailnet === "tailscale";
  let cloudflared: string | undefined;
  if (cf) {
    const doc = renderCloudflared(cfg, apps);
    const problems = cloudflaredProblems(doc);
    if (problems.length)
      throw new ToolkitError(
        "BAD_ACCESS",
        `the cloudflared config for stack ${cfg.stack} breaks cloudflared's rules: ${problems.join("; ")}`,
        `fix the registry (${registryRel(cfg)}) or PUBLIC_DOMAIN in ${cfg.file}`,
      );
    cloudflared = cloudflaredYaml(cfg, doc);
  }
  return [
    { path: tunnelOriginNginxPath(cfg), content: cf ? renderTunnelNginx(cfg, apps) : undefined },
    { path: cloudflaredPath(cfg), content: cloudflared },
    { path: servePath(cfg), content: ts ? JSON.stringify(renderServe(cfg, apps), null, 2) + "\n" : undefined },
  ];
}

export interface ToolReport {
  tool: "cloudflared" | "tailscale";
  installed: boolean;
  /** commands run (installed) or that would run */
  commands: string[][];
  /** what to install, when it is not */
  install?: string;
}

export interface ApplyResult {
  plan: AccessPlan;
  changed: string[];
  removed: string[];
  unchanged: string[];
  nginx: "reloaded" | "checked (nginx not running)" | "unchanged" | "not rendered yet (loaded at the next dev-up)";
  tools: ToolReport[];
}

export const INSTALL = {
  cloudflared:
    "cloudflared is not installed: install Cloudflare's package (Debian/Ubuntu: add the repository from https://pkg.cloudflare.com/index.html, then `apt-get install cloudflared`), run `cloudflared tunnel login` and `cloudflared tunnel create <name>`, then `cloudflared --config <file> service install` once; re-run `make access-apply`",
  tailscale:
    "tailscale is not installed: install Tailscale's package (Debian/Ubuntu: `curl -fsSL https://tailscale.com/install.sh | sh`, or the repository at https://pkgs.tailscale.com/stable/), run `tailscale up`, then re-run `make access-apply`",
};

export interface ApplyOptions {
  /** an app holding production data may become public (otherwise refused) */
  allowPublicProduction?: boolean;
  /** where the tools are looked up; tests pass a fake PATH lookup */
  which?: (bin: string) => Promise<string | undefined>;
  /** nginx -t and reload; onboard's applyNginx by default */
  applyNginx?: (cfg: Config) => Promise<{ running: boolean }>;
}

/**
 * Write the access files for the registry and make what is installed use
 * them. Refuses (changing nothing) on a bad hostname, and on an app holding
 * production data becoming public unless allowed. A missing cloudflared or
 * tailscale is reported with what to install; nothing else is touched for it.
 */
export async function applyAccess(cfg: Config, opts: ApplyOptions = {}, apps?: AppEntry[]): Promise<ApplyResult> {
  if (apps) return applyFor(cfg, opts, apps);
  // Under new-app's lock: a concurrent onboarding must not be rendered out of the configs by a stale read.
  return withAppsLock(cfg, () => applyFor(cfg, opts, loadApps(cfg)));
}

async function applyFor(cfg: Config, opts: ApplyOptions, apps: AppEntry[]): Promise<ApplyResult> {
  const plan = planAccess(cfg, apps);
  if (plan.problems.length)
    throw new ToolkitError(
      "BAD_ACCESS",
      plan.problems.join("; "),
      `fix ${registryRel(cfg)} or PUBLIC_DOMAIN in ${cfg.file}; nothing was changed`,
    );
  const prod = plan.apps.filter((v) => v.publicUrl && v.productionData);
  if (prod.length && !opts.allowPublicProduction) {
    throw new ToolkitError(
      "PUBLIC_PRODUCTION",
      `${prod.map((v) => `${v.name} (database ${v.database})`).join(", ")} would be public at ${prod.map((v) => v.publicUrl).join(", ")} while holding production data`,
      "set the app's access to private in the registry, or re-run with --allow-public-production if that is intended; nothing was changed",
    );
  }
  const files = accessFiles(cfg, apps);
  const changed: string[] = [];
  const removed: string[] = [];
  const unchanged: string[] = [];
  const rel = (p: string) => p.replace(cfg.rootDir + "/", "");
  const olds = new Map(files.map((f) => [f.path, existsSync(f.path) ? readFileSync(f.path, "utf8") : undefined]));
  for (const f of files) {
    if (f.content === undefined) {
      if (olds.get(f.path) !== undefined) {
        rmSync(f.path, { force: true });
        removed.push(rel(f.path));
      }
    } else if (writeIfChanged(f.path, f.content, { mode: 0o644 })) changed.push(rel(f.path));
    else unchanged.push(rel(f.path));
  }

  // nginx first: the tunnel must never point at an origin nginx has not loaded.
  let nginx: ApplyResult["nginx"] = "unchanged";
  const nginxPath = tunnelOriginNginxPath(cfg);
  const nginxTouched = changed.includes(rel(nginxPath)) || removed.includes(rel(nginxPath));
  if (nginxTouched) {
    if (!existsSync(join(cfg.renderedDir, "nginx", "nginx.conf")))
      nginx = "not rendered yet (loaded at the next dev-up)";
    else {
      const apply = opts.applyNginx ?? (await import("./onboard/onboard")).applyNginx;
      try {
        nginx = (await apply(cfg)).running ? "reloaded" : "checked (nginx not running)";
      } catch (e) {
        // never leave a file that breaks nginx -t
        const old = olds.get(nginxPath);
        if (old === undefined) rmSync(nginxPath, { force: true });
        else writeIfChanged(nginxPath, old, { mode: 0o644 });
        throw e;
      }
    }
  }

  const lookup = opts.which ?? which;
  const tools: ToolReport[] = [];
  if (cfg.access.tunnel === "cloudflare") {
    const commands = [cloudflaredValidateCmd(cloudflaredPath(cfg)), cloudflaredRestartCmd()];
    const installed = Boolean(await lookup("cloudflared"));
    if (installed) for (const c of commands) await run(c, { timeoutMs: 60_000 });
    tools.push({
      tool: "cloudflared",
      installed,
      commands,
      install: installed ? undefined : INSTALL.cloudflared.replace("<file>", cloudflaredPath(cfg)),
    });
  }
  const appliedBefore: number[] = existsSync(serveAppliedPath(cfg))
    ? JSON.parse(readFileSync(serveAppliedPath(cfg), "utf8"))
    : [];
  const wanted = cfg.access.tailnet === "tailscale" ? privateApps(apps).map((a) => a.port) : [];
  if (cfg.access.tailnet === "tailscale" || appliedBefore.length) {
    const commands = [
      ...appliedBefore.filter((p) => !wanted.includes(p)).map(serveOffCmd),
      ...(cfg.access.tailnet === "tailscale" ? serveCommands(apps) : []),
    ];
    const installed = Boolean(await lookup("tailscale"));
    if (installed) {
      for (const c of commands) await run(c, { timeoutMs: 60_000 });
      writeIfChanged(serveAppliedPath(cfg), JSON.stringify(wanted) + "\n");
    }
    tools.push({ tool: "tailscale", installed, commands, install: installed ? undefined : INSTALL.tailscale });
  }
  return { plan, changed, removed, unchanged, nginx, tools };
}
