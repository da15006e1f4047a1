/**
 * Prometheus's web UI behind nginx with basic auth. The stack's nginx gets one more server
 * (nginx/monitoring.conf.tmpl, rendered into its apps folder as monitoring.conf) on the
 * monitoring address, port PROMETHEUS_PORT + 5 (dev 9095). User `monitor`; the password is
 * generated once into <monitoring home>/ui.pass (0600); nginx checks a bcrypt hash of it
 * (ui.htpasswd, readable by nginx's workers only). Prometheus itself stays on the stack's
 * address with no password, like every exporter; a public address is refused outright.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { isRoot, run } from "../exec";
import { readTemplate, renderTemplate, writeIfChanged } from "../render";
import { writeFileNoFollow } from "../safe-fs";
import { monitoringHome } from "./files";

export const UI_USER = "monitor";
/** nginx's workers run as nobody:nogroup when nginx is started as root. */
const NGINX_WORKER_GID = 65534;

export const monitoringUiPort = (cfg: Config) => cfg.monitoring.prometheusPort + 5;
export const monitoringUiUrl = (cfg: Config) => `http://${cfg.monitoring.address}:${monitoringUiPort(cfg)}/`;

export function monitoringUiFiles(cfg: Config) {
  return {
    password: join(monitoringHome(cfg), "ui.pass"),
    htpasswd: join(monitoringHome(cfg), "ui.htpasswd"),
    conf: join(cfg.stateDir, "nginx", "apps", "monitoring.conf"),
  };
}

/** Loopback, RFC 1918, and the shared address space Tailscale uses (100.64/10): anything else is public. */
export function isPublicAddress(ip: string): boolean {
  const [a, b] = ip.split(".").map(Number) as [number, number];
  if (a === 127 || a === 10) return false;
  if (a === 172 && b >= 16 && b <= 31) return false;
  if (a === 192 && b === 168) return false;
  if (a === 100 && b >= 64 && b <= 127) return false;
  return true;
}

/** Pure: the nginx server for the UI. */
export function renderMonitoringUi(cfg: Config, files = monitoringUiFiles(cfg)): string {
  return renderTemplate(
    readTemplate(cfg.rootDir, "nginx/monitoring.conf.tmpl"),
    {
      STACK: cfg.stack,
      MONITORING_ADDRESS: cfg.monitoring.address,
      PROMETHEUS_PORT: cfg.monitoring.prometheusPort,
      UI_PORT: monitoringUiPort(cfg),
      UI_USER,
      UI_PASSWORD_FILE: files.password,
      UI_HTPASSWD_FILE: files.htpasswd,
    },
    "nginx/monitoring.conf.tmpl",
  );
}

export const monitoringUiPassword = (cfg: Config) => readFileSync(monitoringUiFiles(cfg).password, "utf8").trim();

/**
 * Write the password (once), its hash and the nginx server; true when nginx must reload.
 * The hash is rewritten only when it no longer matches the password.
 */
export async function writeMonitoringUi(cfg: Config): Promise<boolean> {
  if (isPublicAddress(cfg.monitoring.address)) {
    throw new ToolkitError(
      "MONITORING_PUBLIC",
      `MONITORING=true would serve Prometheus's UI on ${cfg.monitoring.address}, a public address (HAPROXY_ADDRESS in ${cfg.file})`,
      "use a loopback, private (10/8, 172.16/12, 192.168/16) or tailnet (100.64/10) address for HAPROXY_ADDRESS, or set MONITORING=false",
    );
  }
  const f = monitoringUiFiles(cfg);
  if (!existsSync(f.password)) writeFileNoFollow(f.password, randomBytes(24).toString("base64url"), { mode: 0o600 });
  const password = monitoringUiPassword(cfg);
  let changed = false;
  const line = existsSync(f.htpasswd) ? readFileSync(f.htpasswd, "utf8").trim() : "";
  const hash = line.startsWith(`${UI_USER}:`) ? line.slice(UI_USER.length + 1) : "";
  if (!hash || !(await Bun.password.verify(password, hash).catch(() => false))) {
    const fresh = await Bun.password.hash(password, { algorithm: "bcrypt", cost: 10 });
    writeFileNoFollow(f.htpasswd, `${UI_USER}:${fresh}\n`, {
      mode: isRoot() ? 0o640 : 0o600,
      owner: isRoot() ? { uid: 0, gid: NGINX_WORKER_GID } : undefined,
    });
    changed = true;
  }
  return writeIfChanged(f.conf, renderMonitoringUi(cfg, f)) || changed;
}

/** MONITORING=false (or dev-down of monitoring): the UI's server goes; true when it was there. */
export function removeMonitoringUi(cfg: Config): boolean {
  const { conf } = monitoringUiFiles(cfg);
  if (!existsSync(conf)) return false;
  rmSync(conf);
  return true;
}

/** nginx -t, then SIGHUP to the stack's running nginx (it re-reads the apps folder). */
export async function reloadNginx(cfg: Config): Promise<void> {
  const { procSpecs } = await import("../native/specs");
  const { runningPid } = await import("../procs");
  const spec = procSpecs(cfg).nginx;
  const pid = runningPid(spec);
  if (!pid) return;
  const t = await run(["nginx", "-t", "-q", "-p", join(cfg.stateDir, "nginx"), "-c", spec.marker], {
    nothrow: true,
    timeoutMs: 10_000,
  });
  if (t.code !== 0)
    throw new ToolkitError(
      "NGINX_CONFIG",
      `nginx refuses its config after adding the monitoring UI: ${t.stderr.trim()}`,
      `see ${monitoringUiFiles(cfg).conf}`,
    );
  process.kill(pid, "SIGHUP");
}
