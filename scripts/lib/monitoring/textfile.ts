/** The toolkit's textfile: what it knows (backups, verifications, drills, certificates) for node_exporter. */
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { writeFileNoFollow } from "../safe-fs";
import { etcdTlsFiles } from "../etcd-tls";
import { nativeEtcdTlsDir } from "../stack-files";
import { textfileDir } from "./files";

/** Metric names the toolkit writes into node_exporter's textfile dir (the alert rules read them). */
export const TEXTFILE_METRICS = {
  backupLastSuccess: "pgplatform_backup_last_success_timestamp_seconds",
  backupLastSize: "pgplatform_backup_last_size_bytes",
  verificationLast: "pgplatform_backup_last_verification_timestamp_seconds",
  verificationSuccess: "pgplatform_backup_last_verification_success",
  lastVerified: "pgplatform_backup_last_verified_timestamp_seconds",
  drillLast: "pgplatform_drill_last_timestamp_seconds",
  drillRto: "pgplatform_drill_rto_seconds",
  certExpiry: "pgplatform_tls_cert_expiry_timestamp_seconds",
} as const;

export interface Sample {
  name: string;
  help: string;
  labels?: Record<string, string>;
  value: number;
}

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

/** Pure: Prometheus's text format, one HELP/TYPE per metric name. */
export function formatSamples(samples: Sample[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const s of samples) {
    if (!seen.has(s.name)) {
      out.push(`# HELP ${s.name} ${s.help}`, `# TYPE ${s.name} gauge`);
      seen.add(s.name);
    }
    const labels =
      s.labels && Object.keys(s.labels).length
        ? `{${Object.entries(s.labels)
            .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
            .join(",")}}`
        : "";
    out.push(`${s.name}${labels} ${s.value}`);
  }
  return out.join("\n") + "\n";
}

/** Parse one of our own .prom files back (to carry values a later write does not change). */
export function readSamples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-z_]+(?:\{[^}]*\})?) (\S+)$/);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/**
 * Write <textfile dir>/<name>.prom atomically (node_exporter must never read half a file).
 * A stack without monitoring has no textfile dir: nothing is written, nothing fails.
 */
export function writeTextfile(cfg: Config, name: string, samples: Sample[]): string | undefined {
  const dir = textfileDir(cfg);
  if (!existsSync(dir)) return undefined;
  const path = join(dir, `${name}.prom`);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileNoFollow(tmp, formatSamples(samples), { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}

function previous(cfg: Config, name: string): Map<string, number> {
  const path = join(textfileDir(cfg), `${name}.prom`);
  try {
    return readSamples(readFileSync(path, "utf8"));
  } catch {
    return new Map();
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const M = TEXTFILE_METRICS;

/** After a successful backup: its time and size. */
export function recordBackup(cfg: Config, sizeBytes: number, at = nowSeconds()): string | undefined {
  return writeTextfile(cfg, "pgplatform_backup", [
    { name: M.backupLastSuccess, help: "Unix time of the last successful make backup.", value: at },
    { name: M.backupLastSize, help: "Size in bytes of the last successful backup.", value: sizeBytes },
  ]);
}

/** After a backup verification: pass or fail, and the time of the last one that passed. */
export function recordVerification(cfg: Config, ok: boolean, at = nowSeconds()): string | undefined {
  const lastOk = ok ? at : previous(cfg, "pgplatform_verify").get(M.lastVerified);
  return writeTextfile(cfg, "pgplatform_verify", [
    { name: M.verificationLast, help: "Unix time of the last backup verification.", value: at },
    {
      name: M.verificationSuccess,
      help: "1 if the last backup verification passed, 0 if it failed.",
      value: ok ? 1 : 0,
    },
    ...(lastOk !== undefined
      ? [{ name: M.lastVerified, help: "Unix time of the last backup verification that passed.", value: lastOk }]
      : []),
  ]);
}

/** After a failover drill: its measured recovery time. */
export function recordDrill(cfg: Config, rtoSeconds: number, at = nowSeconds()): string | undefined {
  return writeTextfile(cfg, "pgplatform_drill", [
    { name: M.drillLast, help: "Unix time of the last failover drill.", value: at },
    { name: M.drillRto, help: "Seconds the last failover drill took until writes succeeded again.", value: rtoSeconds },
  ]);
}

/** Expiry of every certificate the toolkit made or knows: etcd's CA, members and client; client bundles' sites. */
export function certificateFiles(cfg: Config): string[] {
  const tls = etcdTlsFiles(nativeEtcdTlsDir(cfg));
  const files = [tls.ca, tls.client.cert, ...cfg.members.map((m) => tls.member(m).cert)];
  const clients = join(cfg.rootDir, "clients");
  if (existsSync(clients)) {
    for (const c of readdirSync(clients)) {
      const dir = join(clients, c, ".tls");
      if (existsSync(dir)) for (const f of readdirSync(dir)) if (f.endsWith(".crt")) files.push(join(dir, f));
    }
  }
  return files.filter((f) => existsSync(f));
}

export function writeTlsExpiryTextfile(cfg: Config): string | undefined {
  const samples: Sample[] = [];
  for (const file of certificateFiles(cfg)) {
    try {
      const cert = new X509Certificate(readFileSync(file));
      samples.push({
        name: M.certExpiry,
        help: "Unix time when the certificate expires.",
        labels: { file },
        value: Math.floor(new Date(cert.validTo).getTime() / 1000),
      });
    } catch {
      // not a certificate: skipped
    }
  }
  return writeTextfile(cfg, "pgplatform_tls", samples);
}
