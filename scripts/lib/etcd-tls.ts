/**
 * Mutual TLS for etcd: a private CA per stack (openssl), one certificate per
 * etcd member (used for its client and peer URLs, so it serves and presents
 * itself to peers) and one client certificate for Patroni and the toolkit.
 * etcd requires a certificate signed by this CA on both URLs
 * (client-cert-auth), so a local user who can reach 2379/2380 but cannot read
 * a key gets nothing: no read, no PUT, no leader key.
 *
 * Keys are readable only by root and the user that runs the service: the
 * member key by `etcd`, Patroni's copy of the client key by `postgres`
 * (0600 each), the CA key and the toolkit's client key by root alone.
 */
import { X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config, Member } from "./config";
import { run, type Cmd } from "./exec";
import { ensureDirNoFollow, writeFileNoFollow, type Owner } from "./safe-fs";

export interface TlsPair {
  cert: string;
  key: string;
}

export interface EtcdTlsFiles {
  dir: string;
  ca: string;
  caKey: string;
  member: (m: Member) => TlsPair;
  client: TlsPair;
}

export function etcdTlsFiles(dir: string): EtcdTlsFiles {
  return {
    dir,
    ca: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    member: (m) => ({ cert: join(dir, `${m.etcdName}.crt`), key: join(dir, `${m.etcdName}.key`) }),
    client: { cert: join(dir, "client.crt"), key: join(dir, "client.key") },
  };
}

/**
 * Names a member's certificate must carry: its address (native), its compose
 * host name (docker) and loopback (the docker healthcheck runs inside the container).
 */
export const memberSans = (m: Member) => [`IP:${m.address}`, `DNS:${m.etcdName}`, "DNS:localhost", "IP:127.0.0.1"];

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export const caCmd = (key: string, cert: string, cn: string): Cmd => [
  "openssl",
  "req",
  "-x509",
  "-new",
  ...EC,
  "-keyout",
  key,
  "-out",
  cert,
  "-days",
  "3650",
  "-subj",
  `/CN=${cn}`,
  "-addext",
  "basicConstraints=critical,CA:TRUE,pathlen:0",
  "-addext",
  "keyUsage=critical,keyCertSign,cRLSign",
];

export const csrCmd = (key: string, csr: string, cn: string, sans: string[]): Cmd => [
  "openssl",
  "req",
  "-new",
  ...EC,
  "-keyout",
  key,
  "-out",
  csr,
  "-subj",
  `/CN=${cn}`,
  ...(sans.length ? ["-addext", `subjectAltName=${sans.join(",")}`] : []),
  "-addext",
  "basicConstraints=critical,CA:FALSE",
  "-addext",
  "keyUsage=critical,digitalSignature",
  // Peers dial each other with the same certificate they serve with: both uses.
  "-addext",
  "extendedKeyUsage=serverAuth,clientAuth",
];

export const signCmd = (csr: string, ca: string, caKey: string, cert: string, serial: string): Cmd => [
  "openssl",
  "x509",
  "-req",
  "-in",
  csr,
  "-CA",
  ca,
  "-CAkey",
  caKey,
  "-set_serial",
  `0x${serial}`,
  "-days",
  "825",
  "-copy_extensions",
  "copyall",
  "-out",
  cert,
];

/** A certificate file parsed, or undefined when it is missing or unreadable. */
function readCert(path: string): X509Certificate | undefined {
  try {
    return new X509Certificate(readFileSync(path));
  } catch {
    return undefined;
  }
}

/** Still good: signed by this CA, the wanted names (as openssl prints them), and not within 30 days of expiry. */
function certCurrent(path: string, ca: X509Certificate, sans: string): boolean {
  const c = readCert(path);
  return (
    !!c &&
    c.verify(ca.publicKey) &&
    (c.subjectAltName ?? "") === sans &&
    Date.parse(c.validTo) - Date.now() > 30 * 86_400_000
  );
}

const wantSans = (sans: string[]) => sans.map((s) => s.replace(/^IP:/, "IP Address:")).join(", ");

export interface TlsOwners {
  /** owner of each member's key (the etcd service user) */
  etcd?: Owner;
}

/**
 * Create what is missing (the CA, a member certificate whose names changed) and
 * fix modes and owners. Returns what it created.
 */
export async function ensureEtcdTls(cfg: Config, files: EtcdTlsFiles, owners: TlsOwners = {}): Promise<string[]> {
  const made: string[] = [];
  ensureDirNoFollow(files.dir, 0o711);
  const work = mkdtempSync(join(files.dir, ".new-")); // 0700: keys are born private
  try {
    // Checks parse the certificates in-process: a no-op dev-up spawns no openssl.
    const haveCa = existsSync(files.caKey) && readCert(files.ca) !== undefined;
    let newCa = false;
    if (!haveCa) {
      await run(caCmd(join(work, "ca.key"), join(work, "ca.crt"), `pgplatform ${cfg.clusterName} etcd CA`), {
        timeoutMs: 30_000,
      });
      writeFileNoFollow(files.caKey, readFileSync(join(work, "ca.key")), { mode: 0o600 });
      writeFileNoFollow(files.ca, readFileSync(join(work, "ca.crt")), { mode: 0o644 });
      made.push("etcd CA");
      newCa = true;
    }
    const leaf = async (name: string, pair: TlsPair, sans: string[], owner: Owner | undefined) => {
      const fresh = newCa || !certCurrent(pair.cert, readCert(files.ca)!, wantSans(sans));
      if (fresh) {
        const k = join(work, `${name}.key`);
        const csr = join(work, `${name}.csr`);
        const crt = join(work, `${name}.crt`);
        await run(csrCmd(k, csr, name, sans), { timeoutMs: 30_000 });
        await run(signCmd(csr, files.ca, files.caKey, crt, randomSerial()), { timeoutMs: 30_000 });
        writeFileNoFollow(pair.key, readFileSync(k), { mode: 0o600, owner });
        writeFileNoFollow(pair.cert, readFileSync(crt), { mode: 0o644 });
        made.push(`certificate ${name}`);
      } else {
        writeFileNoFollow(pair.key, readFileSync(pair.key), { mode: 0o600, owner });
      }
    };
    for (const m of cfg.members) await leaf(m.etcdName, files.member(m), memberSans(m), owners.etcd);
    await leaf("etcd-client", files.client, [], undefined);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return made;
}

const randomSerial = () =>
  [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("")
    .replace(/^[89a-f]/, "1");

/** Options for Bun's fetch: the CA to verify etcd by and the client certificate to present. */
export function etcdFetchTls(files: EtcdTlsFiles): { ca: string; cert: string; key: string } {
  return {
    ca: readFileSync(files.ca, "utf8"),
    cert: readFileSync(files.client.cert, "utf8"),
    key: readFileSync(files.client.key, "utf8"),
  };
}
