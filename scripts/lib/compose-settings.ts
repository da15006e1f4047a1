/**
 * The docker runtime's settings (envs/<stack>.env): image overrides and the
 * Supabase auth service's site URL and SMTP. They reach compose/dev.yml as
 * variables of the compose env file (scripts/lib/docker.ts composeEnv).
 *
 * Images: every `image:` in compose/*.yml reads `${IMAGE_<NAME>:-<pinned upstream image>}`, so
 * the pinned default stays visible in the file a customer runs by hand, and a stack points at
 * locally built images (e.g. `make images-local`) by setting IMAGE_<NAME> in its env file.
 */
import { createHmac } from "node:crypto";
import type { Config } from "./config";
import type { EnvValues } from "./settings/env";
import { registerSecret } from "./redact";
import { stackHttpAddress } from "./stack-files";

/** The image variables the compose files read, in the order they appear. */
export const IMAGE_KEYS = [
  "IMAGE_ETCD",
  "IMAGE_PATRONI",
  "IMAGE_HAPROXY",
  "IMAGE_GOTRUE",
  "IMAGE_POSTGREST",
  "IMAGE_REALTIME",
  "IMAGE_STORAGE",
  "IMAGE_POSTGRES_META",
  "IMAGE_STUDIO",
  "IMAGE_KONG",
  "IMAGE_NGINX",
  "IMAGE_CLOUDFLARED",
  "IMAGE_PGBOUNCER",
  // MONITORING=true (scripts/lib/monitoring/compose.ts)
  "IMAGE_PROMETHEUS",
  "IMAGE_ALERTMANAGER",
  "IMAGE_GRAFANA",
  "IMAGE_POSTGRES_EXPORTER",
] as const;
export type ImageKey = (typeof IMAGE_KEYS)[number];

export { IMAGE_RE } from "./settings/rules";

export interface DockerSettings {
  /** only the images the env file sets (empty keys keep the compose file's pinned default) */
  images: Partial<Record<ImageKey, string>>;
  /** GoTrue's GOTRUE_SITE_URL: where its e-mail links send users back to (the main app) */
  siteUrl: string;
  smtp: { host: string; port: number; user: string; adminEmail: string; senderName: string };
  /** DOCKER_SERVICES: which stages compose-up.ts runs (cluster: no Supabase services, Kong or nginx; cluster+nginx: nginx too) */
  services: "all" | "cluster" | "cluster+nginx";
  /** DOCKER_PUBLISH_MEMBERS resolved: compose/dev-members.yml is added (make status, backup, restore need it) */
  publishMembers: boolean;
}

/** Built from the validated values of the SUPABASE_SITE_URL / SMTP_* / IMAGE_* block in config.ts. */
export function dockerSettings(v: EnvValues): DockerSettings {
  const images: Partial<Record<ImageKey, string>> = {};
  for (const k of IMAGE_KEYS) if (v[k]) images[k] = v[k];
  return {
    images,
    siteUrl: v.SUPABASE_SITE_URL,
    services: v.DOCKER_SERVICES,
    // macOS has only 127.0.0.1 on lo0 until aliased: publishing on 127.0.0.11 would fail every `up`
    publishMembers:
      v.DOCKER_PUBLISH_MEMBERS === "auto" ? process.platform !== "darwin" : v.DOCKER_PUBLISH_MEMBERS === "true",
    smtp: {
      host: v.SMTP_HOST,
      port: v.SMTP_PORT,
      user: v.SMTP_USER,
      adminEmail: v.SMTP_ADMIN_EMAIL,
      senderName: v.SMTP_SENDER_NAME,
    },
  };
}

/**
 * The compose variables these settings give. Without an SMTP host GoTrue cannot send mail, so
 * sign-ups are confirmed at once (MAILER_AUTOCONFIRM); with one, users confirm by e-mail.
 * SMTP_PASS is a secret: it comes from the stack's secrets file (envs/.secrets.<stack>.env) when set there.
 */
export function dockerSettingsEnv(cfg: Config): Record<string, string> {
  const d = cfg.docker;
  // Realtime's Phoenix SECRET_KEY_BASE (64+ bytes): derived from the superuser's password, so no second secret to keep.
  const keyBase = createHmac("sha512", cfg.secrets.POSTGRES_PASSWORD ?? "")
    .update("realtime SECRET_KEY_BASE")
    .digest("hex");
  registerSecret(keyBase);
  return {
    // where compose publishes HAProxy and nginx: the stack's addresses, as natively (nginx: loopback only)
    HAPROXY_ADDRESS: cfg.haproxy.address,
    // each member's Postgres, Patroni REST and etcd client port, published on its own address
    ...Object.fromEntries(cfg.members.map((m, i) => [`MEMBER${i + 1}_ADDRESS`, m.address])),
    PG_PORT: String(cfg.members[0]!.pgPort),
    PATRONI_PORT: String(cfg.members[0]!.restPort),
    ETCD_CLIENT_PORT: String(cfg.members[0]!.etcdClientPort),
    API_HTTP_ADDRESS: stackHttpAddress(cfg),
    REALTIME_SECRET_KEY_BASE: keyBase,
    ...d.images,
    SITE_URL: d.siteUrl,
    SMTP_HOST: d.smtp.host,
    SMTP_PORT: String(d.smtp.port),
    SMTP_USER: d.smtp.user,
    SMTP_PASS: (cfg.secrets as Record<string, string | undefined>).SMTP_PASS ?? "",
    SMTP_ADMIN_EMAIL: d.smtp.adminEmail,
    SMTP_SENDER_NAME: d.smtp.senderName,
    MAILER_AUTOCONFIRM: d.smtp.host ? "false" : "true",
  };
}
