/**
 * Which files a stack needs, and the variables each template gets. The same
 * templates serve both runtimes: only the addresses and paths differ.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Config, Member } from "./config";
import { etcdTlsFiles } from "./etcd-tls";
import { readTemplate, renderTemplate } from "./render";
import { haproxySocketDir } from "./rundir";

export type RuntimeKind = "native" | "docker";

/** The compose network's subnet (compose/dev.yml): pg_hba admits it, with SCRAM. */
export const DOCKER_SUBNET = "172.30.0.0/24";

export interface RenderedFile {
  /** path relative to the rendered dir (native) */
  path: string;
  content: string;
  /** holds secrets: 0600, and owned by the postgres OS user where it is Patroni's */
  secret: boolean;
  /** the member whose Patroni reads it (native: copied into the member dir) */
  member?: string;
}

/**
 * How often HAProxy's read-write listener checks a server it has marked down, in ms: a quarter second
 * (never slower than the interval itself). Measured on the one-box stack (README, pooling figures): the
 * promoted member was routed up to a whole interval (1 s) after Patroni had promoted it, which was most of
 * a switchover's pause beyond Patroni's own steps. Costs Patroni's REST API a few OPTIONS requests a second.
 */
export const rwDowninterMs = (interMs: number) => Math.min(interMs, 250);

interface Addressing {
  memberHost(m: Member): string;
  etcdHost(m: Member): string;
  /** values that differ inside containers: listeners bind all interfaces on fixed ports */
  overrides: Record<string, string | number>;
  memberDir(m: Member): string;
  memberSocketDir(m: Member): string;
  etcdDataDir(m: Member): string;
  /** where etcd finds its certificate, key and the CA (mutual TLS on client and peer URLs) */
  etcdTls(m: Member): { ca: string; cert: string; key: string };
  /** where Patroni finds the CA and its etcd client certificate */
  patroniEtcdTls(m: Member): { ca: string; cert: string; key: string };
  nginxPrefix: string;
  nginxLogDir: string;
  nginxAppsDir: string;
  supabaseUpstream: string;
}

export function addressing(cfg: Config, kind: RuntimeKind): Addressing {
  if (kind === "docker") {
    // Inside compose every member is its own host, named after the member.
    return {
      memberHost: (m) => m.name,
      etcdHost: (m) => m.etcdName,
      // compose publishes these container ports on the host ports from the env file.
      overrides: {
        HAPROXY_ADDRESS: "0.0.0.0",
        HAPROXY_RW_PORT: 5000,
        HAPROXY_RO_PORT: 5001,
        HAPROXY_STATS_PORT: 7000,
        API_ADDRESS: "0.0.0.0",
        NGINX_HTTP_ADDRESS: "0.0.0.0",
        API_PORT: 8080,
        PG_HBA_CIDR: DOCKER_SUBNET,
      },
      memberDir: () => "/home/postgres",
      memberSocketDir: () => "/home/postgres/run",
      etcdDataDir: () => "/etcd-data",
      // compose/dev.yml mounts <rendered-docker>/tls/<file> at these paths.
      etcdTls: () => ({
        ca: "/etc/etcd/tls/ca.crt",
        cert: "/etc/etcd/tls/server.crt",
        key: "/etc/etcd/tls/server.key",
      }),
      patroniEtcdTls: () => ({
        ca: "/etc/patroni/tls/ca.crt",
        cert: "/etc/patroni/tls/client.crt",
        key: "/etc/patroni/tls/client.key",
      }),
      nginxPrefix: "/var/run/nginx-stack",
      nginxLogDir: "/var/run/nginx-stack",
      nginxAppsDir: "/etc/nginx/apps",
      // Kong runs only with DOCKER_SERVICES=all; without it nginx gets the native placeholder (it answers 502
      // on /) instead of a name no DNS resolves, which nginx refuses at start ("host not found in upstream").
      supabaseUpstream: cfg.docker.services === "all" ? "kong:8000" : "127.0.0.1:9",
    };
  }
  return {
    memberHost: (m) => m.address,
    etcdHost: (m) => m.address,
    overrides: {},
    memberDir: (m) => m.dir,
    memberSocketDir: (m) => m.socketDir,
    etcdDataDir: (m) => join(etcdHome(cfg), m.etcdName),
    etcdTls: (m) => {
      const t = etcdTlsFiles(nativeEtcdTlsDir(cfg));
      return { ca: t.ca, ...t.member(m) };
    },
    patroniEtcdTls: (m) => patroniEtcdTlsFiles(m),
    nginxPrefix: join(cfg.stateDir, "nginx"),
    nginxLogDir: cfg.logsDir,
    nginxAppsDir: join(cfg.stateDir, "nginx", "apps"),
    // Natively no gateway runs; nginx answers 502 on / (documented), /healthz and /cluster work.
    supabaseUpstream: `${cfg.api.address}:9`,
  };
}

/**
 * etcd's folder (natively): data dirs, configs and TLS files. It lives beside the
 * member dirs because that root is reachable by service users (the etcd user
 * runs etcd; the state dir may sit in a private checkout).
 */
export const etcdHome = (cfg: Config) => join(cfg.memberRoot, "etcd");
export const nativeEtcdTlsDir = (cfg: Config) => join(etcdHome(cfg), "tls");
/** The docker runtime's rendered files (compose.env, configs, etcd's TLS under tls/). */
export const dockerRenderedDir = (cfg: Pick<Config, "stateDir">) => join(cfg.stateDir, "rendered-docker");

/**
 * Where the toolkit's etcd client certificate is: the docker runtime's CA (compose publishes each etcd
 * member's client port on the member's address) or the native one; RUNTIME=auto takes the one that exists.
 */
export function etcdClientTlsDir(cfg: Config): string {
  const want = process.env.RUNTIME || cfg.runtime;
  const docker = join(dockerRenderedDir(cfg), "tls");
  if (want === "docker") return docker;
  const native = nativeEtcdTlsDir(cfg);
  return want === "auto" && !existsSync(join(native, "ca.crt")) && existsSync(join(docker, "ca.crt")) ? docker : native;
}
/** Patroni's copies of the CA and the etcd client pair, in its member dir (the postgres user's, 0600 key). */
export const patroniEtcdTlsFiles = (m: Member) => ({
  ca: join(m.dir, "etcd-ca.crt"),
  cert: join(m.dir, "etcd-client.crt"),
  key: join(m.dir, "etcd-client.key"),
});

/**
 * Where the stack's plain-HTTP nginx listens: API_ADDRESS when it is a loopback
 * address, else 127.0.0.1. It serves the cluster topology without a password,
 * and on a customer's server API_ADDRESS is the public one the TLS sites use.
 */
export const stackHttpAddress = (cfg: { api: { address: string } }) =>
  /^127\./.test(cfg.api.address) ? cfg.api.address : "127.0.0.1";

export function commonVars(cfg: Config) {
  const t = cfg.timing;
  return {
    CLUSTER_NAME: cfg.clusterName,
    NAMESPACE: cfg.namespace,
    STACK: cfg.stack,
    PATRONI_TTL: t.ttl,
    PATRONI_LOOP_WAIT: t.loopWait,
    PATRONI_RETRY_TIMEOUT: t.retryTimeout,
    PATRONI_MAX_LAG_ON_FAILOVER: t.maximumLagOnFailover,
    SYNCHRONOUS_MODE: t.synchronousMode,
    FAILSAFE_MODE: t.failsafeMode,
    PG_HBA_CIDR: cfg.pgHbaCidr,
    PG_BIN_DIR: cfg.pgBinDir,
    PG_SHARED_BUFFERS: cfg.sharedBuffers,
    HAPROXY_ADDRESS: cfg.haproxy.address,
    HAPROXY_RW_PORT: cfg.haproxy.rwPort,
    HAPROXY_RO_PORT: cfg.haproxy.roPort,
    HAPROXY_STATS_PORT: cfg.haproxy.statsPort,
    HAPROXY_CHECK_INTER_MS: cfg.haproxy.interMs,
    HAPROXY_RW_DOWNINTER_MS: rwDowninterMs(cfg.haproxy.interMs),
    HAPROXY_CHECK_FALL: cfg.haproxy.fall,
    HAPROXY_CHECK_RISE: cfg.haproxy.rise,
    API_ADDRESS: cfg.api.address,
    NGINX_HTTP_ADDRESS: stackHttpAddress(cfg),
    API_PORT: cfg.api.port,
    ...cfg.secrets,
  };
}

export function renderStack(cfg: Config, kind: RuntimeKind): RenderedFile[] {
  const a = addressing(cfg, kind);
  const common = { ...commonVars(cfg), ...a.overrides };
  const tmpl = (rel: string) => readTemplate(cfg.rootDir, rel);
  const files: RenderedFile[] = [];
  const etcdHosts = cfg.members.map((m) => `${a.etcdHost(m)}:${m.etcdClientPort}`).join(",");
  const initialCluster = cfg.members.map((m) => `${m.etcdName}=https://${a.etcdHost(m)}:${m.etcdPeerPort}`).join(",");

  const patroniT = tmpl("patroni/patroni.yml.tmpl");
  const etcdT = tmpl("etcd/etcd.yml.tmpl");
  for (const m of cfg.members) {
    const host = a.memberHost(m);
    const dir = a.memberDir(m);
    const vars = {
      ...common,
      MEMBER_NAME: m.name,
      MEMBER_ADDRESS: host,
      PG_PORT: m.pgPort,
      PATRONI_PORT: m.restPort,
      MEMBER_DIR: dir,
      MEMBER_DATA_DIR: join(dir, "data"),
      MEMBER_SOCKET_DIR: a.memberSocketDir(m),
      ETCD_HOSTS: etcdHosts,
      ETCD_CA_FILE: a.patroniEtcdTls(m).ca,
      ETCD_CLIENT_CERT: a.patroniEtcdTls(m).cert,
      ETCD_CLIENT_KEY: a.patroniEtcdTls(m).key,
    };
    files.push({
      path: `${m.name}/patroni.yml`,
      content: renderTemplate(patroniT, vars, "patroni/patroni.yml.tmpl"),
      secret: true,
      member: m.name,
    });
    files.push({
      path: `etcd/${m.etcdName}.yml`,
      content: renderTemplate(
        etcdT,
        {
          ...common,
          ETCD_NAME: m.etcdName,
          ETCD_DATA_DIR: a.etcdDataDir(m),
          MEMBER_ADDRESS: a.etcdHost(m),
          ETCD_LISTEN_ADDRESS: kind === "docker" ? "0.0.0.0" : a.etcdHost(m),
          ETCD_CLIENT_PORT: m.etcdClientPort,
          ETCD_PEER_PORT: m.etcdPeerPort,
          ETCD_INITIAL_CLUSTER: initialCluster,
          ETCD_CA_FILE: a.etcdTls(m).ca,
          ETCD_CERT_FILE: a.etcdTls(m).cert,
          ETCD_KEY_FILE: a.etcdTls(m).key,
        },
        "etcd/etcd.yml.tmpl",
      ),
      secret: false,
    });
  }

  const servers = cfg.members
    .map((m) => `    server ${m.name} ${a.memberHost(m)}:${m.pgPort} check port ${m.restPort}`)
    .join("\n");
  // Natively HAProxy is started by root (it reads its 0600 config) and drops to Debian's `haproxy`
  // user at once; the haproxy image already runs as that user, where setuid would fail.
  const runAs =
    kind === "native" && cfg.pgOsUser
      ? "    user haproxy\n    group haproxy"
      : "    # runs as the image's haproxy user";
  // pgbouncer's server connections (natively on the same box) come in on a Unix socket, handled by one
  // HAProxy thread: they come from one single-threaded process, and spreading them over threads only adds
  // cross-thread wake-ups. Measured with pgbench -S -c 100 through the pooler (README, pooling figures):
  // HAProxy's CPU per transaction 12 % lower than on loopback TCP over both threads; pooled/direct TPS
  // 0.85-0.89x before, 0.90-0.96x after.
  const poolBind =
    kind === "native"
      ? `    bind unix@${join(haproxySocketDir(cfg.runtimeDir), `.s.PGSQL.${cfg.haproxy.rwPort}`)} mode 600${cfg.pgOsUser ? ` user ${cfg.pgOsUser}` : ""} thread 1`
      : "    # pgbouncer's container reaches the port above over the compose network";
  files.push({
    path: "haproxy/haproxy.cfg",
    content: renderTemplate(
      tmpl("haproxy/haproxy.cfg.tmpl"),
      { ...common, HAPROXY_SERVERS: servers, HAPROXY_RUN_AS: runAs, HAPROXY_POOL_BIND: poolBind },
      "haproxy/haproxy.cfg.tmpl",
    ),
    secret: true,
  });

  const nginxServers = cfg.members
    .map((m) => `        server ${a.memberHost(m)}:${m.restPort} max_fails=1 fail_timeout=2s;`)
    .join("\n");
  files.push({
    path: "nginx/nginx.conf",
    content: renderTemplate(
      tmpl("nginx/nginx.conf.tmpl"),
      {
        ...common,
        NGINX_PREFIX: a.nginxPrefix,
        NGINX_LOG_DIR: a.nginxLogDir,
        NGINX_APPS_DIR: a.nginxAppsDir,
        NGINX_PATRONI_SERVERS: nginxServers,
        SUPABASE_UPSTREAM: a.supabaseUpstream,
      },
      "nginx/nginx.conf.tmpl",
    ),
    secret: false,
  });
  return files;
}
