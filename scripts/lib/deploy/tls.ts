/**
 * TLS for the environments. ACCESS=internal: a private CA (kept in
 * clients/<name>/.tls, key 0600) signs one server certificate whose SANs are
 * the environments' hostnames and the listen address; the customer installs
 * ca.crt once. The certificate names the hostnames (not the address, see
 * below). The CA is name-constrained (X.509 nameConstraints, critical):
 * it can only vouch for the client's domain and its subdomains and the
 * client's listen address, so a certificate it signs for any other name
 * (www.example.com, a bank) fails verification wherever ca.crt is trusted.
 * ACCESS=public: Let's Encrypt through certbot's webroot flow;
 * until certbot has run, nginx starts on a self-signed bootstrap certificate
 * at the same path (nginx refuses to start without one).
 * openssl commands are built as argument arrays by small pure functions.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { run } from "../exec";
import type { ClientSettings, EnvName } from "./settings";
import { ENVIRONMENTS } from "./settings";

export const hostnameFor = (domain: string, env: EnvName) => (env === "production" ? domain : `${env}.${domain}`);
export const allHostnames = (s: Pick<ClientSettings, "domain">) => ENVIRONMENTS.map((e) => hostnameFor(s.domain, e));

export const CA_DAYS = 3650;
export const CERT_DAYS = 825; // the longest validity Apple platforms accept for a server certificate

export interface TlsPaths {
  dir: string;
  caKey: string;
  caCert: string;
  key: string;
  cert: string;
  csr: string;
  ext: string;
}

export const tlsPaths = (dir: string): TlsPaths => ({
  dir,
  caKey: join(dir, "ca.key"),
  caCert: join(dir, "ca.crt"),
  key: join(dir, "server.key"),
  cert: join(dir, "server.crt"),
  csr: join(dir, "server.csr"),
  ext: join(dir, "server.ext"),
});

/** What the private CA may sign: the domain (and, by RFC 5280, every subdomain) and each address as a /32. Sorted, as openssl prints them. */
export function permittedNames(s: Pick<ClientSettings, "domain" | "api">): string[] {
  return [`DNS:${s.domain}`, ...[s.api.address].map((ip) => `IP:${ip}/255.255.255.255`)].sort();
}

export const nameConstraintsExt = (permitted: string[]) =>
  `nameConstraints=critical,${permitted.map((n) => `permitted;${n}`).join(",")}`;

/** A new P-256 key and a self-signed certificate for it (`openssl req -x509`), extensions appended. */
const selfSignedCommand = (key: string, cert: string, days: number, subject: string, ...extra: string[]): string[] => [
  "openssl",
  "req",
  "-x509",
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
  "-nodes",
  "-keyout",
  key,
  "-out",
  cert,
  "-days",
  String(days),
  "-subj",
  subject,
  ...extra,
];

export const caCommand = (p: TlsPaths, client: string, permitted: string[]): string[] =>
  selfSignedCommand(
    p.caKey,
    p.caCert,
    CA_DAYS,
    `/O=pgplatform/CN=${client} private CA`,
    "-addext",
    "basicConstraints=critical,CA:TRUE,pathlen:0",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-addext",
    nameConstraintsExt(permitted),
  );

/** A CA's permitted name constraints (sorted; empty: none), and whether the extension is critical, via openssl. */
export async function caNameConstraints(caCert: string): Promise<{ critical: boolean; permitted: string[] }> {
  const r = await run(["openssl", "x509", "-in", caCert, "-noout", "-ext", "nameConstraints"], { nothrow: true });
  const lines = r.code === 0 ? r.stdout.split("\n") : [];
  const out: string[] = [];
  let inPermitted = false;
  for (const l of lines.slice(1)) {
    const t = l.trim();
    if (/^Permitted:/.test(t)) inPermitted = true;
    else if (/^Excluded:/.test(t)) inPermitted = false;
    else if (inPermitted && t) out.push(t.replace(/^IP:/, "IP:"));
  }
  return { critical: /critical/.test(lines[0] ?? ""), permitted: out.sort() };
}

export const csrCommand = (p: TlsPaths, cn: string): string[] => [
  "openssl",
  "req",
  "-new",
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
  "-nodes",
  "-keyout",
  p.key,
  "-out",
  p.csr,
  "-subj",
  `/CN=${cn}`,
];

export const signCommand = (p: TlsPaths): string[] => [
  "openssl",
  "x509",
  "-req",
  "-in",
  p.csr,
  "-CA",
  p.caCert,
  "-CAkey",
  p.caKey,
  "-CAcreateserial",
  "-out",
  p.cert,
  "-days",
  String(CERT_DAYS),
  "-sha256",
  "-extfile",
  p.ext,
];

/** The SAN list: every environment's hostname plus the address nginx listens on. */
export function sanExtension(hostnames: string[], ips: string[]): string {
  const san = [...hostnames.map((h) => `DNS:${h}`), ...ips.map((i) => `IP:${i}`)].join(",");
  return (
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${san}`,
    ].join("\n") + "\n"
  );
}

/** SANs of an existing certificate (sorted), via openssl. */
export async function certSans(cert: string): Promise<string[]> {
  const r = await run(["openssl", "x509", "-in", cert, "-noout", "-ext", "subjectAltName"], { nothrow: true });
  if (r.code !== 0) return [];
  const body = r.stdout.split("\n").slice(1).join(",");
  return body
    .split(",")
    .map((x) => x.trim().replace(/^IP Address:/, "IP:"))
    .filter(Boolean)
    .sort();
}

/** Seconds until the certificate expires (negative: expired), via openssl. */
export async function certValidFor(cert: string, seconds: number): Promise<boolean> {
  const r = await run(["openssl", "x509", "-in", cert, "-noout", "-checkend", String(seconds)], { nothrow: true });
  return r.code === 0;
}

export interface TlsResult {
  paths: TlsPaths;
  created: string[];
}

/**
 * ACCESS=internal: keep the CA and certificate when they exist, cover the
 * hostnames and are valid for 30 more days; otherwise (re)issue. Idempotent.
 */
export async function ensureInternalTls(
  dir: string,
  s: Pick<ClientSettings, "name" | "domain" | "api">,
  rotate = false,
): Promise<TlsResult> {
  const p = tlsPaths(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const created: string[] = [];
  const month = 30 * 24 * 3600;
  const permitted = permittedNames(s);
  const haveCa = existsSync(p.caKey) && existsSync(p.caCert);
  const constrained = haveCa ? await caNameConstraints(p.caCert) : undefined;
  const constraintsOk =
    Boolean(constrained?.critical) && JSON.stringify(constrained?.permitted) === JSON.stringify(permitted);
  if (rotate || !haveCa || !constraintsOk || !(await certValidFor(p.caCert, month))) {
    await run(caCommand(p, s.name, permitted));
    chmodSync(p.caKey, 0o600);
    // A CA from before name constraints (or for another domain/address) is replaced: the customer installs the new ca.crt.
    created.push(
      haveCa && !constraintsOk
        ? `private CA re-issued, constrained to ${permitted.join(", ")} (install the new ca.crt)`
        : "private CA",
    );
  }
  const hostnames = allHostnames(s);
  // Hostnames only: BoringSSL (Bun's TLS, and so our own health check) rejects any certificate with an IP
  // name under a CA that constrains IPs ("unsupported name constraint type", measured); clients reach the
  // environments by name (a check that dials the address sets the hostname as the TLS server name).
  const ext = sanExtension(hostnames, []);
  const want = hostnames.map((h) => `DNS:${h}`).sort();
  const have = existsSync(p.cert) ? await certSans(p.cert) : [];
  const signedByCa =
    existsSync(p.cert) && (await run(["openssl", "verify", "-CAfile", p.caCert, p.cert], { nothrow: true })).code === 0;
  if (
    created.length ||
    !signedByCa ||
    JSON.stringify(have) !== JSON.stringify(want) ||
    !(await certValidFor(p.cert, month))
  ) {
    writeFileSync(p.ext, ext);
    await run(csrCommand(p, hostnames[hostnames.length - 1]!));
    await run(signCommand(p));
    chmodSync(p.key, 0o600);
    created.push(`certificate for ${hostnames.join(", ")}`);
  }
  return { paths: p, created };
}

/** ACCESS=public: a self-signed stand-in at certbot's live/ path so nginx can start and answer the challenge. */
export async function ensureBootstrapCert(liveDir: string, domain: string): Promise<string[]> {
  const key = join(liveDir, "privkey.pem");
  const cert = join(liveDir, "fullchain.pem");
  if (existsSync(key) && existsSync(cert)) return [];
  mkdirSync(liveDir, { recursive: true, mode: 0o700 });
  await run(selfSignedCommand(key, cert, 7, `/CN=${domain}`));
  chmodSync(key, 0o600);
  return [`bootstrap certificate for ${domain} (replaced by certbot)`];
}

/** certbot's webroot flow for every environment's hostname, as an argument array. */
export function certbotCommand(
  s: Pick<ClientSettings, "domain" | "adminEmail">,
  webroot: string,
  configDir: string,
): string[] {
  return [
    "certbot",
    "certonly",
    "--webroot",
    "-w",
    webroot,
    ...allHostnames(s).flatMap((h) => ["-d", h]),
    "--cert-name",
    s.domain,
    "--email",
    s.adminEmail,
    "--agree-tos",
    "--no-eff-email",
    "--non-interactive",
    "--keep-until-expiring",
    "--config-dir",
    configDir,
    "--work-dir",
    join(configDir, "work"),
    "--logs-dir",
    join(configDir, "logs"),
  ];
}

export const readPem = (path: string) => readFileSync(path, "utf8");
