/** deploy-client TLS and nginx: a real private CA (openssl) and the real `nginx -t` on every rendered site. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ToolkitError } from "../../scripts/lib/errors";
import { run } from "../../scripts/lib/exec";
import { nginxTest, renderSites, wrapperConfig } from "../../scripts/lib/deploy/nginx";
import { parseClientSettings } from "../../scripts/lib/deploy/settings";
import {
  caNameConstraints,
  certSans,
  certbotCommand,
  ensureBootstrapCert,
  ensureInternalTls,
  sanExtension,
  tlsPaths,
} from "../../scripts/lib/deploy/tls";

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

  test("a CA and a server certificate for every environment's hostname", async () => {
    const r = await ensureInternalTls(dir, internal);
    expect(r.created).toEqual([
      "private CA",
      "certificate for dev.acme.internal, staging.acme.internal, acme.internal",
    ]);
    expect(await certSans(r.paths.cert)).toEqual([
      "DNS:acme.internal",
      "DNS:dev.acme.internal",
      "DNS:staging.acme.internal",
    ]);
    expect((await run(["openssl", "verify", "-CAfile", r.paths.caCert, r.paths.cert], { nothrow: true })).code).toBe(0);
    expect(statSync(r.paths.caKey).mode & 0o777).toBe(0o600);
    expect(statSync(r.paths.key).mode & 0o777).toBe(0o600);
  });

  test("re-running keeps both (idempotent); a new domain re-issues the CA (its constraints name the domain) and the certificate", async () => {
    const cert = readFileSync(join(dir, "server.crt"), "utf8");
    const ca = readFileSync(join(dir, "ca.crt"), "utf8");
    expect((await ensureInternalTls(dir, internal)).created).toEqual([]);
    expect(readFileSync(join(dir, "server.crt"), "utf8")).toBe(cert);
    expect(readFileSync(join(dir, "ca.crt"), "utf8")).toBe(ca);
    const moved = parseClientSettings(base.replace("acme.internal", "acme.lan") + "ACCESS=internal\n", "acme");
    const r = await ensureInternalTls(dir, moved);
    expect(r.created).toEqual([
      "private CA re-issued, constrained to DNS:acme.lan, IP:127.0.7.1/255.255.255.255 (install the new ca.crt)",
      "certificate for dev.acme.lan, staging.acme.lan, acme.lan",
    ]);
    expect(await caNameConstraints(join(dir, "ca.crt"))).toEqual({
      critical: true,
      permitted: ["DNS:acme.lan", "IP:127.0.7.1/255.255.255.255"],
    });
    await ensureInternalTls(dir, internal);
  });

  /** A leaf for `san` signed by the client's CA key (what anyone holding ca.key could mint), verified by openssl against ca.crt. */
  async function mintAndVerify(san: string) {
    const p = tlsPaths(dir);
    const d = mkdtempSync(join(tmp, "leaf-"));
    writeFileSync(join(d, "ext"), `basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
    const cn = san.startsWith("DNS:") ? san.slice(4) : "acme.internal"; // openssl also checks a host-like CN against the constraints
    await run([
      "openssl",
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      join(d, "key"),
      "-out",
      join(d, "csr"),
      "-subj",
      `/CN=${cn}`,
    ]);
    await run([
      "openssl",
      "x509",
      "-req",
      "-in",
      join(d, "csr"),
      "-CA",
      p.caCert,
      "-CAkey",
      p.caKey,
      "-CAcreateserial",
      "-out",
      join(d, "crt"),
      "-days",
      "30",
      "-sha256",
      "-extfile",
      join(d, "ext"),
    ]);
    const v = await run(["openssl", "verify", "-CAfile", p.caCert, join(d, "crt")], { nothrow: true });
    return { code: v.code, out: (v.stdout + v.stderr).trim() };
  }

  test("the CA is name-constrained (critical) to the client's domain and address", async () => {
    expect(await caNameConstraints(join(dir, "ca.crt"))).toEqual({
      critical: true,
      permitted: ["DNS:acme.internal", "IP:127.0.7.1/255.255.255.255"],
    });
    // the client's names (and subdomains) verify
    for (const san of ["DNS:acme.internal", "DNS:api.staging.acme.internal", "IP:127.0.7.1"])
      expect(await mintAndVerify(san)).toMatchObject({ code: 0 });
  });

  test("Bun's TLS (BoringSSL: the health check, Bun apps) trusts the server certificate under the constrained CA", async () => {
    // BoringSSL refuses an IP name under an IP-constrained CA ("unsupported name constraint type"): the certificate
    // names hosts only, and a client dialing the address sets the hostname as the server name.
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: Bun.file(join(dir, "server.crt")), key: Bun.file(join(dir, "server.key")) },
      fetch: () => new Response("ok"),
    });
    try {
      const ca = readFileSync(join(dir, "ca.crt"), "utf8");
      for (const name of ["acme.internal", "staging.acme.internal"]) {
        const r = await fetch(`https://127.0.0.1:${server.port}/`, { tls: { ca, serverName: name } } as RequestInit);
        expect(await r.text()).toBe("ok");
      }
      // and the name is checked: another one is refused
      await expect(
        fetch(`https://127.0.0.1:${server.port}/`, { tls: { ca, serverName: "www.example.com" } } as RequestInit),
      ).rejects.toThrow();
    } finally {
      server.stop(true);
    }
  });

  test("a certificate the client's CA signs for any other name fails verification (name constraints)", async () => {
    for (const san of [
      "DNS:www.example.com",
      "DNS:evilacme.internal",
      "DNS:acme.internal.example.com",
      "IP:10.0.0.1",
    ]) {
      const v = await mintAndVerify(san);
      expect(v.code, san).toBe(2);
      expect(v.out, san).toContain("error 47 at 0 depth lookup: permitted subtree violation");
    }
  });

  test("a CA made before name constraints is re-issued with them (and the certificate with it)", async () => {
    const old = join(tmp, "old-ca");
    const p = tlsPaths(old);
    await ensureInternalTls(old, internal);
    // the CA an older toolkit made: no nameConstraints
    await run([
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      p.caKey,
      "-out",
      p.caCert,
      "-days",
      "3650",
      "-subj",
      "/O=pgplatform/CN=acme private CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE,pathlen:0",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    expect(await caNameConstraints(p.caCert)).toEqual({ critical: false, permitted: [] });
    const r = await ensureInternalTls(old, internal);
    expect(r.created).toEqual([
      "private CA re-issued, constrained to DNS:acme.internal, IP:127.0.7.1/255.255.255.255 (install the new ca.crt)",
      "certificate for dev.acme.internal, staging.acme.internal, acme.internal",
    ]);
    expect(await caNameConstraints(p.caCert)).toEqual({
      critical: true,
      permitted: ["DNS:acme.internal", "IP:127.0.7.1/255.255.255.255"],
    });
    expect((await run(["openssl", "verify", "-CAfile", p.caCert, p.cert], { nothrow: true })).code).toBe(0);
  });

  test("every rendered environment site passes the real nginx -t with the generated certificate", async () => {
    const sites = renderSites(ROOT, internal, {
      tlsCert: join(dir, "server.crt"),
      tlsKey: join(dir, "server.key"),
      webroot: join(tmp, "webroot"),
    });
    expect(sites.map((s) => s.name)).toEqual([
      "client-acme-dev.conf",
      "client-acme-staging.conf",
      "client-acme-production.conf",
    ]);
    for (const s of sites) {
      expect(s.content).toContain("Strict-Transport-Security");
      expect(s.content).toContain("ssl_protocols TLSv1.2 TLSv1.3;");
      await nginxTest([s]);
    }
    await nginxTest(sites); // together too: distinct upstream names and ports
  });

  test("a broken site is rejected with nginx's own message", async () => {
    const [site] = renderSites(ROOT, internal, {
      tlsCert: join(dir, "server.crt"),
      tlsKey: join(dir, "server.key"),
      webroot: "/x",
    });
    const broken = {
      ...site!,
      content: site!.content.replace("ssl_session_tickets off;", "ssl_session_tickets maybe;"),
    };
    const err = await nginxTest([broken]).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(ToolkitError);
    expect((err as ToolkitError).code).toBe("NGINX_INVALID");
    expect((err as ToolkitError).detail).toContain("ssl_session_tickets");
  });

  test("a missing certificate fails nginx -t", async () => {
    const sites = renderSites(ROOT, internal, {
      tlsCert: join(tmp, "nope.crt"),
      tlsKey: join(tmp, "nope.key"),
      webroot: "/x",
    });
    await expect(nginxTest(sites)).rejects.toMatchObject({ code: "NGINX_INVALID" });
  });
});

describe("ACCESS=public: certbot webroot", () => {
  test("the ACME server and the TLS sites (on a bootstrap certificate) pass nginx -t", async () => {
    const live = join(tmp, "le", "live", "acme.internal");
    expect(await ensureBootstrapCert(live, "acme.internal")).toEqual([
      "bootstrap certificate for acme.internal (replaced by certbot)",
    ]);
    expect(await ensureBootstrapCert(live, "acme.internal")).toEqual([]); // kept; certbot replaces it
    const sites = renderSites(ROOT, pub, {
      tlsCert: join(live, "fullchain.pem"),
      tlsKey: join(live, "privkey.pem"),
      webroot: join(tmp, "webroot"),
    });
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
