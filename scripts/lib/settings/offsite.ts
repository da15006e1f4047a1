/**
 * Settings of the off-site pgBackRest repository (issue 17), mapped from the
 * env file's BACKUP_OFFSITE_* keys (declared in settings/env.ts, where the rules
 * across them live). The S3 key/secret and the cipher passphrase are secrets:
 * they live in the stack's 0600 secrets file (backup/offsite-secrets.ts), never here.
 */
import type { EnvValues } from "./env";

export type OffsiteKind = EnvValues["BACKUP_OFFSITE"];

export interface OffsiteSettings {
  kind: OffsiteKind;
  /** the repository's path on the target (S3: the prefix inside the bucket) */
  path: string;
  s3: {
    bucket: string;
    region: string;
    endpoint: string;
    port: number;
    uriStyle: EnvValues["BACKUP_OFFSITE_S3_URI_STYLE"];
    caFile: string;
  };
  /** aes-256-cbc with a generated passphrase (on by default): none only with BACKUP_OFFSITE_CIPHER=none */
  cipher: EnvValues["BACKUP_OFFSITE_CIPHER"];
  /** full backups kept in the off-site repository (it may keep longer than the local one) */
  retentionFull: number;
  retentionDiff: number;
  /** cron schedule of `make backup-drill` */
  drillSchedule: string;
}

/** Pure: the typed off-site settings of validated env values. */
export function offsiteSettings(clusterName: string, v: EnvValues): OffsiteSettings {
  const [host = "", portText] = v.BACKUP_OFFSITE_S3_ENDPOINT.split(":");
  return {
    kind: v.BACKUP_OFFSITE,
    path: v.BACKUP_OFFSITE_PATH || `/pgplatform/${clusterName}`,
    s3: {
      bucket: v.BACKUP_OFFSITE_S3_BUCKET,
      region: v.BACKUP_OFFSITE_S3_REGION,
      endpoint: host,
      port: portText ? Number(portText) : 443,
      uriStyle: v.BACKUP_OFFSITE_S3_URI_STYLE,
      caFile: v.BACKUP_OFFSITE_S3_CA_FILE,
    },
    cipher: v.BACKUP_OFFSITE_CIPHER,
    retentionFull: v.BACKUP_OFFSITE_RETENTION_FULL,
    retentionDiff: v.BACKUP_OFFSITE_RETENTION_DIFF,
    drillSchedule: v.BACKUP_OFFSITE_DRILL_SCHEDULE,
  };
}
