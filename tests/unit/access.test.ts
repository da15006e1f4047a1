/** Access per app: cloudflared ingress, tailscale serve and the tunnel-origin nginx vhosts, rendered from the registry. */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import {
  applyAccess,
  cloudflaredProblems,
  cloudflaredYaml,
  planAccess,
  renderCloudflared,
  renderServe,
  renderTunnelNginx,
  serveCommands,
  serveOffCmd,
  tunnelOriginNginxPath,
  cloudflaredPath,
  servePath,
  INSTALL,
  type CloudflaredConfig,
} from "../../scripts/lib/access";
import type { AppEntry } from "../../scripts/lib/apps";
import { parseConfig } from "../../scripts/lib/config";
import { parseClientSettings, renderStackEnv, stackConfig } from "../../scripts/lib/deploy/settings";
import { ToolkitError } from "../../scripts/lib/errors";
import { planApp } from "../../scripts/lib/onboard/plan";

const root = `${import.meta.dir}/../..`;
// Goldens are compared only: they were written by hand (and reviewed) once; tests never write them.
const GOLDEN = join(import.meta.dir, "golden", "access");
const golden = (name: string) => readFileSync(join(GOLDEN, name), "utf8");
const state = mkdtempSync(join(tmpdir(), "pgp-access-unit-"));
afterAll(() => rmSync(state, { recursive: true, force: true }));

const ACCESS_ON = [
  "PUBLIC_DOMAIN=example.com",
  "TUNNEL=cloudflare",
  "TAILNET=tailscale",
  "TAILNET_HOSTNAME=server.tail1234.ts.net",
  "CLOUDFLARE_TUNNEL_ID=6ff42ae2-765d-4adf-8112-31c55c1551ef",
];
const envText = (extra: string[], base = readFileSync(`${root}/envs/test.env`, "utf8")) =>
  base.replace(/^STATE_DIR=.*$/m, `STATE_DIR=${state}`) + "\n" + extra.join("\n") + "\n";
const config = (extra: string[] = ACCESS_ON, stack = "access-unit") =>
  parseConfig(envText(extra), { file: `envs/${stack}.env`, stack, rootDir: root, isRoot: false });

const app = (name: string, port: number, access?: AppEntry["access"], database = `${name}_db`): AppEntry => ({
  name,
  database,
  role: name,
  port,
  domain: `${name.replace(/_/g, "-")}.localhost`,
  supabase: false,
  ...(access ? { access } : {}),
  created: "2026-11-30T00:00:00Z",
});
// The registry of three apps: hyperarchy has no access key (private), bookwriter and research_ai are public.
const APPS = [app("hyperarchy", 9100), app("bookwriter", 9200, "public"), app("research_ai", 9300, "public")];

describe("rendered from a registry of three apps (goldens)", () => {
  const cfg = config();
  test("cloudflared config", () => {
    expect(cloudflaredYaml(cfg, renderCloudflared(cfg, APPS))).toBe(golden("cloudflared.yml"));
  });
  test("tailscale serve config (ipn.ServeConfig JSON)", () => {
    expect(JSON.stringify(renderServe(cfg, APPS), null, 2) + "\n").toBe(golden("tailscale-serve.json"));
  });
  test("tailscale serve commands (argv arrays)", () => {
    expect(
      serveCommands(APPS)
        .map((c) => c.join(" "))
        .join("\n") + "\n",
    ).toBe(golden("tailscale-serve.commands"));
    expect(serveOffCmd(9200)).toEqual(["tailscale", "serve", "--http=9200", "off"]);
  });
  test("tunnel-origin nginx vhosts", () => {
    expect(renderTunnelNginx(cfg, APPS)).toBe(golden("tunnel-origin.conf"));
  });
  test("the origin is nginx's loopback listener, API_PORT + 6 by default (+ 5 is the pooler's)", () => {
    expect(cfg.access.originAddress).toBe("127.0.1.1");
    expect(cfg.access.originPort).toBe(16016);
    expect(renderCloudflared(cfg, APPS).ingress[0]!.service).toBe("http://127.0.1.1:16016");
  });
});

describe("ingress order and cloudflared's rules", () => {
  const cfg = config();
  const good = renderCloudflared(cfg, APPS);
  const withIngress = (ingress: unknown[]): unknown => ({ ...good, ingress });
  test("public apps in registry order, the 404 catch-all last; the rendered config passes", () => {
    expect(good.ingress.map((r) => r.hostname ?? r.service)).toEqual([
      "bookwriter.example.com",
      "research-ai.example.com",
      "http_status:404",
    ]);
    expect(cloudflaredProblems(good)).toEqual([]);
    // with no public app, the catch-all alone is still a valid config
    expect(cloudflaredProblems(renderCloudflared(cfg, [app("hyperarchy", 9100)]))).toEqual([]);
  });
  test("a catch-all that is not last is refused, and so is a missing one", () => {
    const [a, b, c] = good.ingress;
    expect(cloudflaredProblems(withIngress([c, a, b]))).toEqual([
      "ingress[0]: matches every hostname, so the rules after it would never be used: the catch-all must be last",
      "ingress[2]: the last rule must match everything (no hostname, no path), e.g. service: http_status:404",
    ]);
    expect(cloudflaredProblems(withIngress([a, b]))).toEqual([
      "ingress[1]: the last rule must match everything (no hostname, no path), e.g. service: http_status:404",
    ]);
    expect(cloudflaredProblems(withIngress([{ hostname: "*", service: "http_status:404" }]))).toEqual([]); // "*" is a catch-all too
    expect(cloudflaredProblems(withIngress([{ path: "/x", service: "http_status:404" }]))[0]).toContain(
      "the last rule must match everything",
    );
    expect(cloudflaredProblems(withIngress([]))).toEqual(["ingress: needs at least the catch-all rule"]);
  });
  test("hostnames: no port, one leading wildcard only, no duplicates", () => {
    const c = good.ingress.at(-1)!;
    const rule = (hostname: string) => ({ hostname, service: "http://127.0.0.1:1" });
    expect(cloudflaredProblems(withIngress([rule("*.example.com"), c]))).toEqual([]);
    expect(cloudflaredProblems(withIngress([rule("app.example.com:8443"), c]))).toEqual([
      'ingress[0]: hostname "app.example.com:8443": a hostname cannot contain a port',
    ]);
    expect(cloudflaredProblems(withIngress([rule("app.*.example.com"), c]))).toEqual([
      'ingress[0]: hostname "app.*.example.com": at most one wildcard, only as the leading label, e.g. *.example.com',
    ]);
    expect(cloudflaredProblems(withIngress([rule("*.*.example.com"), c]))[0]).toContain("at most one wildcard");
    expect(cloudflaredProblems(withIngress([rule("*app.example.com"), c]))[0]).toContain("at most one wildcard");
    expect(cloudflaredProblems(withIngress([rule("a.example.com"), rule("a.example.com"), c]))).toEqual([
      "ingress: hostname a.example.com appears twice (only the first would ever match)",
    ]);
  });
  test("keys: unknown ones are refused (a typo never passes), services and credentials checked", () => {
    expect(cloudflaredProblems({ ...good, tunel: "x" })).toEqual(['(top): Unrecognized key: "tunel"']);
    expect(
      cloudflaredProblems(withIngress([{ service: "http_status:404", originRequest: { httpHostHeadr: "x" } }])),
    ).toEqual(['ingress.0.originRequest: Unrecognized key: "httpHostHeadr"']);
    expect(cloudflaredProblems(withIngress([{ service: "ftp://x" }]))).toEqual([
      "ingress.0.service: must be http(s)://host:port or http_status:<code>",
    ]);
    expect(cloudflaredProblems({ ...good, "credentials-file": "creds.json" })).toEqual([
      "credentials-file: must be an absolute path to a .json file",
    ]);
  });
  test("every public rule pins the Host header to its public name", () => {
    for (const r of good.ingress.slice(0, -1)) expect(r.originRequest).toEqual({ httpHostHeader: r.hostname! });
  });
});

describe("a removed app disappears from both configs", () => {
  const cfg = config();
  const left = APPS.filter((a) => a.name !== "bookwriter");
  test("cloudflared, serve, commands and nginx no longer name bookwriter", () => {
    const cf = renderCloudflared(cfg, left);
    expect(cf.ingress.map((r) => r.hostname ?? r.service)).toEqual(["research-ai.example.com", "http_status:404"]);
    expect(renderServe(cfg, left)).toEqual({
      TCP: { "9100": { HTTP: true }, "9300": { HTTP: true } },
      Web: {
        "server.tail1234.ts.net:9100": { Handlers: { "/": { Proxy: "http://127.0.0.1:9100" } } },
        "server.tail1234.ts.net:9300": { Handlers: { "/": { Proxy: "http://127.0.0.1:9300" } } },
      },
    });
    expect(serveCommands(left).map((c) => c.join(" "))).not.toContain(
      "tailscale serve --bg --http=9200 http://127.0.0.1:9200",
    );
    expect(renderTunnelNginx(cfg, left)).not.toContain("bookwriter");
  });
  test("access none: on neither", () => {
    const apps = [app("hyperarchy", 9100, "none"), app("bookwriter", 9200, "public")];
    expect(Object.keys(renderServe(cfg, apps).TCP)).toEqual(["9200"]);
    expect(renderCloudflared(cfg, apps).ingress.map((r) => r.hostname ?? r.service)).toEqual([
      "bookwriter.example.com",
      "http_status:404",
    ]);
    expect(planAccess(cfg, apps).apps.map((v) => [v.name, v.privateUrl ?? "-", v.publicUrl ?? "-"])).toEqual([
      ["hyperarchy", "-", "-"],
      ["bookwriter", "http://server.tail1234.ts.net:9200", "https://bookwriter.example.com"],
    ]);
  });
});

describe("hostnames validated", () => {
  test("PUBLIC_DOMAIN must be a plain DNS name", () => {
    for (const bad of ["Example.com", "example.com:8443", "*.example.com", "exa mple.com", "example"]) {
      expect(() => config(["PUBLIC_DOMAIN=" + bad])).toThrow(
        `envs/access-unit.env: PUBLIC_DOMAIN: must be a DNS name like example.com, or empty (got ${JSON.stringify(bad)})`,
      );
    }
  });
  test("a public hostname that is another app's nginx hostname is refused", () => {
    const cfg = config();
    const apps = [app("bookwriter", 9200, "public"), { ...app("shop", 9400), domain: "bookwriter.example.com" }];
    expect(planAccess(cfg, apps).problems).toEqual([
      "bookwriter: public hostname bookwriter.example.com is also shop's nginx hostname (a name answers either on the tunnel or locally, never both)",
    ]);
  });
  test("a label over 63 characters is refused", () => {
    const cfg = config(
      ACCESS_ON.map((l) => (l.startsWith("PUBLIC_DOMAIN=") ? `PUBLIC_DOMAIN=${"a".repeat(64)}.com` : l)),
    );
    expect(planAccess(cfg, [app("bookwriter", 9200, "public")]).problems).toEqual([
      `bookwriter: public hostname "bookwriter.${"a".repeat(64)}.com" is not a valid hostname: lowercase letters, digits, dashes and dots, e.g. bookwriter.example.com`,
    ]);
  });
  test("TUNNEL=cloudflare needs PUBLIC_DOMAIN and the tunnel id", () => {
    expect(() => config(["TUNNEL=cloudflare", "CLOUDFLARE_TUNNEL_ID=t1"])).toThrow(
      "envs/access-unit.env: PUBLIC_DOMAIN: is required with TUNNEL=cloudflare",
    );
    expect(() => config(["TUNNEL=cloudflare", "PUBLIC_DOMAIN=example.com"])).toThrow(
      "envs/access-unit.env: CLOUDFLARE_TUNNEL_ID: is required with TUNNEL=cloudflare",
    );
    expect(() => config([...ACCESS_ON, "TUNNEL_ORIGIN_PORT=16010"])).toThrow(
      "envs/access-unit.env: TUNNEL_ORIGIN_PORT: port 16010 is also used by API_PORT",
    );
  });
  test("older env files (no access keys) load with everything off", () => {
    const a = config([]).access;
    expect([a.tunnel, a.tailnet, a.publicDomain, a.allowRemote]).toEqual(["none", "none", "", false]);
  });
});

describe("production data is never made public by accident", () => {
  const cfg = config();
  const apps = [app("orders", 9400, "public", "orders_production"), app("bookwriter", 9200, "public")];
  test("access-plan warns", () => {
    expect(planAccess(cfg, apps).warnings).toEqual([
      "orders holds production data (database orders_production) and would be public at https://orders.example.com",
    ]);
    expect(planAccess(config(ACCESS_ON, "prod-eu"), [app("bookwriter", 9200, "public")]).warnings).toEqual([
      "bookwriter holds production data (database bookwriter_db, stack prod-eu) and would be public at https://bookwriter.example.com",
    ]);
  });
  test("access-apply refuses unless allowed, and writes nothing", async () => {
    const err = await applyAccess(cfg, { which: async () => undefined }, apps).catch((e) => e);
    expect(err).toBeInstanceOf(ToolkitError);
    expect((err as ToolkitError).code).toBe("PUBLIC_PRODUCTION");
    expect((err as ToolkitError).message).toBe(
      "orders (database orders_production) would be public at https://orders.example.com while holding production data",
    );
    expect(existsSync(cloudflaredPath(cfg))).toBe(false);
  });
});

describe("access-apply without cloudflared or tailscale installed", () => {
  test("writes the files, says what to install, runs nothing; a removal and TUNNEL=none withdraw", async () => {
    const cfg = config();
    const r = await applyAccess(cfg, { which: async () => undefined }, APPS);
    expect(readFileSync(cloudflaredPath(cfg), "utf8")).toBe(golden("cloudflared.yml"));
    expect(readFileSync(servePath(cfg), "utf8")).toBe(golden("tailscale-serve.json"));
    expect(readFileSync(tunnelOriginNginxPath(cfg), "utf8")).toBe(golden("tunnel-origin.conf"));
    expect(r.nginx).toBe("not rendered yet (loaded at the next dev-up)");
    expect(r.tools.map((t) => [t.tool, t.installed, t.install])).toEqual([
      ["cloudflared", false, INSTALL.cloudflared.replace("<file>", cloudflaredPath(cfg))],
      ["tailscale", false, INSTALL.tailscale],
    ]);
    expect(r.tools[0]!.commands).toEqual([
      ["cloudflared", "tunnel", "--config", cloudflaredPath(cfg), "ingress", "validate"],
      ["systemctl", "restart", "cloudflared"],
    ]);

    // bookwriter removed from the registry: gone from every file
    const again = await applyAccess(
      cfg,
      { which: async () => undefined },
      APPS.filter((a) => a.name !== "bookwriter"),
    );
    expect(again.changed.length).toBe(3);
    for (const p of [cloudflaredPath(cfg), servePath(cfg), tunnelOriginNginxPath(cfg)])
      expect(readFileSync(p, "utf8")).not.toContain("bookwriter");
    expect(
      (YAML.parse(readFileSync(cloudflaredPath(cfg), "utf8")) as CloudflaredConfig).ingress.map(
        (x) => x.hostname ?? x.service,
      ),
    ).toEqual(["research-ai.example.com", "http_status:404"]);

    // access switched off: the files are withdrawn
    const off = await applyAccess(config([]), { which: async () => undefined }, APPS);
    expect(off.removed.sort()).toEqual(
      [cloudflaredPath(cfg), servePath(cfg), tunnelOriginNginxPath(cfg)].map((p) => p.replace(root + "/", "")).sort(),
    );
    expect(off.tools).toEqual([]);
  });
});

describe("customer stacks stay inside their firewall", () => {
  test("the stack config refuses TUNNEL/TAILNET on client-* unless ALLOW_REMOTE_ACCESS=true", () => {
    expect(() => config(ACCESS_ON, "client-acme")).toThrow(
      'envs/client-acme.env: TUNNEL: customer stacks stay inside the firewall (got "cloudflare")',
    );
    expect(() => config(["TAILNET=tailscale"], "client-acme")).toThrow(
      'envs/client-acme.env: TAILNET: customer stacks stay inside the firewall (got "tailscale")',
    );
    expect(config([...ACCESS_ON, "ALLOW_REMOTE_ACCESS=true"], "client-acme").access.tunnel).toBe("cloudflare");
  });
  test("client.env refuses them too", () => {
    const clientEnv = readFileSync(join(GOLDEN, "..", "deploy-client", "client__client.env"), "utf8");
    expect(() => parseClientSettings(clientEnv + "TAILNET=tailscale\n", "clients/acme/client.env")).toThrow(
      'clients/acme/client.env: TAILNET: customer servers stay inside their firewall (got "tailscale")',
    );
    expect(
      parseClientSettings(clientEnv + "TAILNET=tailscale\nALLOW_REMOTE_ACCESS=true\n", "clients/acme/client.env")
        .remoteAccess,
    ).toEqual({ tunnel: "none", tailnet: "tailscale", allowed: true, tunnelId: "" });
  });
  test("allowed: the generated stack env carries them and loads; not allowed: it stays byte for byte as before", () => {
    const clientEnv = readFileSync(join(GOLDEN, "..", "deploy-client", "client__client.env"), "utf8");
    expect(() =>
      parseClientSettings(clientEnv + "TUNNEL=cloudflare\nALLOW_REMOTE_ACCESS=true\n", "clients/acme/client.env"),
    ).toThrow("clients/acme/client.env: CLOUDFLARE_TUNNEL_ID: is required with TUNNEL=cloudflare");
    const s = parseClientSettings(
      clientEnv + "TUNNEL=cloudflare\nCLOUDFLARE_TUNNEL_ID=t-acme\nALLOW_REMOTE_ACCESS=true\n",
      "clients/acme/client.env",
    );
    expect(renderStackEnv(s).split("\n").slice(-6)).toEqual(
      [
        "MEMBER_ROOT=",
        "ALLOW_REMOTE_ACCESS=true",
        "TUNNEL=cloudflare",
        "TAILNET=none",
        `PUBLIC_DOMAIN=${s.domain}`,
        "CLOUDFLARE_TUNNEL_ID=t-acme",
        "",
      ].slice(-6),
    );
    expect(stackConfig(s, root).access).toMatchObject({
      tunnel: "cloudflare",
      tunnelId: "t-acme",
      publicDomain: s.domain,
      allowRemote: true,
    });
    expect(renderStackEnv(parseClientSettings(clientEnv, "clients/acme/client.env"))).toBe(
      readFileSync(join(GOLDEN, "..", "deploy-client", "envs__client-acme.env"), "utf8"),
    );
  });
});

describe("new-app records the access level", () => {
  test("--access public is written; without it the entry is unchanged (private by default)", () => {
    const cfg = config();
    expect(planApp(cfg, { name: "bookwriter", access: "public" }, []).access).toBe("public");
    expect("access" in planApp(cfg, { name: "bookwriter" }, [])).toBe(false);
    expect(planApp(cfg, { name: "bookwriter", access: "none" }, [app("bookwriter", 9200, "public")]).access).toBe(
      "none",
    );
  });
});

describe("docker runtime: cloudflared under the compose profile `tunnel`", () => {
  const devYml = readFileSync(`${root}/compose/dev.yml`, "utf8");
  test("the service: pinned image, profile, rendered config and credentials mounted read-only; dev.yml still validates", async () => {
    const { composeEnv } = await import("../../scripts/lib/docker");
    const { validateCompose } = await import("../../scripts/lib/compose-schema");
    const { SECRET_KEYS, jwtSecretKey } = await import("../../scripts/lib/secrets");
    const base = config();
    const keys = [...SECRET_KEYS, ...base.databases.map(jwtSecretKey)];
    const cfg = {
      ...base,
      secrets: Object.fromEntries(keys.map((k) => [k, `secret-${k.toLowerCase()}-0123456789abcdef`])),
    } as ReturnType<typeof config>;
    const env = await composeEnv(cfg, "/state/rendered-docker");
    expect(validateCompose(devYml, env)).toEqual([]);
    const svc = (YAML.parse(devYml) as { services: Record<string, any> }).services.cloudflared;
    expect(svc).toEqual({
      image: "${IMAGE_CLOUDFLARED:-cloudflare/cloudflared:2024.12.2}",
      profiles: ["tunnel"],
      restart: "unless-stopped",
      networks: ["stack"],
      depends_on: ["nginx"],
      command: ["tunnel", "--config", "/etc/cloudflared/config.yml", "run"],
      volumes: [
        "${RENDERED_DIR}/cloudflared/config.yml:/etc/cloudflared/config.yml:ro",
        "${CLOUDFLARED_CREDENTIALS_FILE}:/etc/cloudflared/credentials.json:ro",
      ],
    });
    expect(env.CLOUDFLARED_CREDENTIALS_FILE).toBe("/etc/cloudflared/6ff42ae2-765d-4adf-8112-31c55c1551ef.json");
    const { CLOUDFLARED_CREDENTIALS_FILE, ...without } = env;
    expect(validateCompose(devYml, without)).toContain("variable ${CLOUDFLARED_CREDENTIALS_FILE} is not set");
  });
  test("its config points at the nginx service and the mounted credentials, and passes cloudflared's rules", () => {
    const doc = renderCloudflared(config(), APPS, "docker");
    expect(doc["credentials-file"]).toBe("/etc/cloudflared/credentials.json");
    expect(doc.ingress.map((r) => r.service)).toEqual(["http://nginx:8081", "http://nginx:8081", "http_status:404"]);
    expect(cloudflaredProblems(doc)).toEqual([]);
  });
});
