/**
 * What upstream's images require, per service, read from upstream's sources at
 * the tags our compose files pin (git objects of the tags, never copied here).
 * tests/unit/compose-contract.test.ts checks the rendered compose files against
 * these facts. Commits are the tags' commits:
 *   supabase/auth        v2.164.0 a6164519c2f8  (dev.yml gotrue)     v2.186.0 effd66245bd9 (client files)
 *   PostgREST/postgrest  v12.2.3  519615d5fbe3  (dev.yml)            v14.5    d89826b98280 (client files)
 *   supabase/storage     v1.11.13 c8f93e5164ba  (dev.yml)
 *   supabase/realtime    v2.33.58 0ab484e01e3c  (dev.yml)
 *   supabase/postgres-meta v0.84.2 d70abe938c12 (dev.yml)            v0.95.2  a56f296b79a4 (client files)
 *   Kong/kong            2.8.1    05b7a4a01600
 *   supabase/supabase    00069a4c6fe3 docker/docker-compose.yml (pins the client files' images);
 *                        089440fa9ea5 docker/volumes/api/kong.yml; 123dc6bf0007 apps/studio/lib/api/self-hosted/constants.ts
 */

/** Environment variables a service cannot start (or work) without; alternatives in one inner list. */
export const REQUIRED_ENV: Record<string, { vars: string[][]; source: string }> = {
  // internal/conf/configuration.go@a6164519c2f8 l.85-86 DB Driver/URL required, l.104 JWT Secret required,
  // l.152 API_EXTERNAL_URL required, l.261 SITE_URL required (envconfig prefix GOTRUE, unprefixed alias for envconfig tags).
  auth: {
    vars: [
      ["GOTRUE_DB_DRIVER"],
      ["GOTRUE_DB_DATABASE_URL", "DATABASE_URL"],
      ["GOTRUE_JWT_SECRET"],
      ["API_EXTERNAL_URL"],
      ["GOTRUE_SITE_URL"],
    ],
    source: "supabase/auth internal/conf/configuration.go",
  },
  // src/PostgREST/Config.hs@519615d5fbe3: db-uri defaults to "postgresql://" (no host: a unix socket that is not there),
  // db-anon-role unset = every anonymous request refused, jwt-secret needed to verify the API keys.
  rest: {
    vars: [["PGRST_DB_URI"], ["PGRST_DB_ANON_ROLE"], ["PGRST_JWT_SECRET"], ["PGRST_DB_SCHEMAS"]],
    source: "PostgREST src/PostgREST/Config.hs",
  },
  // src/config.ts@c8f93e5164ba l.302 databaseURL, l.217 jwtSecret (AUTH_JWT_SECRET or PGRST_JWT_SECRET), l.213-214 keys,
  // l.262-267 backend type and file path, l.180 TENANT_ID (single-tenant).
  storage: {
    vars: [
      ["DATABASE_URL"],
      ["AUTH_JWT_SECRET", "PGRST_JWT_SECRET"],
      ["ANON_KEY"],
      ["SERVICE_KEY"],
      ["STORAGE_BACKEND"],
      ["FILE_STORAGE_BACKEND_PATH"],
      ["TENANT_ID"],
      ["POSTGREST_URL"],
    ],
    source: "supabase/storage src/config.ts",
  },
  // config/runtime.exs@0ab484e01e3c l.55 SECRET_KEY_BASE raise, l.62 APP_NAME raise, l.94 API_JWT_SECRET, l.98 DB_ENC_KEY;
  // DB_* default to supabase_admin@127.0.0.1/postgres, none of which exists here.
  realtime: {
    vars: [
      ["DB_HOST"],
      ["DB_PORT"],
      ["DB_USER"],
      ["DB_PASSWORD"],
      ["DB_NAME"],
      ["DB_AFTER_CONNECT_QUERY"],
      ["DB_ENC_KEY"],
      ["API_JWT_SECRET"],
      ["SECRET_KEY_BASE"],
      ["APP_NAME"],
      ["SEED_SELF_HOST"],
    ],
    source: "supabase/realtime config/runtime.exs",
  },
  // src/server/constants.ts@d70abe938c12 l.7-20: PG_META_PORT default 1337, DB defaults localhost/postgres/postgres;
  // CRYPTO_KEY default 'SAMPLE_KEY' decrypts Studio's x-connection-encrypted header (routes/index.ts).
  meta: {
    vars: [
      ["PG_META_PORT"],
      ["PG_META_DB_HOST"],
      ["PG_META_DB_PORT"],
      ["PG_META_DB_NAME"],
      ["PG_META_DB_USER"],
      ["PG_META_DB_PASSWORD"],
      ["CRYPTO_KEY"],
    ],
    source: "supabase/postgres-meta src/server/constants.ts",
  },
  // apps/studio/lib/api/self-hosted/constants.ts@123dc6bf0007: PG_META_CRYPTO_KEY, POSTGRES_PORT (5432), POSTGRES_HOST ('db'),
  // POSTGRES_DB ('postgres'), POSTGRES_USER_READ_WRITE ('supabase_admin'): the connection it encrypts and sends to meta.
  studio: {
    vars: [
      ["STUDIO_PG_META_URL"],
      ["PG_META_CRYPTO_KEY"],
      ["POSTGRES_HOST"],
      ["POSTGRES_PORT"],
      ["POSTGRES_DB"],
      ["POSTGRES_PASSWORD"],
      ["POSTGRES_USER_READ_WRITE"],
      ["SUPABASE_URL"],
      ["SUPABASE_ANON_KEY"],
      ["SUPABASE_SERVICE_KEY"],
      ["AUTH_JWT_SECRET"],
    ],
    source: "supabase/supabase apps/studio/lib/api/self-hosted/constants.ts, docker/docker-compose.yml",
  },
  // supabase/supabase docker/docker-compose.yml@00069a4c6fe3 kong service (DB-less, declarative config from the environment).
  kong: {
    vars: [
      ["KONG_DATABASE"],
      ["KONG_DECLARATIVE_CONFIG"],
      ["KONG_PLUGINS"],
      ["SUPABASE_ANON_KEY"],
      ["SUPABASE_SERVICE_KEY"],
      ["DASHBOARD_USERNAME"],
      ["DASHBOARD_PASSWORD"],
    ],
    source: "supabase/supabase docker/docker-compose.yml",
  },
};

/** The port each service listens on inside the network (what Kong's upstream URLs must name). */
export const SERVICE_PORTS: Record<string, { port: number; source: string }> = {
  auth: { port: 9999, source: "compose GOTRUE_API_PORT (configuration.go@a6164519c2f8 l.149 default 8081 otherwise)" },
  rest: { port: 3000, source: "PostgREST Config.hs server-port default 3000" },
  storage: { port: 5000, source: "supabase/storage Dockerfile EXPOSE 5000 (server PORT default 5000)" },
  realtime: { port: 4000, source: "compose PORT (runtime.exs@0ab484e01e3c http port)" },
  meta: { port: 8080, source: "compose PG_META_PORT (constants.ts default 1337 otherwise)" },
  studio: {
    port: 3000,
    source: "supabase/supabase docker/volumes/api/kong.yml@089440fa9ea5 dashboard url http://studio:3000/",
  },
};

/** Kong's routes (supabase/supabase docker/volumes/api/kong.yml@089440fa9ea5): path -> service. */
export const KONG_ROUTES: Record<string, string> = {
  "/auth/v1/": "auth",
  "/rest/v1/": "rest",
  "/realtime/v1/": "realtime",
  "/storage/v1/": "storage",
  "/pg/": "meta",
  "/": "studio",
};

/** Kong 2.8.1 kong/db/schema/others/declarative_config.lua@05b7a4a01600 l.223: _format_version { type = "string", one_of = {"1.1","2.1"} }. */
export const KONG_FORMAT_VERSIONS = ["1.1", "2.1"];
/** The entrypoint upstream runs Kong with (docker/docker-compose.yml@00069a4c6fe3): a shell `eval echo` over the file. */
export const KONG_ENTRYPOINT = `bash -c 'eval "echo \\"$$(cat ~/temp.yml)\\"" > ~/kong.yml && /docker-entrypoint.sh kong docker-start'`;

/** Realtime (v2.33.58): the tenant seeded by SEED_SELF_HOST, and how a request names its tenant. */
export const REALTIME = {
  // priv/repo/seeds.exs@0ab484e01e3c l.5: tenant_name = "realtime-dev".
  seededTenant: "realtime-dev",
  // lib/realtime/database.ex@0ab484e01e3c l.201 get_external_id: the Host header's first label is the tenant.
  tenantOf: (host: string) => host.split(".")[0]!,
  // Dockerfile@0ab484e01e3c l.74: ENV ERL_AFLAGS "-proto_dist inet6_tcp" (IPv6 distribution); compose networks here are IPv4.
  imageErlAflags: "-proto_dist inet6_tcp",
  ipv4ErlAflags: "-proto_dist inet_tcp",
};

/** GoTrue's mailer links: configuration.go@a6164519c2f8 l.919 defaults each URL path to "/verify", relative to API_EXTERNAL_URL. */
export const GOTRUE_MAILER_PATHS = ["INVITE", "CONFIRMATION", "RECOVERY", "EMAIL_CHANGE"].map(
  (k) => `GOTRUE_MAILER_URLPATHS_${k}`,
);
/**
 * How GoTrue builds a mail link: internal/mailer/template.go@a6164519c2f8 (InviteMail, ConfirmationMail, ...)
 * `externalURL.ResolveReference(path)` with API_EXTERNAL_URL and the URL path: an absolute path replaces
 * the base URL's path (RFC 3986 5.2, the same resolution as WHATWG `new URL(path, base)` for these inputs).
 */
export const gotrueMailLink = (apiExternalUrl: string, urlPath: string) => new URL(urlPath, apiExternalUrl).href;
/** Behind the gateway GoTrue lives under /auth/v1 (supabase/supabase docker/.env.example: MAILER_URLPATHS_*="/auth/v1/verify"). */
export const GOTRUE_VERIFY_PATH = "/auth/v1/verify";
/** configuration.go@a6164519c2f8 SMTPConfiguration (GOTRUE_SMTP_*): without a host no mail goes out. */
export const GOTRUE_SMTP = [
  "GOTRUE_SMTP_HOST",
  "GOTRUE_SMTP_PORT",
  "GOTRUE_SMTP_USER",
  "GOTRUE_SMTP_PASS",
  "GOTRUE_SMTP_ADMIN_EMAIL",
  "GOTRUE_SMTP_SENDER_NAME",
];

/**
 * Who each image runs as and which directories it creates (a named volume mounted on a path the
 * image does not have is created root-owned, empty).
 */
export const IMAGE_FS: Record<string, { user: string; source: string }> = {
  // quay.io/coreos/etcd v3.4: distroless-free image running as root.
  etcd: { user: "root", source: "etcd-io/etcd Dockerfile-release (no USER)" },
  // supabase/storage Dockerfile@c8f93e5164ba: node:20-alpine, no USER: root.
  storage: { user: "root", source: "supabase/storage Dockerfile (no USER)" },
  // compose/patroni/Dockerfile: USER postgres; initdb refuses a data dir it cannot own.
  patroni: { user: "postgres", source: "compose/patroni/Dockerfile USER postgres" },
};

/** nginx (src/core/ngx_file.c ngx_create_paths): a *_temp_path is created with one mkdir(), never its parents. */
export const NGINX_CREATES_ONE_LEVEL = true;

/** compose v1 (docker-compose 1.29, Debian 12) knows these depends_on conditions; `up --wait` is v2.1+ only. */
export const COMPOSE_V1_CONDITIONS = ["service_started", "service_healthy"];

/** Services that log in to the database (a DB URL or DB_* settings): they must start after the databases and roles exist. */
export const DATABASE_CLIENTS = ["auth", "rest", "realtime", "storage", "meta"];

/** Health endpoints (supabase/supabase docker/docker-compose.yml@00069a4c6fe3 healthchecks; Patroni 3.0.2 REST API /health). */
export const HEALTH_URLS: Record<string, string> = {
  auth: ":9999/health",
  storage: ":5000/status",
  pg1: "pg1:8008/health",
  nginx: ":8080/healthz",
};

/**
 * Grafana's image (grafana/grafana; stored versions read: Dockerfile@0014fb640202, packaging/docker/run.sh@07754534fbaf,
 * conf/provisioning/{datasources,dashboards}/sample.yaml@01c834234982/@06aca5e8b5f3):
 *   Dockerfile: ENV GF_PATHS_PROVISIONING="/etc/grafana/provisioning", ARG GF_UID="472", EXPOSE 3000; run.sh passes
 *   cfg:default.paths.provisioning="$GF_PATHS_PROVISIONING" to grafana server, which reads <provisioning>/datasources
 *   and <provisioning>/dashboards (the sample files' folders, each `apiVersion: 1`; a dashboards provider of
 *   `type: file` loads `options.path`).
 *   run.sh: every GF_<NAME>__FILE=<path> becomes GF_<NAME>=$(cat <path>); with both GF_<NAME> and GF_<NAME>__FILE set
 *   it exits ("Both ... are set (but are exclusive)").
 */
export const GRAFANA = {
  provisioningPath: "/etc/grafana/provisioning",
  provisioningDirs: ["datasources", "dashboards"],
  fileSuffix: "__FILE",
  uid: 472,
  port: 3000,
  /** run.sh's __FILE conversion, as a function of the environment and a file reader */
  expandFileVars(env: Record<string, string>, read: (path: string) => string): Record<string, string> {
    const out = { ...env };
    for (const k of Object.keys(env).filter((n) => /^GF_[^=]+__FILE$/.test(n) && env[n])) {
      const name = k.slice(0, -"__FILE".length);
      if (env[name]) throw new Error(`ERROR: Both ${name} and ${k} are set (but are exclusive)`);
      out[name] = read(env[k]!);
      delete out[k];
    }
    return out;
  },
};
/** prom/prometheus and prom/alertmanager (Dockerfiles): USER nobody; Prometheus's default listen address :9090. */
export const PROM_IMAGES = { user: 65534, prometheusPort: 9090, alertmanagerPort: 9093 };
/**
 * prometheus-community/postgres_exporter (stored versions read: cmd/postgres_exporter/datasource.go@1b1eb48d551b
 * getDataSources: DATA_SOURCE_URI + DATA_SOURCE_USER + DATA_SOURCE_PASS_FILE (the file's content, trimmed) make
 * postgresql://user:pass@uri; Dockerfile@0421dd126a70: EXPOSE 9187, USER nobody).
 */
export const POSTGRES_EXPORTER = {
  port: 9187,
  user: 65534,
  /** getDataSources: "postgresql://" + url.UserPassword(user, pass).String() + "@" + DATA_SOURCE_URI */
  dsn: (env: Record<string, string>, readPass: (path: string) => string) =>
    `postgresql://${encodeURIComponent(env.DATA_SOURCE_USER!)}:${encodeURIComponent(readPass(env.DATA_SOURCE_PASS_FILE!).trim())}@${env.DATA_SOURCE_URI}`,
};
