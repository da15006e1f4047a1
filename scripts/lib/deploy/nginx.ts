/**
 * nginx per environment: one TLS server per environment rendered from
 * nginx/client-site.conf.tmpl (plus, for ACCESS=public, the port-80 ACME
 * webroot server). Natively the files are included by the client stack's own
 * nginx (its apps/ include dir). Every rendered file is checked with the real
 * `nginx -t` inside a minimal wrapper main config with writable temp paths.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { readTemplate, renderTemplate } from "../render";
import { ENVIRONMENTS, databaseFor, type ClientSettings, type EnvName } from "./settings";
import { allHostnames, hostnameFor } from "./tls";
import { clientApiLocations } from "./client-api";

export interface SiteFile {
  /** file name inside the nginx include dir */
  name: string;
  env?: EnvName;
  content: string;
}

export interface SitePaths {
  tlsCert: string;
  tlsKey: string;
  /** ACCESS=public: where certbot drops challenge files */
  webroot: string;
}

/** The app of an environment listens on loopback at its TLS port + 1 (6101, 7101, 9001). */
export const appUpstream = (s: ClientSettings, env: EnvName) => `127.0.0.1:${s.ports[env] + 1}`;

export function renderSites(rootDir: string, s: ClientSettings, paths: SitePaths): SiteFile[] {
  const tmpl = readTemplate(rootDir, "nginx/client-site.conf.tmpl");
  const files: SiteFile[] = ENVIRONMENTS.map((env) => ({
    name: `client-${s.name}-${env}.conf`,
    env,
    content: renderTemplate(
      tmpl,
      {
        CLIENT: s.name,
        ENVIRONMENT: env,
        SERVER_NAME: hostnameFor(s.domain, env),
        LISTEN_ADDRESS: s.api.address,
        LISTEN_PORT: s.ports[env],
        TLS_CERT: paths.tlsCert,
        TLS_KEY: paths.tlsKey,
        DATABASE: databaseFor(env),
        APP_UPSTREAM: appUpstream(s, env),
        SUPABASE_LOCATIONS: clientApiLocations(s, env),
      },
      "nginx/client-site.conf.tmpl",
    ),
  }));
  if (s.access === "public") {
    files.push({
      name: `client-${s.name}-acme.conf`,
      content: renderTemplate(
        readTemplate(rootDir, "nginx/client-acme.conf.tmpl"),
        {
          CLIENT: s.name,
          HTTP_LISTEN: "80",
          SERVER_NAMES: allHostnames(s).join(" "),
          WEBROOT: paths.webroot,
          DOMAIN: s.domain,
          PRODUCTION_PORT: s.ports.production,
        },
        "nginx/client-acme.conf.tmpl",
      ),
    });
  }
  return files;
}

/** A main config that includes the given files, with every path nginx writes under `prefix`. */
export function wrapperConfig(prefix: string, includes: string[]): string {
  return (
    [
      `pid ${prefix}/nginx.pid;`,
      `error_log ${prefix}/error.log warn;`,
      "events { worker_connections 64; }",
      "http {",
      `    access_log off;`,
      ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `    ${t}_temp_path ${prefix}/tmp/${t};`),
      ...includes.map((f) => `    include ${f};`),
      "}",
    ].join("\n") + "\n"
  );
}

export const nginxTestCommand = (prefix: string, conf: string) => ["nginx", "-t", "-q", "-p", prefix, "-c", conf];

/** Run the real `nginx -t` on rendered site files. Throws NGINX_INVALID with nginx's own message. */
export async function nginxTest(files: SiteFile[]): Promise<void> {
  const prefix = mkdtempSync(join(tmpdir(), "pgp-nginx-t-"));
  try {
    mkdirSync(join(prefix, "tmp"), { recursive: true });
    const paths = files.map((f) => {
      const p = join(prefix, f.name);
      writeFileSync(p, f.content);
      return p;
    });
    const conf = join(prefix, "nginx.conf");
    writeFileSync(conf, wrapperConfig(prefix, paths));
    const r = await run(nginxTestCommand(prefix, conf), { nothrow: true, timeoutMs: 15_000 });
    if (r.code !== 0) {
      throw new ToolkitError(
        "NGINX_INVALID",
        `nginx -t rejects the rendered site config (${files.map((f) => f.name).join(", ")})`,
        "fix nginx/client-site.conf.tmpl (or client-acme.conf.tmpl)",
        (r.stderr || r.stdout).replaceAll(prefix + "/", ""),
      );
    }
  } finally {
    rmSync(prefix, { recursive: true, force: true });
  }
}
