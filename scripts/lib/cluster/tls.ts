/**
 * etcd's mutual TLS for a cluster on three hosts, made on the operator's
 * machine with the same openssl commands as the one-box stack
 * (scripts/lib/etcd-tls.ts): a CA per cluster and one member certificate per
 * host (its address), plus one client certificate for Patroni, vip-manager
 * and the toolkit. Kept in clusters/<name>/.tls/ (gitignored, keys 0600);
 * the CA key never leaves the operator. Each host gets its files as HostFiles.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { caCmd, csrCmd, signCmd } from "../etcd-tls";
import { run } from "../exec";
import { writeFileNoFollow } from "../safe-fs";
import { hostPaths, type HostFile } from "./render";
import { clusterDir, type ClusterHost, type ClusterSettings } from "./settings";

export const clusterTlsDir = (name: string, root?: string) => join(clusterDir(name, root), ".tls");

/** Names a host's etcd certificate carries: its address (peers and clients dial it) and its member name. Pure. */
export const hostSans = (h: Pick<ClusterHost, "address" | "name">) => [
  `IP:${h.address}`,
  `DNS:${h.name}`,
  "IP:127.0.0.1",
  "DNS:localhost",
];

const serial = () =>
  [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("")
    .replace(/^[89a-f]/, "1");

/** Make what is missing in clusters/<name>/.tls (never replaces an existing CA). Returns what it made. */
export async function ensureClusterTls(s: ClusterSettings, root?: string): Promise<string[]> {
  const dir = clusterTlsDir(s.name, root);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const made: string[] = [];
  const work = mkdtempSync(join(dir, ".new-"));
  try {
    const ca = join(dir, "ca.crt");
    const caKey = join(dir, "ca.key");
    if (!existsSync(ca) || !existsSync(caKey)) {
      await run(caCmd(join(work, "ca.key"), join(work, "ca.crt"), `pgplatform cluster ${s.name} etcd CA`), {
        timeoutMs: 30_000,
      });
      writeFileNoFollow(caKey, readFileSync(join(work, "ca.key")), { mode: 0o600 });
      writeFileNoFollow(ca, readFileSync(join(work, "ca.crt")), { mode: 0o644 });
      made.push("etcd CA");
    }
    const leaf = async (name: string, sans: string[]) => {
      if (existsSync(join(dir, `${name}.crt`)) && existsSync(join(dir, `${name}.key`))) return;
      await run(csrCmd(join(work, `${name}.key`), join(work, `${name}.csr`), name, sans), { timeoutMs: 30_000 });
      await run(signCmd(join(work, `${name}.csr`), ca, caKey, join(work, `${name}.crt`), serial()), {
        timeoutMs: 30_000,
      });
      writeFileNoFollow(join(dir, `${name}.key`), readFileSync(join(work, `${name}.key`)), { mode: 0o600 });
      writeFileNoFollow(join(dir, `${name}.crt`), readFileSync(join(work, `${name}.crt`)), { mode: 0o644 });
      made.push(`certificate ${name}`);
    };
    for (const h of s.hosts) await leaf(`${h.name}-${h.address}`, hostSans(h));
    await leaf("client", []);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return made;
}

/** The TLS files one host gets, with owners: the member key to etcd, Patroni's client copy to postgres. */
export function hostTlsFiles(s: ClusterSettings, h: ClusterHost, root?: string): HostFile[] {
  const dir = clusterTlsDir(s.name, root);
  const p = hostPaths(s, h).tls;
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  const member = `${h.name}-${h.address}`;
  return [
    { path: p.ca, content: read("ca.crt"), mode: 0o644, owner: "root" },
    { path: p.memberCert, content: read(`${member}.crt`), mode: 0o644, owner: "root" },
    { path: p.memberKey, content: read(`${member}.key`), mode: 0o600, owner: "etcd" },
    { path: p.patroniCert, content: read("client.crt"), mode: 0o644, owner: "root" },
    { path: p.patroniKey, content: read("client.key"), mode: 0o600, owner: "postgres" },
    { path: p.clientCert, content: read("client.crt"), mode: 0o644, owner: "root" },
    { path: p.clientKey, content: read("client.key"), mode: 0o600, owner: "root" },
  ];
}

/** The operator's client pair and CA, for Bun's fetch to etcd (status). */
export function operatorEtcdTls(s: Pick<ClusterSettings, "name">, root?: string) {
  const dir = clusterTlsDir(s.name, root);
  return {
    ca: readFileSync(join(dir, "ca.crt"), "utf8"),
    cert: readFileSync(join(dir, "client.crt"), "utf8"),
    key: readFileSync(join(dir, "client.key"), "utf8"),
  };
}
