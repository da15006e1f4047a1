/**
 * The access renderers, pure: from the app registry and the stack's settings
 * to cloudflared's config (one ingress rule per public app, then the 404
 * catch-all), tailscale serve's config and the commands that set it up (argv
 * arrays), and the tunnel origin's nginx vhosts. Each returns data; writing
 * the files and reloading what is installed is access.ts's job (which
 * re-exports these). Moved out of access.ts.
 *
 * Upstream references:
 * - cloudflared's configuration file (tunnel, credentials-file, ingress; the
 *   last rule must be a catch-all such as `service: http_status:404`):
 *   https://developers.cloudflare.com/cloudflare-one/connections/connect-apps/configuration/ingress
 * - origin parameters (httpHostHeader, connectTimeout, ...):
 *   https://developers.cloudflare.com/tunnel/reference/origin-parameters/
 * - `tailscale serve` (`--bg`, `--http=<port>`, `off`):
 *   https://tailscale.com/docs/reference/tailscale-cli/serve ; the JSON is
 *   ipn.ServeConfig (tailscale/tailscale ipn/serve.go: TCP port -> {HTTP},
 *   Web "host:port" -> Handlers "/" -> {Proxy}), the shape `tailscale serve
 *   status --json` prints and the container's TS_SERVE_CONFIG reads.
 */
import { join } from "node:path";
import YAML from "yaml";
import { appAccess, type AppEntry } from "./apps";
import type { CloudflaredConfig, CloudflaredIngressRule } from "./cloudflared";
import type { Config } from "./config";
import { appUpstream } from "./onboard/plan";
import { readTemplate, renderTemplate } from "./render";

/** One subdomain per public app: bookwriter -> bookwriter.<PUBLIC_DOMAIN> (underscores are not valid in hostnames). */
export const publicHostname = (cfg: Pick<Config, "access">, app: Pick<AppEntry, "name">) =>
  `${app.name.replace(/_/g, "-")}.${cfg.access.publicDomain}`;

/** The tailnet name in URLs; tailscale fills ${TS_CERT_DOMAIN} in with the node's MagicDNS name. */
export const tailnetHost = (cfg: Pick<Config, "access">) => cfg.access.tailnetHostname || "${TS_CERT_DOMAIN}";

// --- cloudflared ------------------------------------------------------------

/** The tunnel's origin: nginx's loopback listener (native) or the nginx service (docker). */
export const tunnelOrigin = (cfg: Config, runtime: "native" | "docker" = "native") =>
  runtime === "docker"
    ? `http://nginx:${DOCKER_ORIGIN_PORT}`
    : `http://${cfg.access.originAddress}:${cfg.access.originPort}`;
/** Inside compose, nginx's tunnel origin listens on this container port (never published). */
export const DOCKER_ORIGIN_PORT = 8081;
export const DOCKER_CREDENTIALS_PATH = "/etc/cloudflared/credentials.json";

/** cloudflared's config: one rule per public app, in registry order, then the 404 catch-all. */
export function renderCloudflared(
  cfg: Config,
  apps: AppEntry[],
  runtime: "native" | "docker" = "native",
): CloudflaredConfig {
  const origin = tunnelOrigin(cfg, runtime);
  const rules: CloudflaredIngressRule[] = apps
    .filter((a) => appAccess(a) === "public")
    .map((a) => {
      const hostname = publicHostname(cfg, a);
      // httpHostHeader pins the Host nginx sees to the public name, whatever the edge or a
      // websocket upgrade sends; nginx routes on it (server_name), so it must never be the origin's address.
      return { hostname, service: origin, originRequest: { httpHostHeader: hostname } };
    });
  rules.push({ service: "http_status:404" });
  return {
    tunnel: cfg.access.tunnelId,
    "credentials-file": runtime === "docker" ? DOCKER_CREDENTIALS_PATH : cfg.access.credentialsFile,
    originRequest: { connectTimeout: "10s" },
    ingress: rules,
  };
}

export function cloudflaredYaml(cfg: Config, doc: CloudflaredConfig): string {
  return (
    `# cloudflared for stack ${cfg.stack}: written by \`make access-apply\` from ${registryRel(cfg)}; edit the registry, not this file.\n` +
    YAML.stringify(doc)
  );
}

// --- tailscale serve ---------------------------------------------------------

/** ipn.ServeConfig: what `tailscale serve status --json` prints. */
export interface ServeConfig {
  TCP: Record<string, { HTTP: true }>;
  Web: Record<string, { Handlers: Record<string, { Proxy: string }> }>;
}

export const privateApps = (apps: AppEntry[]) => apps.filter((a) => appAccess(a) !== "none");

/** Private (and public) apps on the tailnet at http://<server>:<app port>, proxied to the app on loopback. */
export function renderServe(cfg: Config, apps: AppEntry[]): ServeConfig {
  const out: ServeConfig = { TCP: {}, Web: {} };
  for (const a of [...privateApps(apps)].sort((x, y) => x.port - y.port)) {
    out.TCP[String(a.port)] = { HTTP: true };
    out.Web[`${tailnetHost(cfg)}:${a.port}`] = { Handlers: { "/": { Proxy: `http://${appUpstream(a)}` } } };
  }
  return out;
}

/** The same, as the commands that set it up (argv arrays). */
export const serveOnCmd = (a: Pick<AppEntry, "port">) => [
  "tailscale",
  "serve",
  "--bg",
  `--http=${a.port}`,
  `http://${appUpstream(a as AppEntry)}`,
];
export const serveOffCmd = (port: number) => ["tailscale", "serve", `--http=${port}`, "off"];
export const serveCommands = (apps: AppEntry[]) =>
  [...privateApps(apps)].sort((x, y) => x.port - y.port).map(serveOnCmd);

export const cloudflaredValidateCmd = (file: string) => [
  "cloudflared",
  "tunnel",
  "--config",
  file,
  "ingress",
  "validate",
];
/** The service unit installed once with `cloudflared --config <file> service install` reads our file. */
export const cloudflaredRestartCmd = () => ["systemctl", "restart", "cloudflared"];

// --- nginx -------------------------------------------------------------------

export const tunnelOriginNginxPath = (cfg: Config) => join(cfg.stateDir, "nginx", "apps", "tunnel-origin.conf");

/** The tunnel origin's vhosts: a 404 default, and per public app its server plus a 421 on the stack's own listener. */
export function renderTunnelNginx(
  cfg: Config,
  apps: AppEntry[],
  templates = {
    origin: readTemplate(cfg.rootDir, "access/tunnel-origin.conf.tmpl"),
    app: readTemplate(cfg.rootDir, "access/tunnel-app.conf.tmpl"),
  },
): string {
  const base = {
    STACK: cfg.stack,
    ORIGIN_ADDRESS: cfg.access.originAddress,
    ORIGIN_PORT: cfg.access.originPort,
    API_ADDRESS: cfg.api.address,
    API_PORT: cfg.api.port,
  };
  const servers = apps
    .filter((a) => appAccess(a) === "public")
    .map((a) =>
      renderTemplate(
        templates.app,
        { ...base, APP_NAME: a.name, PUBLIC_HOSTNAME: publicHostname(cfg, a), APP_UPSTREAM: appUpstream(a) },
        "access/tunnel-app.conf.tmpl",
      ),
    )
    .join("");
  return renderTemplate(templates.origin, { ...base, PUBLIC_APP_SERVERS: servers }, "access/tunnel-origin.conf.tmpl");
}

/** The registry file a stack's access is generated from, as the messages name it. */
export const registryRel = (cfg: Config) => (cfg.stack === "dev" ? "envs/apps.yaml" : `envs/apps.${cfg.stack}.yaml`);
