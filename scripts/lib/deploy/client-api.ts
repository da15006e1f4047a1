/**
 * A client environment's Supabase API routes (nginx/client-site.conf.tmpl's
 * ${SUPABASE_LOCATIONS}). Staging and production run PostgREST and GoTrue from
 * compose/client-<env>.yml on loopback (REST_PORT, AUTH_PORT of the env file):
 * /rest/v1/ and /auth/v1/ go there, the prefix stripped as Kong does. What an
 * environment does not run (Realtime and Storage everywhere; everything in dev,
 * which runs no compose services) answers 503 with a reason. Before, all four
 * went to the stack's own nginx, whose gateway is natively a placeholder (502).
 */
import type { ClientSettings, EnvName } from "./settings";

/** An environment's ports, from its base port in client.env (the port plan: app +1, PostgREST +10, GoTrue +11, ...). */
export const envPorts = (s: ClientSettings, env: EnvName) => {
  const p = s.ports[env];
  return {
    APP_PORT: p + 1,
    REST_PORT: p + 10,
    AUTH_PORT: p + 11,
    META_PORT: p + 12,
    STUDIO_PORT: p + 13,
    GRAFANA_PORT: p + 20,
    OLLAMA_PORT: p + 30,
  };
};

const proxy = (path: string, upstream: string) => [
  `    location ${path} {`,
  `        proxy_pass http://${upstream}/;`,
  "        proxy_http_version 1.1;",
  "        proxy_set_header Host $host;",
  "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
  "        proxy_set_header X-Forwarded-Proto https;",
  "    }",
];

const unavailable = (services: string[], why: string) => [
  `    location ~ ^/(${services.join("|")})/v1/ {`,
  "        default_type application/json;",
  `        return 503 '{"error":"${why}"}';`,
  "    }",
];

/** The location blocks, indented for the server block. */
export function clientApiLocations(s: ClientSettings, env: EnvName): string {
  if (env === "dev")
    return unavailable(
      ["rest", "auth", "realtime", "storage"],
      "the dev environment runs no Supabase services (staging and production do)",
    )
      .join("\n")
      .trimStart();
  const p = envPorts(s, env);
  return [
    ...proxy("/rest/v1/", `127.0.0.1:${p.REST_PORT}`),
    "",
    ...proxy("/auth/v1/", `127.0.0.1:${p.AUTH_PORT}`),
    "",
    ...unavailable(
      ["realtime", "storage"],
      "not deployed for client environments (compose/client-*.yml runs auth, rest, meta and studio)",
    ),
  ]
    .join("\n")
    .trimStart();
}
