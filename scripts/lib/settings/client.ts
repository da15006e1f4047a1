/**
 * Every key clients/<name>/client.env may hold, declared once: its rule, its
 * hint, and a default where one is sensible. clients/README.md is this table
 * (a unit test keeps the two equal).
 */
import { z } from "zod";
import { defineSettings, keyedPorts, portClash, setting, type Problem, type Values } from "./engine";
import {
  bool,
  CLIENT_NAME_RE,
  dnsName,
  ipv4,
  memberAddresses,
  oneOf,
  port,
  SSH_DEST_RE,
  tunnelId,
  whole,
} from "./rules";

const KEYS = {
  CLIENT_NAME: setting(
    z.string().regex(CLIENT_NAME_RE, "must be 2-21 lowercase letters/digits, starting with a letter"),
    "e.g. CLIENT_NAME=acme",
  ),
  HOST: setting(
    z.string().regex(new RegExp(`^local$|${SSH_DEST_RE.source}`), "must be local or [user@]host"),
    "ssh destination, e.g. HOST=ops@acme-server, or HOST=local",
  ),
  SSH_PORT: setting(port(), "e.g. 22", "22"),
  SSH_IDENTITY: setting(z.string(), "private key file; empty: ssh's default", ""),
  SSH_KNOWN_HOSTS: setting(
    z.string(),
    "the client's pinned host keys; empty: clients/<name>/known_hosts (first contact: TRUST_NEW_HOST=1)",
    "",
  ),
  DOMAIN: setting(dnsName("acme.internal"), "the customer's domain, e.g. DOMAIN=acme.internal"),
  ACCESS: setting(oneOf(["internal", "public"]), "internal: private CA; public: Let's Encrypt (certbot webroot)"),
  ADMIN_EMAIL: setting(
    z.string().regex(/^$|^[^@\s]+@[^@\s]+$/, "must be an e-mail address"),
    "Let's Encrypt account e-mail (ACCESS=public)",
    "",
  ),
  PROFILE: setting(
    z.enum(["16", "32", "64"], { message: "must be 16, 32 or 64 (GB)" }),
    "size profile; detected from the target's memory when first created",
  ),
  REMOTE_DIR: setting(
    z.string().regex(/^\/[A-Za-z0-9._/-]+$/, "must be an absolute path"),
    "where releases live on the target, e.g. /opt/pgplatform/acme",
  ),
  KEEP_RELEASES: setting(
    whole(2, { max: 50, minMessage: "must keep at least 2 (one to roll back to)" }),
    "e.g. 5",
    "5",
  ),
  MEMBER_ADDRESSES: setting(
    memberAddresses(),
    "three member addresses on the target, e.g. 127.0.0.11,127.0.0.12,127.0.0.13",
  ),
  HAPROXY_ADDRESS: setting(ipv4(), "where HAProxy listens on the target"),
  HAPROXY_RW_PORT: setting(port(), "read-write Postgres port", "9012"),
  HAPROXY_RO_PORT: setting(port(), "read-only Postgres port", "9013"),
  HAPROXY_STATS_PORT: setting(port(), "HAProxy stats", "9014"),
  API_ADDRESS: setting(ipv4(), "where the stack's nginx (and the environments' TLS entries) listen"),
  API_PORT: setting(port(), "Supabase API port (seeds: 9010)", "9010"),
  PORT_DEV: setting(port(), "dev environment (seeds: 6100)", "6100"),
  PORT_STAGING: setting(port(), "staging environment (seeds: 7100)", "7100"),
  PORT_PRODUCTION: setting(port(), "production environment (seeds: 9000)", "9000"),
  PG_SHARED_BUFFERS: setting(
    z.string().regex(/^$|^\d+(kB|MB|GB)$/, "must be a size like 1GB"),
    "empty: from the size profile",
    "",
  ),
  RUNTIME: setting(
    oneOf(["auto", "native", "docker"]),
    "auto: native where the target has its packages, else docker when an engine answers there",
    "auto",
  ),
  // Inside the firewall is the customer's promise: a tunnel or a tailnet only with ALLOW_REMOTE_ACCESS=true.
  TUNNEL: setting(oneOf(["cloudflare", "none"]), "customer servers: none", "none"),
  TAILNET: setting(oneOf(["tailscale", "none"]), "customer servers: none", "none"),
  ALLOW_REMOTE_ACCESS: setting(bool(), "true only when the customer agreed in writing to a tunnel or tailnet", "false"),
  CLOUDFLARE_TUNNEL_ID: setting(tunnelId(), "with TUNNEL=cloudflare: from `cloudflared tunnel create <name>`", ""),
};

export type ClientKey = keyof typeof KEYS;
export type ClientValues = Values<typeof KEYS>;

const RULES: ((v: ClientValues) => Problem | undefined)[] = [
  (v) => {
    if (v.ALLOW_REMOTE_ACCESS) return undefined;
    const key = v.TUNNEL !== "none" ? "TUNNEL" : v.TAILNET !== "none" ? "TAILNET" : undefined;
    if (!key) return undefined;
    return {
      key,
      message: `customer servers stay inside their firewall (got ${JSON.stringify(v[key])})`,
      fix: `set ${key}=none, or ALLOW_REMOTE_ACCESS=true if the customer agreed in writing`,
    };
  },
  (v) =>
    v.TUNNEL === "cloudflare" && !v.CLOUDFLARE_TUNNEL_ID
      ? {
          key: "CLOUDFLARE_TUNNEL_ID",
          message: "is required with TUNNEL=cloudflare",
          fix: "create the tunnel with `cloudflared tunnel create <name>` and set its UUID here",
        }
      : undefined,
  (v) =>
    v.ACCESS === "public" && !v.ADMIN_EMAIL
      ? {
          key: "ADMIN_EMAIL",
          message: "is required with ACCESS=public",
          fix: "Let's Encrypt needs an account e-mail: ADMIN_EMAIL=ops@acme.com",
        }
      : undefined,
  // Every listener on the API address needs its own port.
  (v) =>
    portClash(
      keyedPorts(v, ["API_PORT", "PORT_DEV", "PORT_STAGING", "PORT_PRODUCTION"]),
      "give each environment its own port",
    ),
];

export const CLIENT_SETTINGS = defineSettings({
  code: "BAD_CLIENT_CONFIG",
  doc: "clients/README.md",
  keys: KEYS,
  rules: RULES,
});
