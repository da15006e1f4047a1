/** deploy-client TLS and nginx: a real private CA (openssl) and the real `nginx -t` on every rendered site. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ToolkitError } from "../../scripts/lib/errors";
import { run } from "../../scripts/lib/exec";
import { nginxTest, renderSites, wrapperConfig } from "../../scripts/lib/deploy/nginx";
import { parseClientSettings } from "../../scripts/lib/deploy/settings";
import { certSans, certbotCommand, ensureBootstrapCert, ensureInternalTls, sanExtension } from "../../scripts/lib/deploy/tls";

const ROOT = resolve(import.meta.dir, "../..");
const tmp = mkdtempSync(join(tmpdir(), "pgp-tls-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const base = `CLIENT_NAME=acme
HOST=local
DOMAIN=acme.internal
PROFILE=16
REMOTE_DIR=/opt/pgplatform/acme
MEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13
HAPROXY_ADDRESS=127.0.0.1
API_ADDRESS=127.0.7.1
`;
const internal = parseClientSettings(base + "ACCESS=internal\n", "acme");
const pub = parseClientSettings(base + "ACCESS=public\nADMIN_EMAIL=ops@acme.com\n", "acme");

describe("ACCESS=internal: private CA", () => {
  const dir = join(tmp, "internal");

  test("a CA and a server certificate for every environment's hostname and the listen address", async () => {
    const r = await ensureInternalTls(dir, internal);
    expect(r.created.length).toBe(2);
    expect(await certSans(r.paths.cert)).toEqual(["DNS:acme.internal", "DNS:dev.acme.internal", "DNS:staging.acme.internal", "IP:127.0.7.1"]);
    expect((await run(["openssl", "verify", "-CAfile", r.paths.caCert, r.paths.cert], { nothrow: true })).code).toBe(0);
    expect(statSync(r.paths.caKey).mode & 0o777).toBe(0o600);
    expect(statSync(r.paths.key).mode & 0o777).toBe(0o600);
  });

  test("re-running keeps both (idempotent); a new hostname re-issues only the certificate", async () => {
    const cert = readFileSync(join(dir, "server.crt"), "utf8");
    const ca = readFileSync(join(dir, "ca.crt"), "utf8");
    expect((await ensureInternalTls(dir, internal)).created).toEqual([]);
    expect(readFileSync(join(dir, "server.crt"), "utf8")).toBe(cert);
    const moved = parseClientSettings(base.replace("acme.internal", "acme.lan") + "ACCESS=internal\n", "acme");
    const r = await ensureInternalTls(dir, moved);
    expect(r.created).toEqual(["certificate for dev.acme.lan, staging.acme.lan, acme.lan, 127.0.7.1"]);
    expect(readFileSync(join(dir, "ca.crt"), "utf8")).toBe(ca);
    await ensureInternalTls(dir, internal);
  });

  test("every rendered environment site passes the real nginx -t with the generated certificate", async () => {
    const sites = renderSites(ROOT, internal, { tlsCert: join(dir, "server.crt"), tlsKey: join(dir, "server.key"), webroot: join(tmp, "webroot") });
    expect(sites.map((s) => s.name)).toEqual(["client-acme-dev.conf", "client-acme-staging.conf", "client-acme-production.conf"]);
    for (const s of sites) {
      expect(s.content).toContain("Strict-Transport-Security");
      expect(s.content).toContain("ssl_protocols TLSv1.2 TLSv1.3;");
      await nginxTest([s]);
    }
    await nginxTest(sites); // together too: distinct upstream names and ports
  });

  test("a broken site is rejected with nginx's own message", async () => {
    const [site] = renderSites(ROOT, internal, { tlsCert: join(dir, "server.crt"), tlsKey: join(dir, "server.key"), webroot: "/x" });
    const broken = { ...site!, content: site!.content.replace("ssl_session_tickets off;", "ssl_session_tickets maybe;") };
    const err = await nginxTest([broken]).then(() => undefined, (e) => e);
    expect(err).toBeInstanceOf(ToolkitError);
    expect((err as ToolkitError).code).toBe("NGINX_INVALID");
    expect((err as ToolkitError).detail).toContain("ssl_session_tickets");
  });

  test("a missing certificate fails nginx -t", async () => {
    const sites = renderSites(ROOT, internal, { tlsCert: join(tmp, "nope.crt"), tlsKey: join(tmp, "nope.key"), webroot: "/x" });
    await expect(nginxTest(sites)).rejects.toMatchObject({ code: "NGINX_INVALID" });
  });
});

describe("ACCESS=public: certbot webroot", () => {
  test("the ACME server and the TLS sites (on a bootstrap certificate) pass nginx -t", async () => {
    const live = join(tmp, "le", "live", "acme.internal");
    expect(await ensureBootstrapCert(live, "acme.internal")).toHaveLength(1);
    expect(await ensureBootstrapCert(live, "acme.internal")).toEqual([]); // kept; certbot replaces it
    const sites = renderSites(ROOT, pub, { tlsCert: join(live, "fullchain.pem"), tlsKey: join(live, "privkey.pem"), webroot: join(tmp, "webroot") });
    const acme = sites.find((s) => s.name === "client-acme-acme.conf")!;
    expect(acme.content).toContain("listen 80;");
    expect(acme.content).toContain(`root ${join(tmp, "webroot")};`);
    expect(acme.content).toContain("location ^~ /.well-known/acme-challenge/");
    await nginxTest(sites);
  });

  test("certbot command: webroot flow for every hostname", () => {
    expect(certbotCommand(pub, "/w", "/le").join(" ")).toBe(
      "certbot certonly --webroot -w /w -d dev.acme.internal -d staging.acme.internal -d acme.internal --cert-name acme.internal --email ops@acme.com --agree-tos --no-eff-email --non-interactive --keep-until-expiring --config-dir /le --work-dir /le/work --logs-dir /le/logs",
    );
  });
});

test("SAN extension and wrapper config are what openssl and nginx read", () => {
  expect(sanExtension(["a.x", "b.x"], ["10.0.0.1"])).toContain("subjectAltName=DNS:a.x,DNS:b.x,IP:10.0.0.1");
  const w = wrapperConfig("/p", ["/p/a.conf"]);
  expect(w).toContain("pid /p/nginx.pid;");
  expect(w).toContain("include /p/a.conf;");
  expect(w).toContain("proxy_temp_path /p/tmp/proxy;");
});
