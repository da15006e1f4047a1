/**
 * Settings of the off-site pgBackRest repository (issue 17): BACKUP_OFFSITE
 * picks the target, the other BACKUP_OFFSITE_* keys describe it. Pure: the
 * config loader calls offsiteSettings() once; errors name the key and the fix.
 * The S3 key/secret and the cipher passphrase are secrets: they live in the
 * stack's 0600 secrets file (offsite-secrets.ts), never here.
 */
import { ToolkitError } from "../errors";

export type OffsiteKind = "s3" | "ssh" | "none";

export interface OffsiteSettings {
  kind: OffsiteKind;
  /** the repository's path on the target (S3: the prefix inside the bucket) */
  path: string;
  s3: { bucket: string; region: string; endpoint: string; port: number; uriStyle: "host" | "path"; caFile: string };
  /** aes-256-cbc with a generated passphrase (on by default): none only with BACKUP_OFFSITE_CIPHER=none */
  cipher: "aes-256-cbc" | "none";
  /** full backups kept in the off-site repository (it may keep longer than the local one) */
  retentionFull: number;
  retentionDiff: number;
  /** cron schedule of `make backup-drill` */
  drillSchedule: string;
}

const bad = (file: string, key: string, message: string, fix: string) => new ToolkitError("BAD_CONFIG", `${file}: ${key}: ${message}`, fix);

/** Pure: the typed settings from the validated values; rules that span keys are checked here. */
export function offsiteSettings(file: string, clusterName: string, v: Record<string, unknown>): OffsiteSettings {
  const kind = v.BACKUP_OFFSITE as OffsiteKind;
  const endpoint = v.BACKUP_OFFSITE_S3_ENDPOINT as string;
  const [host, portText] = endpoint.split(":");
  const s: OffsiteSettings = {
    kind,
    path: (v.BACKUP_OFFSITE_PATH as string) || `/pgplatform/${clusterName}`,
    s3: { bucket: v.BACKUP_OFFSITE_S3_BUCKET as string, region: v.BACKUP_OFFSITE_S3_REGION as string, endpoint: host ?? "", port: portText ? Number(portText) : 443, uriStyle: v.BACKUP_OFFSITE_S3_URI_STYLE as "host" | "path", caFile: v.BACKUP_OFFSITE_S3_CA_FILE as string },
    cipher: v.BACKUP_OFFSITE_CIPHER as "aes-256-cbc" | "none",
    retentionFull: v.BACKUP_OFFSITE_RETENTION_FULL as number,
    retentionDiff: v.BACKUP_OFFSITE_RETENTION_DIFF as number,
    drillSchedule: v.BACKUP_OFFSITE_DRILL_SCHEDULE as string,
  };
  if (kind === "s3") {
    for (const k of ["BACKUP_OFFSITE_S3_BUCKET", "BACKUP_OFFSITE_S3_REGION", "BACKUP_OFFSITE_S3_ENDPOINT"]) {
      if (!v[k]) throw bad(file, k, "is required with BACKUP_OFFSITE=s3", `set it (e.g. ${k}=${k.endsWith("BUCKET") ? "acme-backups" : k.endsWith("REGION") ? "fsn1" : "fsn1.your-objectstorage.com"}), or BACKUP_OFFSITE=none`);
    }
  }
  if (kind === "ssh") {
    // pgBackRest 2.45 (Debian 12) refuses `backup` to a repository host from the database host
    // ("backup command must be run on the repository host"); its SFTP repository type arrives in 2.46.
    throw bad(file, "BACKUP_OFFSITE", "ssh is not supported yet with this pgBackRest (2.45 backs up to a repository host only when run ON that host)", "use BACKUP_OFFSITE=s3 (any S3-compatible store), or none");
  }
  return s;
}
