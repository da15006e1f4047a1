/**
 * A production cluster on three hosts: clusters/<name>/cluster.env holds the
 * committed, non-secret settings (this schema; errors name file, key, value
 * and the fix), clusters/<name>/.secrets.env the generated passwords (0600,
 * gitignored), clusters/<name>/known_hosts the pinned host keys.
 *
 * Written with zod in the style of the shared settings engine being built
 * this round, so the lead can register CLUSTER_SETTINGS there as one schema.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";
import { ROOT_DIR } from "../config";
import { ToolkitError } from "../errors";

export const CLUSTER_NAME_RE = /^[a-z][a-z0-9]{1,20}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const ipv4 = z.string().regex(IPV4, "must be an IPv4 address like 10.0.0.50");
const port = z.coerce.number({ message: "must be a number" }).int("must be a whole number").min(1, "must be 1-65535").max(65535, "must be 1-65535");
const hostEntry = z.string().regex(/^[a-z_][a-z0-9_.-]*@[0-9.]+$/, "each host must be user@address").refine((h) => IPV4.test(h.slice(h.indexOf("@") + 1)), "each host's address must be IPv4");

/**
 * Timing presets with the recovery time they buy. `lan`: on the namespace
 * lab, a cut-off or killed leader's writes resume through the VIP in 12-14 s.
 * `wan`: a failover waits for the leader key to expire: up to ttl + loop_wait.
 * Both keep loop_wait + 2 * retry_timeout <= ttl (Patroni's own rule).
 */
export const TIMING_PRESETS = {
  lan: { ttl: 10, loopWait: 1, retryTimeout: 3, expectedRto: "about 11 s (ttl 10 + loop_wait 1); measured on the namespace lab: 12-14 s write gap" },
  wan: { ttl: 30, loopWait: 10, retryTimeout: 10, expectedRto: "up to 40 s (ttl 30 + loop_wait 10)" },
} as const;
export type TimingName = keyof typeof TIMING_PRESETS;

/** Every key cluster.env may hold, its rule, a hint (the fix), and a default where one is sensible. */
export const CLUSTER_SETTINGS = {
  CLUSTER_NAME: { schema: z.string().regex(CLUSTER_NAME_RE, "must be 2-21 lowercase letters/digits, starting with a letter"), hint: "the folder's name, e.g. CLUSTER_NAME=crm" },
  HOSTS: { schema: z.string().min(1, "must list the hosts").transform((s) => s.split(",").map((h) => h.trim())).pipe(z.array(hostEntry).length(3, "must list exactly 3 hosts (one etcd + Patroni member each)")), hint: "three ssh destinations, e.g. HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3" },
  VIP: { schema: ipv4, hint: "the floating client address, a free address in the hosts' network, e.g. VIP=10.0.0.50" },
  VIP_PREFIX: { schema: z.coerce.number().int().min(8, "must be 8-32").max(32, "must be 8-32"), hint: "prefix length of the hosts' network, e.g. 24", default: "24" },
  VIP_INTERFACE: { schema: z.string().regex(/^[A-Za-z0-9_.@-]{1,15}$/, "must be a network interface name"), hint: "the interface of the private network on every host, e.g. eth0 or ens10", default: "eth0" },
  TIMING: { schema: z.enum(["lan", "wan"], { message: "must be lan or wan" }), hint: "lan: ttl 10/loop_wait 1/retry 3 (RTO ~11 s); wan: 30/10/10 (RTO up to 40 s)", default: "lan" },
  SSH_PORT: { schema: port, hint: "e.g. 22", default: "22" },
  SSH_IDENTITY: { schema: z.string(), hint: "private key file; empty: ssh's default", default: "" },
  SSH_KNOWN_HOSTS: { schema: z.string(), hint: "pinned host keys; empty: clusters/<name>/known_hosts (first contact: TRUST_NEW_HOST=1)", default: "" },
  HOST_ROOT: { schema: z.string().regex(/^\/[A-Za-z0-9._/%-]*$/, "must be an absolute path (%i: the host's number)"), hint: "/ on real hosts; the namespace lab gives each host its own root, e.g. /var/lib/pgplab/h%i/root", default: "/" },
  PG_PORT: { schema: port, hint: "Postgres on each host's address", default: "5432" },
  PATRONI_PORT: { schema: port, hint: "Patroni REST API", default: "8008" },
  ETCD_CLIENT_PORT: { schema: port, hint: "etcd clients", default: "2379" },
  ETCD_PEER_PORT: { schema: port, hint: "etcd peers", default: "2380" },
  HAPROXY_RW_PORT: { schema: port, hint: "read-write Postgres on the VIP", default: "5000" },
  HAPROXY_RO_PORT: { schema: port, hint: "read-only Postgres on the VIP", default: "5001" },
  HAPROXY_STATS_PORT: { schema: port, hint: "HAProxy stats on the VIP", default: "7000" },
  PG_SHARED_BUFFERS: { schema: z.string().regex(/^\d+(kB|MB|GB)$/, "must be a size like 1GB"), hint: "e.g. 2GB on a 8 GB host", default: "128MB" },
  PG_BIN_DIR: { schema: z.string().regex(/^\//, "must be an absolute path"), hint: "Debian: /usr/lib/postgresql/15/bin", default: "/usr/lib/postgresql/15/bin" },
} as const satisfies Record<string, { schema: z.ZodTypeAny; hint: string; default?: string }>;
export type ClusterKey = keyof typeof CLUSTER_SETTINGS;

export interface ClusterHost {
  /** 1-based position in HOSTS: member names and HOST_ROOT's %i come from it */
  index: number;
  /** Patroni member and etcd member name: <cluster><index>, e.g. crm1 */
  name: string;
  user: string;
  address: string;
  /** user@address, for ssh */
  ssh: string;
  /** where this host's files live: / on real hosts */
  root: string;
}

export interface ClusterSettings {
  name: string;
  file: string;
  hosts: ClusterHost[];
  vip: string;
  vipPrefix: number;
  vipInterface: string;
  timing: { name: TimingName; ttl: number; loopWait: number; retryTimeout: number; expectedRto: string };
  ssh: { port: number; identity: string; knownHosts: string };
  ports: { pg: number; patroni: number; etcdClient: number; etcdPeer: number; rw: number; ro: number; stats: number };
  sharedBuffers: string;
  pgBinDir: string;
}

export const clusterDir = (name: string, root = ROOT_DIR) => join(root, "clusters", name);
export const clusterEnvFile = (name: string, root = ROOT_DIR) => join(clusterDir(name, root), "cluster.env");
export const clusterSecretsFile = (name: string, root = ROOT_DIR) => join(clusterDir(name, root), ".secrets.env");
export const clusterKnownHosts = (s: Pick<ClusterSettings, "name" | "ssh">, root = ROOT_DIR) => s.ssh.knownHosts || join(clusterDir(s.name, root), "known_hosts");

const settingError = (file: string, key: string, value: string | undefined, why: string, fix: string) =>
  new ToolkitError("CLUSTER_SETTING", `${file}: ${key}${value === undefined ? " is missing" : `=${JSON.stringify(value)}`}: ${why}`, `set ${key} in ${file} (${fix})`);

const ip2int = (ip: string) => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
const sameNet = (a: string, b: string, prefix: number) => prefix === 0 || Math.floor(ip2int(a) / 2 ** (32 - prefix)) === Math.floor(ip2int(b) / 2 ** (32 - prefix));

/** Parse cluster.env text (pure; `overrides` are values given on the command line, which win). */
export function parseClusterSettings(text: string, file: string, overrides: Record<string, string | undefined> = {}): ClusterSettings {
  const raw: Record<string, string> = { ...parseDotenv(text) };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined && v !== "") raw[k] = v;
  const known = new Set(Object.keys(CLUSTER_SETTINGS));
  for (const k of Object.keys(raw)) {
    if (!known.has(k)) throw settingError(file, k, raw[k], "unknown key", `remove it; known keys: ${[...known].join(", ")}`);
  }
  const v: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(CLUSTER_SETTINGS) as [ClusterKey, { schema: z.ZodTypeAny; hint: string; default?: string }][]) {
    const value = raw[key] ?? spec.default;
    if (value === undefined) throw settingError(file, key, undefined, "required", spec.hint);
    const r = spec.schema.safeParse(value);
    if (!r.success) throw settingError(file, key, value, r.error.issues[0]?.message ?? "invalid", spec.hint);
    v[key] = r.data;
  }
  const name = v.CLUSTER_NAME as string;
  const hostList = v.HOSTS as string[];
  const root = v.HOST_ROOT as string;
  const hosts = hostList.map((h, i): ClusterHost => {
    const at = h.indexOf("@");
    return { index: i + 1, name: `${name}${i + 1}`, user: h.slice(0, at), address: h.slice(at + 1), ssh: h, root: root.replaceAll("%i", String(i + 1)) };
  });
  const hostsRaw = raw.HOSTS ?? "";
  const seen = new Map<string, number>();
  for (const h of hosts) {
    if (seen.has(h.address)) throw settingError(file, "HOSTS", hostsRaw, `${h.address} is listed twice (hosts ${seen.get(h.address)} and ${h.index}): two members on one machine are not HA`, "three different machines");
    seen.set(h.address, h.index);
  }
  const vip = v.VIP as string;
  const prefix = v.VIP_PREFIX as number;
  if (seen.has(vip)) throw settingError(file, "VIP", vip, "is one of the hosts' own addresses", "a free address in the hosts' network");
  const off = hosts.find((h) => !sameNet(h.address, vip, prefix));
  if (off) throw settingError(file, "VIP", vip, `is not in the network of host ${off.address} (/${prefix}): the floating address must be reachable on every host's link`, "an address of the hosts' private network, or fix VIP_PREFIX");
  const t = TIMING_PRESETS[v.TIMING as TimingName];
  const ports = { pg: v.PG_PORT as number, patroni: v.PATRONI_PORT as number, etcdClient: v.ETCD_CLIENT_PORT as number, etcdPeer: v.ETCD_PEER_PORT as number, rw: v.HAPROXY_RW_PORT as number, ro: v.HAPROXY_RO_PORT as number, stats: v.HAPROXY_STATS_PORT as number };
  const byPort = new Map<number, string>();
  for (const [k, p] of Object.entries(ports)) {
    if (byPort.has(p)) throw settingError(file, portKey(k), String(p), `is also used by ${portKey(byPort.get(p)!)}`, "a port of its own");
    byPort.set(p, k);
  }
  return {
    name,
    file,
    hosts,
    vip,
    vipPrefix: prefix,
    vipInterface: v.VIP_INTERFACE as string,
    timing: { name: v.TIMING as TimingName, ...t },
    ssh: { port: v.SSH_PORT as number, identity: v.SSH_IDENTITY as string, knownHosts: v.SSH_KNOWN_HOSTS as string },
    ports,
    sharedBuffers: v.PG_SHARED_BUFFERS as string,
    pgBinDir: v.PG_BIN_DIR as string,
  };
}

const PORT_KEYS: Record<string, ClusterKey> = { pg: "PG_PORT", patroni: "PATRONI_PORT", etcdClient: "ETCD_CLIENT_PORT", etcdPeer: "ETCD_PEER_PORT", rw: "HAPROXY_RW_PORT", ro: "HAPROXY_RO_PORT", stats: "HAPROXY_STATS_PORT" };
const portKey = (k: string) => PORT_KEYS[k] ?? k;

/** Load clusters/<name>/cluster.env; CLUSTER_NAME must match the folder. */
export function loadClusterSettings(name: string, overrides: Record<string, string | undefined> = {}, root = ROOT_DIR): ClusterSettings {
  if (!CLUSTER_NAME_RE.test(name)) throw new ToolkitError("CLUSTER_NAME", `CLUSTER=${JSON.stringify(name)}: must be 2-21 lowercase letters/digits, starting with a letter`, "e.g. make cluster-plan CLUSTER=crm");
  const file = clusterEnvFile(name, root);
  const rel = `clusters/${name}/cluster.env`;
  if (!existsSync(file) && !overrides.HOSTS) {
    throw new ToolkitError("NO_CLUSTER", `${rel} does not exist`, `create it: make cluster-plan CLUSTER=${name} HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3 VIP=10.0.0.50 (writes the file), or copy clusters/example/cluster.env`);
  }
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const s = parseClusterSettings(text, rel, { CLUSTER_NAME: existsSync(file) ? undefined : name, ...overrides });
  if (s.name !== name) throw settingError(rel, "CLUSTER_NAME", s.name, `does not match the folder clusters/${name}`, `CLUSTER_NAME=${name}`);
  return s;
}

/** The cluster.env text for given values (what `make cluster-lab` and a first `cluster-plan` write). Pure. */
export function clusterEnvText(values: Partial<Record<ClusterKey, string>>, header: string): string {
  const lines = [`# ${header}`, "# Keys and rules: scripts/lib/cluster/settings.ts (CLUSTER_SETTINGS)."];
  for (const [k, v] of Object.entries(values)) if (v !== undefined) lines.push(`${k}=${v}`);
  return lines.join("\n") + "\n";
}
