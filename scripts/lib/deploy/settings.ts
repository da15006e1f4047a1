/**
 * A customer's bundle: clients/<name>/client.env holds the committed,
 * non-secret settings (validated here, errors name the key), and
 * clients/<name>/.secrets.env the generated secrets (0600, gitignored).
 * The client's platform stack is described by an ordinary stack env file
 * generated from these settings and validated by the one config loader.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT_DIR, parseConfig, type Config } from "../config";
import { ToolkitError } from "../errors";
import { writeIfChanged } from "../render";
import { CLIENT_SETTINGS, type ClientKey } from "../settings/client";
import { keyMeta, parseSettings } from "../settings/engine";
import { CLIENT_NAME_RE } from "../settings/rules";

/** The environment ladder of the customer's main app (seeds: dev 6100, staging 7100, production 9000). */
export const ENVIRONMENTS = ["dev", "staging", "production"] as const;
export type EnvName = (typeof ENVIRONMENTS)[number];
/** Staging and production must never run with demo or weak secrets. */
export const GATED_ENVIRONMENTS: EnvName[] = ["staging", "production"];
export const DEFAULT_PORTS: Record<EnvName, number> = { dev: 6100, staging: 7100, production: 9000 };
export const databaseFor = (env: EnvName) => `orchestrator_ai_${env}`;
/** Each environment's own login role: it may connect to its own database only. */
export const roleFor = (env: EnvName) => `orchestrator_ai_${env}_app`;

export { CLIENT_NAME_RE } from "../settings/rules";
export { CLIENT_SETTINGS, type ClientKey } from "../settings/client";

export interface ClientSettings {
  name: string;
  host: string;
  sshPort: number;
  sshIdentity: string;
  sshKnownHosts: string;
  domain: string;
  access: "internal" | "public";
  adminEmail: string;
  profile: "16" | "32" | "64";
  remoteDir: string;
  keepReleases: number;
  memberAddresses: string[];
  haproxy: { address: string; rwPort: number; roPort: number; statsPort: number };
  api: { address: string; port: number };
  ports: Record<EnvName, number>;
  sharedBuffers: string;
  runtime: "auto" | "native" | "docker";
  /** TUNNEL/TAILNET on the customer's stack: none unless explicitly allowed */
  remoteAccess?: { tunnel: "cloudflare" | "none"; tailnet: "tailscale" | "none"; allowed: boolean; tunnelId: string };
  /** the raw key=value pairs (for writing back) */
  raw: Record<string, string>;
}

export const clientsDir = () => process.env.CLIENTS_DIR ?? join(ROOT_DIR, "clients");
export const clientDir = (name: string, base = clientsDir()) => join(base, name);
export const clientEnvFile = (name: string, base = clientsDir()) => join(clientDir(name, base), "client.env");
export const clientSecretsFile = (name: string, base = clientsDir()) => join(clientDir(name, base), ".secrets.env");
export const clientTlsDir = (name: string, base = clientsDir()) => join(clientDir(name, base), ".tls");
/** The client's pinned ssh host keys (public; committed with client.env). */
export const clientKnownHostsFile = (name: string, base = clientsDir()) => join(clientDir(name, base), "known_hosts");
export const clientStack = (name: string) => `client-${name}`;

export function checkClientName(name: string): string {
  if (!CLIENT_NAME_RE.test(name)) {
    throw new ToolkitError(
      "BAD_CLIENT_NAME",
      `client name ${JSON.stringify(name)} is not valid`,
      "use 2-21 lowercase letters and digits, starting with a letter, e.g. CLIENT=acme",
    );
  }
  return name;
}

/** Validate client.env text; `file` names it in errors. Pure. */
export function parseClientSettings(text: string, file: string): ClientSettings {
  const { values: v, raw } = parseSettings(CLIENT_SETTINGS, text, file);
  return {
    name: v.CLIENT_NAME,
    host: v.HOST,
    sshPort: v.SSH_PORT,
    sshIdentity: v.SSH_IDENTITY,
    sshKnownHosts: v.SSH_KNOWN_HOSTS,
    domain: v.DOMAIN,
    access: v.ACCESS,
    adminEmail: v.ADMIN_EMAIL,
    profile: v.PROFILE,
    remoteDir: v.REMOTE_DIR.replace(/\/+$/, ""),
    keepReleases: v.KEEP_RELEASES,
    memberAddresses: v.MEMBER_ADDRESSES,
    haproxy: {
      address: v.HAPROXY_ADDRESS,
      rwPort: v.HAPROXY_RW_PORT,
      roPort: v.HAPROXY_RO_PORT,
      statsPort: v.HAPROXY_STATS_PORT,
    },
    api: { address: v.API_ADDRESS, port: v.API_PORT },
    ports: { dev: v.PORT_DEV, staging: v.PORT_STAGING, production: v.PORT_PRODUCTION },
    sharedBuffers: v.PG_SHARED_BUFFERS,
    runtime: v.RUNTIME,
    remoteAccess: {
      tunnel: v.TUNNEL,
      tailnet: v.TAILNET,
      allowed: v.ALLOW_REMOTE_ACCESS,
      tunnelId: v.CLOUDFLARE_TUNNEL_ID,
    },
    raw,
  };
}

export function loadClientSettings(name: string, base = clientsDir()): ClientSettings {
  const file = clientEnvFile(checkClientName(name), base);
  if (!existsSync(file))
    throw new ToolkitError(
      "NO_CLIENT",
      `client ${name} has no bundle (${file} does not exist)`,
      `create it: make deploy-client CLIENT=${name} HOST=... DOMAIN=... ACCESS=internal PLAN=1`,
    );
  const s = parseClientSettings(readFileSync(file, "utf8"), file.replace(ROOT_DIR + "/", ""));
  if (s.name !== name)
    throw new ToolkitError(
      "BAD_CLIENT_CONFIG",
      `${file}: CLIENT_NAME: is ${s.name}, but the folder is ${name}`,
      `set CLIENT_NAME=${name}`,
    );
  if (!s.sshKnownHosts) s.sshKnownHosts = clientKnownHostsFile(name, base);
  return s;
}

/** Defaults for a new customer: one server, members on loopback, the seeds' shared-server ports. */
export function newClientValues(
  name: string,
  answers: { host: string; domain: string; access: "internal" | "public"; profile: string; adminEmail?: string },
): Record<string, string> {
  return {
    CLIENT_NAME: name,
    HOST: answers.host,
    DOMAIN: answers.domain,
    ACCESS: answers.access,
    ADMIN_EMAIL: answers.adminEmail ?? "",
    PROFILE: answers.profile,
    REMOTE_DIR: `/opt/pgplatform/${name}`,
    MEMBER_ADDRESSES: "127.0.0.11,127.0.0.12,127.0.0.13",
    HAPROXY_ADDRESS: "127.0.0.1",
    API_ADDRESS: "127.0.0.1",
  };
}

const SECTIONS: [string, ClientKey[]][] = [
  [
    "Who and where. HOST is an ssh destination (the operator's key must be authorized there) or `local`.",
    ["CLIENT_NAME", "HOST", "SSH_PORT", "SSH_IDENTITY", "SSH_KNOWN_HOSTS"],
  ],
  [
    "TLS: ACCESS=internal generates a private CA and a certificate for dev.DOMAIN, staging.DOMAIN and DOMAIN;\n# ACCESS=public uses Let's Encrypt through certbot's webroot flow (needs ADMIN_EMAIL and port 80 reachable).",
    ["DOMAIN", "ACCESS", "ADMIN_EMAIL"],
  ],
  [
    "Size profile in GB of RAM (16 / 32 / 64): which optional services run and how many workers.",
    ["PROFILE", "PG_SHARED_BUFFERS"],
  ],
  [
    "Releases on the target: REMOTE_DIR/releases/<n>, REMOTE_DIR/current -> the live one; the last KEEP_RELEASES are kept.",
    ["REMOTE_DIR", "KEEP_RELEASES", "RUNTIME"],
  ],
  [
    "The platform stack on the target: three Patroni members, HAProxy, nginx.",
    [
      "MEMBER_ADDRESSES",
      "HAPROXY_ADDRESS",
      "HAPROXY_RW_PORT",
      "HAPROXY_RO_PORT",
      "HAPROXY_STATS_PORT",
      "API_ADDRESS",
      "API_PORT",
    ],
  ],
  [
    "The environments' TLS entry points (nginx) on API_ADDRESS; each app listens on loopback at its port + 1.",
    ["PORT_DEV", "PORT_STAGING", "PORT_PRODUCTION"],
  ],
];

/** client.env as committed: commented, every key present (defaults written out). */
export function renderClientEnv(values: Record<string, string>): string {
  const out = [
    `# Customer bundle settings for ${values.CLIENT_NAME}. Committed and non-secret:`,
    "# generated secrets live in .secrets.env beside this file (0600, gitignored).",
    "# Used by `make deploy-client CLIENT=<name>`; errors name the key and the fix.",
  ];
  for (const [comment, keys] of SECTIONS) {
    out.push("", `# ${comment}`);
    for (const k of keys) out.push(`${k}=${values[k] ?? keyMeta(CLIENT_SETTINGS.keys[k]).default ?? ""}`);
  }
  return out.join("\n") + "\n";
}

export function writeClientEnv(name: string, values: Record<string, string>, base = clientsDir()): boolean {
  const text = renderClientEnv(values);
  parseClientSettings(text, clientEnvFile(name, base)); // never write a file we would refuse to read
  return writeIfChanged(clientEnvFile(name, base), text);
}

export interface SizeProfile {
  gb: 16 | 32 | 64;
  localModels: "off" | "small (7B)" | "large (13B+)";
  monitoring: "basic" | "full" | "advanced";
  workers: number;
  sharedBuffers: string;
  composeProfiles: string[];
}

/** The seeds' resource profiles (16 GB minimum, 32 recommended, 64+ optimal). */
export const SIZE_PROFILES: Record<"16" | "32" | "64", SizeProfile> = {
  "16": { gb: 16, localModels: "off", monitoring: "basic", workers: 1, sharedBuffers: "1GB", composeProfiles: [] },
  "32": {
    gb: 32,
    localModels: "small (7B)",
    monitoring: "full",
    workers: 2,
    sharedBuffers: "2GB",
    composeProfiles: ["local-models", "monitoring"],
  },
  "64": {
    gb: 64,
    localModels: "large (13B+)",
    monitoring: "advanced",
    workers: 4,
    sharedBuffers: "4GB",
    composeProfiles: ["local-models", "monitoring"],
  },
};

/** Pick a profile from the target's memory. Machines report a little under their nominal size. */
export function profileForMemory(memTotalKb: number): "16" | "32" | "64" {
  const gb = memTotalKb / 1024 / 1024;
  if (gb >= 60) return "64";
  if (gb >= 30) return "32";
  return "16";
}

/** The stack env file the target's dev-up reads (envs/client-<name>.env in the release). */
export function renderStackEnv(s: ClientSettings): string {
  const profile = SIZE_PROFILES[s.profile];
  const stateDir = `${s.remoteDir}/state`;
  const lines = [
    `# Generated by make deploy-client from clients/${s.name}/client.env; edit that file, not this one.`,
    `CLUSTER_NAME=pgplatform-${s.name}`,
    `MEMBER_ADDRESSES=${s.memberAddresses.join(",")}`,
    "PG_PORT=5432",
    "PATRONI_PORT=8008",
    "ETCD_CLIENT_PORT=2379",
    "ETCD_PEER_PORT=2380",
    `HAPROXY_ADDRESS=${s.haproxy.address}`,
    `HAPROXY_RW_PORT=${s.haproxy.rwPort}`,
    `HAPROXY_RO_PORT=${s.haproxy.roPort}`,
    `HAPROXY_STATS_PORT=${s.haproxy.statsPort}`,
    "HAPROXY_CHECK_INTER_MS=1000",
    "HAPROXY_CHECK_FALL=2",
    "HAPROXY_CHECK_RISE=2",
    `API_ADDRESS=${s.api.address}`,
    `API_PORT=${s.api.port}`,
    // One server: the fast LAN timing profile (DESIGN.md).
    "PATRONI_TTL=10",
    "PATRONI_LOOP_WAIT=1",
    "PATRONI_RETRY_TIMEOUT=3",
    "PATRONI_MAX_LAG_ON_FAILOVER=1048576",
    "SYNCHRONOUS_MODE=true",
    "FAILSAFE_MODE=true",
    "PG_HBA_CIDR=127.0.0.0/8",
    "PG_BIN_DIR=/usr/lib/postgresql/15/bin",
    `PG_SHARED_BUFFERS=${s.sharedBuffers || profile.sharedBuffers}`,
    `DATABASES=${ENVIRONMENTS.map(databaseFor).join(",")}`,
    `RUNTIME=${s.runtime}`,
    // Outside the release dirs: data survives new releases and rollbacks.
    `STATE_DIR=${stateDir}`,
    "MEMBER_ROOT=",
  ];
  // Written only when allowed and not none, so existing customers' stack files stay byte for byte the same.
  const ra = s.remoteAccess;
  if (ra?.allowed && (ra.tunnel !== "none" || ra.tailnet !== "none"))
    lines.push(
      "ALLOW_REMOTE_ACCESS=true",
      `TUNNEL=${ra.tunnel}`,
      `TAILNET=${ra.tailnet}`,
      `PUBLIC_DOMAIN=${s.domain}`,
      `CLOUDFLARE_TUNNEL_ID=${ra.tunnelId}`,
    );
  return lines.join("\n") + "\n";
}

/** Validate the generated stack env with the one config loader (as the target will read it). */
export function stackConfig(s: ClientSettings, rootDir: string): Config {
  return parseConfig(renderStackEnv(s), {
    file: `envs/${clientStack(s.name)}.env`,
    stack: clientStack(s.name),
    rootDir,
    isRoot: true,
  });
}

/** Where things live on the target. */
export function remoteLayout(s: ClientSettings) {
  const base = s.remoteDir;
  return {
    base,
    releases: `${base}/releases`,
    current: `${base}/current`,
    cache: `${base}/cache`,
    incoming: `${base}/incoming`,
    lock: `${base}/deploy.lock`,
    stateDir: `${base}/state/${clientStack(s.name)}`,
  };
}
