/**
 * The env file's BACKUP_OFFSITE_* keys (issue 17), spread into env.ts's table:
 * a second pgBackRest repository, off this machine. settings/offsite.ts maps
 * them to typed settings; env-rules.ts holds the rules across them. The S3
 * key/secret and the cipher passphrase are secrets: they live in the stack's
 * 0600 secrets file, never here.
 */
import { z } from "zod";
import { setting } from "./engine";
import { oneOf, port, whole } from "./rules";

/** A public key as `type base64` (known_hosts without its host names), or an absolute file path holding one. */
export const SSH_KEY_OR_FILE = /^$|^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}$|^\/\S+$/;

export const OFFSITE_KEYS = {
  BACKUP_OFFSITE: setting(
    oneOf(["s3", "ssh", "none"]),
    "s3: an S3-compatible object store; ssh: a backup host over SSH (pgBackRest repository host); none: local backups only",
    "none",
  ),
  BACKUP_OFFSITE_PATH: setting(
    z.string().regex(/^$|^\/[A-Za-z0-9._/-]*$/, "must be an absolute path like /pgplatform/prod, or empty"),
    "the repository's path on the target (S3: the prefix in the bucket; ssh: a folder the backup host's user owns); empty: /pgplatform/<CLUSTER_NAME>",
    "",
  ),
  BACKUP_OFFSITE_SSH_HOST: setting(
    z.string().regex(/^$|^[A-Za-z0-9][A-Za-z0-9.-]*$/, "must be a host name or address, without user@ or :port"),
    "ssh: the backup host, e.g. backup1.example.com",
    "",
  ),
  BACKUP_OFFSITE_SSH_PORT: setting(port(), "ssh: the backup host's sshd port", "22"),
  BACKUP_OFFSITE_SSH_USER: setting(
    z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be an OS user name like pgbackrest"),
    "ssh: the user on the backup host that owns the repository and runs pgBackRest",
    "pgbackrest",
  ),
  BACKUP_OFFSITE_SSH_HOST_KEY: setting(
    z.string().regex(SSH_KEY_OR_FILE, "must be a public key like `ssh-ed25519 AAAA...` or an absolute file path"),
    "ssh: the backup host's pinned host key (its /etc/ssh/ssh_host_ed25519_key.pub), or a file holding it",
    "",
  ),
  BACKUP_OFFSITE_SSH_CONFIG: setting(
    z
      .string()
      .regex(
        /^$|^\/[A-Za-z0-9._/-]+$/,
        "must be an absolute path like /pgplatform/prod-conf/pgbackrest.conf, or empty",
      ),
    "ssh: the pgBackRest config the toolkit writes on the backup host (log/, lock/, ssh/ beside it); empty: <BACKUP_OFFSITE_PATH>-conf/pgbackrest.conf",
    "",
  ),
  BACKUP_OFFSITE_SSH_PG_PORT: setting(
    port(),
    "ssh: the members' sshd port the backup host connects back to (pgBackRest backs up from there)",
    "22",
  ),
  BACKUP_OFFSITE_SSH_PG_KNOWN_HOSTS: setting(
    z.string().regex(/^$|^\/\S+$/, "must be an absolute path or empty"),
    "ssh: a known_hosts file with the members' sshd host keys, pinned on the backup host; empty: this host's /etc/ssh/ssh_host_ed25519_key.pub for every member address",
    "",
  ),
  BACKUP_OFFSITE_S3_BUCKET: setting(
    z
      .string()
      .regex(
        /^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
        "must be an S3 bucket name (3-63 lowercase letters, digits, dots, dashes)",
      ),
    "e.g. acme-backups",
    "",
  ),
  BACKUP_OFFSITE_S3_REGION: setting(
    z.string().regex(/^$|^[a-z0-9-]{2,32}$/, "must be a region name like eu-central or fsn1"),
    "e.g. fsn1 (Hetzner) or eu-central-1",
    "",
  ),
  BACKUP_OFFSITE_S3_ENDPOINT: setting(
    z.string().regex(/^$|^[A-Za-z0-9.-]+(:\d{1,5})?$/, "must be host or host:port, without https://"),
    "e.g. fsn1.your-objectstorage.com (TLS always; :port when not 443)",
    "",
  ),
  BACKUP_OFFSITE_S3_URI_STYLE: setting(
    oneOf(["host", "path"]),
    "host: bucket.endpoint (AWS, Hetzner); path: endpoint/bucket (most self-hosted stores)",
    "host",
  ),
  BACKUP_OFFSITE_S3_CA_FILE: setting(
    z.string().regex(/^$|^\/\S+$/, "must be an absolute path or empty"),
    "PEM CA bundle the endpoint's certificate is verified against; empty: the system store",
    "",
  ),
  BACKUP_OFFSITE_CIPHER: setting(
    oneOf(["aes-256-cbc", "none"]),
    "encryption of the off-site repository (passphrase generated into the secrets file)",
    "aes-256-cbc",
  ),
  BACKUP_OFFSITE_RETENTION_FULL: setting(
    whole(1),
    "full backups the off-site repository keeps (may be more than the local one), e.g. 8",
    "8",
  ),
  BACKUP_OFFSITE_RETENTION_DIFF: setting(whole(1), "differential backups the off-site repository keeps, e.g. 7", "7"),
  BACKUP_OFFSITE_DRILL_SCHEDULE: setting(
    z.string().regex(/^\S+ \S+ \S+ \S+ \S+$/, "must be a 5-field cron schedule"),
    "cron schedule of make backup-drill (restore from off-site into a scratch instance), e.g. 45 3 * * 0",
    "45 3 * * 0",
  ),
};
