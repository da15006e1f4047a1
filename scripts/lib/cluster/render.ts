/**
 * Per-host files of a cluster on three hosts, rendered from the same
 * templates as the one-box stack (patroni/, etcd/, haproxy/) plus
 * patroni/vip-manager.yml.tmpl. Pure: settings + secrets + host in, files out (golden-tested).
 *
 * Every path is under the host's HOST_ROOT: / on a real host (so files sit
 * at /etc/pgplatform/<cluster>/..., /var/lib/pgplatform/<cluster>/...), a
 * folder of its own per host in the namespace lab, where the hosts share one
 * filesystem.
 */
import { join } from "node:path";
import { ToolkitError } from "../errors";
import { readTemplate, renderTemplate } from "../render";
import { rwDowninterMs } from "../stack-files";
import type { ClusterHost, ClusterSettings } from "./settings";

/** Patroni's DCS namespace: the leader key is <namespace><cluster>/leader (vip-manager watches it). */
export const NAMESPACE = "/pgplatform/";
export const MAX_LAG_ON_FAILOVER = 1_048_576;

export interface ClusterSecrets {
  POSTGRES_PASSWORD: string;
  REPLICATION_PASSWORD: string;
  REWIND_PASSWORD: string;
  PATRONI_API_PASSWORD: string;
  HAPROXY_STATS_PASSWORD: string;
}
export const CLUSTER_SECRET_KEYS = [
  "POSTGRES_PASSWORD",
  "REPLICATION_PASSWORD",
  "REWIND_PASSWORD",
  "PATRONI_API_PASSWORD",
  "HAPROXY_STATS_PASSWORD",
] as const;

export type FileOwner = "root" | "postgres" | "etcd";

export interface HostFile {
  /** absolute path on the host (under its HOST_ROOT) */
  path: string;
  content: string;
  mode: number;
  owner: FileOwner;
}

/** Where everything of one cluster lives on one host. Pure. */
export function hostPaths(s: Pick<ClusterSettings, "name">, h: Pick<ClusterHost, "root">) {
  const etc = join(h.root, "etc", "pgplatform", s.name);
  const lib = join(h.root, "var", "lib", "pgplatform", s.name);
  const tls = join(etc, "tls");
  return {
    etc,
    lib,
    log: join(h.root, "var", "log", "pgplatform", s.name),
    run: join(lib, "run"),
    patroniYml: join(etc, "patroni.yml"),
    etcdYml: join(etc, "etcd.yml"),
    haproxyCfg: join(etc, "haproxy.cfg"),
    vipYml: join(etc, "vip-manager.yml"),
    sysctl: join(h.root, "etc", "sysctl.d", `90-pgplatform-${s.name}.conf`),
    /** marks the host as a member of this cluster (plan refuses a host marked for another) */
    marker: join(h.root, "etc", "pgplatform", "cluster"),
    pgDir: join(lib, "pg"),
    pgData: join(lib, "pg", "data"),
    pgSocket: join(lib, "pg", "socket"),
    etcdData: join(lib, "etcd"),
    tls: {
      dir: tls,
      ca: join(tls, "ca.crt"),
      memberCert: join(tls, "member.crt"),
      memberKey: join(tls, "member.key"),
      /** Patroni's copy of the client pair (owned by postgres) */
      patroniCert: join(tls, "patroni-client.crt"),
      patroniKey: join(tls, "patroni-client.key"),
      /** root's copy: vip-manager and the toolkit's status probes */
      clientCert: join(tls, "client.crt"),
      clientKey: join(tls, "client.key"),
    },
  };
}
export type HostPaths = ReturnType<typeof hostPaths>;

const etcdHosts = (s: ClusterSettings) => s.hosts.map((h) => `${h.address}:${s.ports.etcdClient}`).join(",");
export const initialCluster = (s: ClusterSettings) =>
  s.hosts.map((h) => `${h.name}=https://${h.address}:${s.ports.etcdPeer}`).join(",");

/** Lines of the rendered Patroni file that the multi-host cluster changes, with why. */
const HBA_SENTINEL = "PGPLATFORM_CLUSTER_HOSTS";
const ARCHIVE_LINES =
  /^ {8}# WAL archiving[^\n]*\n(?: {8}#[^\n]*\n)*? {8}archive_mode: 'on'\n {8}archive_command: .*\n {8}archive_timeout: \d+\n/m;

/**
 * Patroni's file from patroni/patroni.yml.tmpl, then two cluster changes:
 * pg_hba's network lines become one /32 line per cluster host (replication
 * and HAProxy's connections come only from them), and WAL archiving is off
 * (the one-box stack archives to a local pgBackRest repo; the multi-host
 * cluster has no shared repo yet: README, "what doesn't yet").
 */
export function renderPatroni(rootDir: string, s: ClusterSettings, sec: ClusterSecrets, h: ClusterHost): string {
  const p = hostPaths(s, h);
  const vars = {
    CLUSTER_NAME: s.name,
    NAMESPACE,
    MEMBER_NAME: h.name,
    MEMBER_ADDRESS: h.address,
    PATRONI_PORT: s.ports.patroni,
    PG_PORT: s.ports.pg,
    PATRONI_API_PASSWORD: sec.PATRONI_API_PASSWORD,
    ETCD_HOSTS: etcdHosts(s),
    ETCD_CA_FILE: p.tls.ca,
    ETCD_CLIENT_CERT: p.tls.patroniCert,
    ETCD_CLIENT_KEY: p.tls.patroniKey,
    PATRONI_TTL: s.timing.ttl,
    PATRONI_LOOP_WAIT: s.timing.loopWait,
    PATRONI_RETRY_TIMEOUT: s.timing.retryTimeout,
    PATRONI_MAX_LAG_ON_FAILOVER: MAX_LAG_ON_FAILOVER,
    SYNCHRONOUS_MODE: true,
    FAILSAFE_MODE: true,
    PG_SHARED_BUFFERS: s.sharedBuffers,
    MEMBER_DIR: p.pgDir,
    MEMBER_DATA_DIR: p.pgData,
    MEMBER_SOCKET_DIR: p.pgSocket,
    PG_BIN_DIR: s.pgBinDir,
    POSTGRES_PASSWORD: sec.POSTGRES_PASSWORD,
    REPLICATION_PASSWORD: sec.REPLICATION_PASSWORD,
    REWIND_PASSWORD: sec.REWIND_PASSWORD,
    PG_HBA_CIDR: HBA_SENTINEL,
  };
  let out = renderTemplate(readTemplate(rootDir, "patroni/patroni.yml.tmpl"), vars, "patroni/patroni.yml.tmpl");
  out = out.replace("scripts/lib/stack-files.ts", "scripts/lib/cluster/render.ts");
  if (!ARCHIVE_LINES.test(out)) throw templateDrift("archive_mode/archive_command/archive_timeout");
  out = out.replace(
    ARCHIVE_LINES,
    "        # No WAL archive on the multi-host cluster yet (no shared pgBackRest repo).\n        archive_mode: 'off'\n",
  );
  const hbaLines = out.split("\n").filter((l) => l.includes(HBA_SENTINEL));
  if (hbaLines.length !== 2)
    throw templateDrift(`pg_hba lines with \${PG_HBA_CIDR} (found ${hbaLines.length}, want 2)`);
  out = out
    .split("\n")
    .flatMap((l) => (l.includes(HBA_SENTINEL) ? s.hosts.map((x) => l.replace(HBA_SENTINEL, `${x.address}/32`)) : [l]))
    .join("\n");
  return out;
}

const templateDrift = (what: string) =>
  new ToolkitError(
    "TEMPLATE_DRIFT",
    `patroni/patroni.yml.tmpl no longer has the ${what} the multi-host render changes`,
    "update scripts/lib/cluster/render.ts to the template, then run `make golden` and review the diff",
  );

export function renderEtcd(rootDir: string, s: ClusterSettings, h: ClusterHost): string {
  const p = hostPaths(s, h);
  return renderTemplate(
    readTemplate(rootDir, "etcd/etcd.yml.tmpl"),
    {
      CLUSTER_NAME: s.name,
      ETCD_NAME: h.name,
      ETCD_DATA_DIR: p.etcdData,
      MEMBER_ADDRESS: h.address,
      ETCD_LISTEN_ADDRESS: h.address,
      ETCD_CLIENT_PORT: s.ports.etcdClient,
      ETCD_PEER_PORT: s.ports.etcdPeer,
      ETCD_INITIAL_CLUSTER: initialCluster(s),
      ETCD_CERT_FILE: p.tls.memberCert,
      ETCD_KEY_FILE: p.tls.memberKey,
      ETCD_CA_FILE: p.tls.ca,
    },
    "etcd/etcd.yml.tmpl",
  );
}

/**
 * HAProxy binds the VIP on every host (net.ipv4.ip_nonlocal_bind=1, set by
 * the deploy), so whichever host holds the address answers on it at once.
 * Its checks ask each member's Patroni, like the one-box stack.
 */
export function renderHaproxy(rootDir: string, s: ClusterSettings, sec: ClusterSecrets): string {
  const servers = s.hosts
    .map((h) => `    server ${h.name} ${h.address}:${s.ports.pg} check port ${s.ports.patroni}`)
    .join("\n");
  return renderTemplate(
    readTemplate(rootDir, "haproxy/haproxy.cfg.tmpl"),
    {
      CLUSTER_NAME: s.name,
      HAPROXY_RUN_AS: "    user haproxy\n    group haproxy",
      HAPROXY_POOL_BIND: "    # (no pgbouncer on the cluster's hosts: clients reach this port on the floating address)",
      HAPROXY_STATS_PASSWORD: sec.HAPROXY_STATS_PASSWORD,
      HAPROXY_ADDRESS: s.vip,
      HAPROXY_STATS_PORT: s.ports.stats,
      HAPROXY_RW_PORT: s.ports.rw,
      HAPROXY_RO_PORT: s.ports.ro,
      HAPROXY_CHECK_INTER_MS: 1000,
      HAPROXY_RW_DOWNINTER_MS: rwDowninterMs(1000),
      HAPROXY_CHECK_FALL: 2,
      HAPROXY_CHECK_RISE: 2,
      HAPROXY_SERVERS: servers,
    },
    "haproxy/haproxy.cfg.tmpl",
  );
}

export function renderVipManager(rootDir: string, s: ClusterSettings, h: ClusterHost): string {
  const p = hostPaths(s, h);
  return renderTemplate(
    readTemplate(rootDir, "patroni/vip-manager.yml.tmpl"),
    {
      CLUSTER_NAME: s.name,
      MEMBER_NAME: h.name,
      NAMESPACE,
      VIP: s.vip,
      VIP_PREFIX: s.vipPrefix,
      VIP_INTERFACE: s.vipInterface,
      DCS_ENDPOINTS: s.hosts.map((x) => `  - https://${x.address}:${s.ports.etcdClient}`).join("\n"),
      ETCD_CA_FILE: p.tls.ca,
      ETCD_CLIENT_CERT: p.tls.clientCert,
      ETCD_CLIENT_KEY: p.tls.clientKey,
      VIP_INTERVAL_MS: s.timing.name === "lan" ? 1000 : 2000,
    },
    "patroni/vip-manager.yml.tmpl",
  );
}

/** HAProxy must bind the VIP on hosts that do not hold it (yet). */
export const SYSCTL_TEXT =
  "# pgplatform cluster: HAProxy binds the floating address on every host\nnet.ipv4.ip_nonlocal_bind = 1\n";

/** Every configuration file of one host (TLS files come from cluster/tls.ts). Pure. */
export function renderHostFiles(rootDir: string, s: ClusterSettings, sec: ClusterSecrets, h: ClusterHost): HostFile[] {
  const p = hostPaths(s, h);
  return [
    { path: p.patroniYml, content: renderPatroni(rootDir, s, sec, h), mode: 0o600, owner: "postgres" },
    { path: p.etcdYml, content: renderEtcd(rootDir, s, h), mode: 0o644, owner: "root" },
    { path: p.haproxyCfg, content: renderHaproxy(rootDir, s, sec), mode: 0o600, owner: "root" },
    { path: p.vipYml, content: renderVipManager(rootDir, s, h), mode: 0o644, owner: "root" },
    { path: p.sysctl, content: SYSCTL_TEXT, mode: 0o644, owner: "root" },
    { path: p.marker, content: `${s.name}\n`, mode: 0o644, owner: "root" },
  ];
}
