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
  /** BACKUP_OFFSITE=ssh: the backup host (pgBackRest repository host), reached with our own ssh config */
  ssh: {
    host: string;
    port: number;
    user: string;
    /** `type base64`, or an absolute file holding it (read when used) */
    hostKey: string;
    /** the pgBackRest config on the backup host; log/, lock/ and ssh/ sit beside it */
    remoteConfig: string;
    /** the members' sshd port, for the backup host's connections back */
    pgPort: number;
    /** known_hosts lines of the members' sshd (empty: this host's ed25519 key for every member address) */
    pgKnownHosts: string;
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
  const path = v.BACKUP_OFFSITE_PATH || `/pgplatform/${clusterName}`;
  return {
    kind: v.BACKUP_OFFSITE,
    path,
    s3: {
      bucket: v.BACKUP_OFFSITE_S3_BUCKET,
      region: v.BACKUP_OFFSITE_S3_REGION,
      endpoint: host,
      port: portText ? Number(portText) : 443,
      uriStyle: v.BACKUP_OFFSITE_S3_URI_STYLE,
      caFile: v.BACKUP_OFFSITE_S3_CA_FILE,
    },
    ssh: {
      host: v.BACKUP_OFFSITE_SSH_HOST,
      port: v.BACKUP_OFFSITE_SSH_PORT,
      user: v.BACKUP_OFFSITE_SSH_USER,
      hostKey: v.BACKUP_OFFSITE_SSH_HOST_KEY,
      remoteConfig: v.BACKUP_OFFSITE_SSH_CONFIG || `${path}-conf/pgbackrest.conf`,
      pgPort: v.BACKUP_OFFSITE_SSH_PG_PORT,
      pgKnownHosts: v.BACKUP_OFFSITE_SSH_PG_KNOWN_HOSTS,
    },
    cipher: v.BACKUP_OFFSITE_CIPHER,
    retentionFull: v.BACKUP_OFFSITE_RETENTION_FULL,
    retentionDiff: v.BACKUP_OFFSITE_RETENTION_DIFF,
    drillSchedule: v.BACKUP_OFFSITE_DRILL_SCHEDULE,
  };
}
