/**
 * clusters/<name>/cluster.env (issue 14: a production cluster on three hosts)
 * as a table of the one settings engine: every key declared once, typed
 * values, errors naming file, key, value and the fix. Same keys, defaults and
 * rules as the multi-host work's first schema (scripts/lib/cluster/settings.ts
 * on its branch), so its parser can become a call to parseClusterSettings.
 * clusters/README.md is this table (a unit test keeps the two equal).
 */
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";
import { checkSettings, defineSettings, keyedPorts, portClash, setting, type Problem, type Values } from "./engine";
import { CLUSTERS_NAME_RE, ipv4, list, oneOf, port, whole } from "./rules";

/**
 * Timing presets with the recovery time they buy. `lan`: a hard kill of the leader
 * is writable again in about 11 s (measured on this machine's lab). `wan`: a
 * failover waits for the leader key to expire: up to ttl + loop_wait. Both keep
 * loop_wait + 2 * retry_timeout <= ttl (Patroni's own rule; a unit test checks).
 */
export const TIMING_PRESETS = {
  lan: {
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    expectedRto: "about 11 s (ttl 10 + loop_wait 1); measured here ~11 s under write load",
  },
  wan: { ttl: 30, loopWait: 10, retryTimeout: 10, expectedRto: "up to 40 s (ttl 30 + loop_wait 10)" },
} as const;
export type TimingName = keyof typeof TIMING_PRESETS;

const hostEntry = () =>
  z
    .string()
    .regex(/^[a-z_][a-z0-9_.-]*@[0-9.]+$/, "each host must be user@address")
    .refine(
      (h) => ipv4().safeParse(h.slice(h.indexOf("@") + 1)).success,
      "each host's address must be IPv4 (0-255 each part)",
    );

const KEYS = {
  CLUSTER_NAME: setting(
    z.string().regex(CLUSTERS_NAME_RE, "must be 2-21 lowercase letters/digits, starting with a letter"),
    "the folder's name, e.g. CLUSTER_NAME=crm",
  ),
  HOSTS: setting(
    list(hostEntry()).refine((a) => a.length === 3, "must list exactly 3 hosts (one etcd + Patroni member each)"),
    "three ssh destinations, e.g. HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3",
  ),
  VIP: setting(ipv4(), "the floating client address, a free address in the hosts' network, e.g. VIP=10.0.0.50"),
  VIP_PREFIX: setting(
    whole(8, { max: 32, minMessage: "must be 8-32", maxMessage: "must be 8-32" }),
    "prefix length of the hosts' network, e.g. 24",
    "24",
  ),
  VIP_INTERFACE: setting(
    z.string().regex(/^[A-Za-z0-9_.@-]{1,15}$/, "must be a network interface name"),
    "the interface of the private network on every host, e.g. eth0 or ens10",
    "eth0",
  ),
  TIMING: setting(
    oneOf(["lan", "wan"]),
    "lan: ttl 10/loop_wait 1/retry 3 (RTO ~11 s); wan: 30/10/10 (RTO up to 40 s)",
    "lan",
  ),
  SSH_PORT: setting(port(), "e.g. 22", "22"),
  SSH_IDENTITY: setting(z.string(), "private key file; empty: ssh's default", ""),
  SSH_KNOWN_HOSTS: setting(
    z.string(),
    "pinned host keys; empty: clusters/<name>/known_hosts (first contact: TRUST_NEW_HOST=1)",
    "",
  ),
  HOST_ROOT: setting(
    z.string().regex(/^\/[A-Za-z0-9._/%-]*$/, "must be an absolute path (%i: the host's number, %a: its address)"),
    "/ on real hosts; the namespace lab gives each host its own root, e.g. /var/lib/pgplab/%a/root",
    "/",
  ),
  PG_PORT: setting(port(), "Postgres on each host's address", "5432"),
  PATRONI_PORT: setting(port(), "Patroni REST API", "8008"),
  ETCD_CLIENT_PORT: setting(port(), "etcd clients", "2379"),
  ETCD_PEER_PORT: setting(port(), "etcd peers", "2380"),
  HAPROXY_RW_PORT: setting(port(), "read-write Postgres on the VIP", "5000"),
  HAPROXY_RO_PORT: setting(port(), "read-only Postgres on the VIP", "5001"),
  HAPROXY_STATS_PORT: setting(port(), "HAProxy stats on the VIP", "7000"),
  PG_SHARED_BUFFERS: setting(
    z.string().regex(/^\d+(kB|MB|GB)$/, "must be a size like 1GB"),
    "e.g. 2GB on a 8 GB host",
    "128MB",
  ),
  PG_BIN_DIR: setting(
    z.string().regex(/^\//, "must be an absolute path"),
    "Debian: /usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/15/bin",
  ),
};

export type ClusterKey = keyof typeof KEYS;
export type ClusterValues = Values<typeof KEYS>;

const addressOf = (host: string) => host.slice(host.indexOf("@") + 1);
const ip2int = (ip: string) => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
/** Whether two addresses share the first `prefix` bits. */
export const sameNetwork = (a: string, b: string, prefix: number) =>
  Math.floor(ip2int(a) / 2 ** (32 - prefix)) === Math.floor(ip2int(b) / 2 ** (32 - prefix));

const RULES: ((v: ClusterValues) => Problem | undefined)[] = [
  (v) => {
    const seen = new Map<string, number>();
    for (const [i, h] of v.HOSTS.entries()) {
      const first = seen.get(addressOf(h));
      if (first !== undefined)
        return {
          key: "HOSTS",
          message: `${addressOf(h)} is listed twice (hosts ${first} and ${i + 1}): two members on one machine are not HA`,
          fix: "list three different machines",
        };
      seen.set(addressOf(h), i + 1);
    }
    return undefined;
  },
  (v) =>
    v.HOSTS.some((h) => addressOf(h) === v.VIP)
      ? {
          key: "VIP",
          message: `${v.VIP} is one of the hosts' own addresses`,
          fix: "pick a free address in the hosts' network",
        }
      : undefined,
  (v) => {
    const off = v.HOSTS.map(addressOf).find((a) => !sameNetwork(a, v.VIP, v.VIP_PREFIX));
    if (off === undefined) return undefined;
    return {
      key: "VIP",
      message: `${v.VIP} is not in the network of host ${off} (/${v.VIP_PREFIX}): the floating address must be reachable on every host's link`,
      fix: "pick an address of the hosts' private network, or fix VIP_PREFIX",
    };
  },
  (v) =>
    portClash(
      keyedPorts(v, [
        "PG_PORT",
        "PATRONI_PORT",
        "ETCD_CLIENT_PORT",
        "ETCD_PEER_PORT",
        "HAPROXY_RW_PORT",
        "HAPROXY_RO_PORT",
        "HAPROXY_STATS_PORT",
      ]),
      "give each listener a port of its own",
    ),
];

export const CLUSTER_SETTINGS = defineSettings({
  code: "CLUSTER_SETTING",
  doc: "clusters/README.md",
  keys: KEYS,
  rules: RULES,
});

export interface ClusterHost {
  /** 1-based position in HOSTS: member names and HOST_ROOT's %i come from it (a replacement host takes its predecessor's) */
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

/** Parse cluster.env text (pure; `overrides` are values given on the command line, which win over the file). */
export function parseClusterSettings(
  text: string,
  file: string,
  overrides: Record<string, string | undefined> = {},
): ClusterSettings {
  const raw: Record<string, string> = { ...parseDotenv(Buffer.from(text)) };
  for (const [k, v] of Object.entries(overrides)) if (v) raw[k] = v;
  const v = checkSettings(CLUSTER_SETTINGS, raw, file);
  return {
    name: v.CLUSTER_NAME,
    file,
    hosts: v.HOSTS.map((ssh, i) => ({
      index: i + 1,
      name: `${v.CLUSTER_NAME}${i + 1}`,
      user: ssh.slice(0, ssh.indexOf("@")),
      address: addressOf(ssh),
      ssh,
      root: v.HOST_ROOT.replaceAll("%i", String(i + 1)).replaceAll("%a", addressOf(ssh)),
    })),
    vip: v.VIP,
    vipPrefix: v.VIP_PREFIX,
    vipInterface: v.VIP_INTERFACE,
    timing: { name: v.TIMING, ...TIMING_PRESETS[v.TIMING] },
    ssh: { port: v.SSH_PORT, identity: v.SSH_IDENTITY, knownHosts: v.SSH_KNOWN_HOSTS },
    ports: {
      pg: v.PG_PORT,
      patroni: v.PATRONI_PORT,
      etcdClient: v.ETCD_CLIENT_PORT,
      etcdPeer: v.ETCD_PEER_PORT,
      rw: v.HAPROXY_RW_PORT,
      ro: v.HAPROXY_RO_PORT,
      stats: v.HAPROXY_STATS_PORT,
    },
    sharedBuffers: v.PG_SHARED_BUFFERS,
    pgBinDir: v.PG_BIN_DIR,
  };
}
