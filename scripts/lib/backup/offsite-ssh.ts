/**
 * BACKUP_OFFSITE=ssh (issue 17): the off-site repository on a backup host,
 * in pgBackRest's "dedicated repository host" mode. What pgBackRest 2.45 does
 * (src/protocol/helper.c, src/command/backup/backup.c at release/2.45):
 *  - archive-push, archive-get, restore, info, verify, stanza-create and the
 *    repo-* commands run HERE and reach repo2 on the backup host through
 *    `<cmd-ssh> -o LogLevel=error -o Compression=no -o PasswordAuthentication=no
 *    [-p port] user@host pgbackrest ...`: cmd-ssh is our wrapper, which adds
 *    `-F <our ssh_config>` (identity, pinned host key, no ~/.ssh);
 *  - `backup` and `expire` refuse a remote repository ("backup command must be
 *    run on the repository host", repoIsLocalVerify): they run ON the backup
 *    host (we start them over the same ssh), whose pgBackRest reaches the
 *    members' Postgres back over SSH (pgN-host, as postgres).
 * The remote side is given `--repo=<our index>`, so the repository is repo2
 * everywhere: in our pgbackrest.conf, in the off-site-only config and in the
 * config we write on the backup host (which holds its cipher passphrase:
 * pgBackRest encrypts on the repository side and hands the options to the
 * database host when it has none, helper.c "Get cipher options from the remote").
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import type { Cmd } from "../exec";

/** Index of the off-site repository in every config (ours, the off-site-only one, the backup host's). */
export const SSH_REPO = 2;

/** Our ssh files (owned by postgres, who runs pgBackRest): identity, pinned host key, ssh_config, cmd-ssh wrapper. */
export const sshFiles = (cfg: Config) => {
  const dir = join(cfg.backup.pgbackrestHome, "offsite-ssh");
  return {
    dir,
    key: join(dir, "id_ed25519"),
    pub: join(dir, "id_ed25519.pub"),
    knownHosts: join(dir, "known_hosts"),
    config: join(dir, "ssh_config"),
    wrapper: join(dir, "ssh"),
    /** pgN-host-cmd: pgBackRest with PGPASSFILE, for the backup host's sessions here (scram everywhere, no env over ssh) */
    pgCmd: join(dir, "pgbackrest-pg"),
    pgpass: join(dir, "pgpass"),
  };
};

/** The name the pinned key is filed under (HostKeyAlias): the address may change, the key may not. */
export const hostKeyAlias = (cfg: Config) => `pgplatform-offsite-${cfg.clusterName}`;

/** Paths written into ssh configs, wrappers and remote commands: no quoting needed, none allowed. */
export function safePath(path: string, key: string): string {
  if (!/^\/[A-Za-z0-9._/-]+$/.test(path))
    throw new ToolkitError(
      "OFFSITE_SSH_PATH",
      `${key}: ${JSON.stringify(path)} has characters the ssh wrapper and remote commands cannot carry`,
      "use a path of letters, digits and . _ / - only",
    );
  return path;
}

const KEY_RE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}$/;

/** The pinned host key as `type base64`, from BACKUP_OFFSITE_SSH_HOST_KEY or the file it names. */
export function pinnedHostKey(cfg: Config): string {
  const v = cfg.backup.offsite.ssh.hostKey;
  if (!v.startsWith("/")) return v;
  const fix = `put the backup host's public host key (its /etc/ssh/ssh_host_ed25519_key.pub: \`ssh-ed25519 AAAA...\`) in ${v}, or the key itself in BACKUP_OFFSITE_SSH_HOST_KEY in ${cfg.file}`;
  if (!existsSync(v))
    throw new ToolkitError("OFFSITE_SSH_HOST_KEY", `BACKUP_OFFSITE_SSH_HOST_KEY: file ${v} does not exist`, fix);
  // a .pub file (`type base64 comment`) or a known_hosts line (`names type base64`)
  const line = readFileSync(v, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith("#"));
  const words = (line ?? "").split(/\s+/);
  const at = words.findIndex((_, i) => KEY_RE.test(`${words[i]} ${words[i + 1]}`));
  const key = at >= 0 ? `${words[at]} ${words[at + 1]}` : "";
  if (!key)
    throw new ToolkitError(
      "OFFSITE_SSH_HOST_KEY",
      `BACKUP_OFFSITE_SSH_HOST_KEY: ${v} holds no public key (first line: ${JSON.stringify((line ?? "").slice(0, 60))})`,
      fix,
    );
  return key;
}

/** Pure: our ssh_config (used with -F, so neither ~/.ssh/config nor /etc/ssh/ssh_config applies). */
export function sshClientConfig(cfg: Config): string {
  const o = cfg.backup.offsite.ssh;
  const f = sshFiles(cfg);
  return [
    `# The off-site backup host (BACKUP_OFFSITE=ssh); written by scripts/lib/backup/offsite-ssh.ts.`,
    `# Only this file applies (ssh -F): the host key is pinned, nothing of ~/.ssh is read or written.`,
    `Host ${o.host}`,
    `  HostName ${o.host}`,
    `  Port ${o.port}`,
    `  User ${o.user}`,
    `  IdentityFile ${f.key}`,
    "  IdentitiesOnly yes",
    "  IdentityAgent none",
    `  UserKnownHostsFile ${f.knownHosts}`,
    "  GlobalKnownHostsFile /dev/null",
    "  StrictHostKeyChecking yes",
    `  HostKeyAlias ${hostKeyAlias(cfg)}`,
    "  CheckHostIP no",
    "  UpdateHostKeys no",
    "  BatchMode yes",
    "  ConnectTimeout 15",
    "  ServerAliveInterval 30",
    "  ServerAliveCountMax 4",
    "",
  ].join("\n");
}

/** Pure: pgBackRest's cmd-ssh (it takes a path, no arguments): ssh with our config, every argument passed through. */
export const sshWrapper = (configPath: string) =>
  `#!/bin/sh\n# pgBackRest's cmd-ssh for the off-site backup host: ssh with our own config only.\nexec /usr/bin/ssh -F ${configPath} "$@"\n`;

/** Pure: the member-side pgBackRest the backup host starts over ssh: libpq reads the password from our 0600 pgpass. */
export const pgCmdWrapper = (pgpass: string) =>
  `#!/bin/sh\n# pgBackRest as started by the off-site backup host (pgN-host-cmd): Postgres wants scram, ssh passes no environment.\nPGPASSFILE=${pgpass} exec /usr/bin/pgbackrest "$@"\n`;

/** Pure: a .pgpass line for the superuser on every address and port (':' and '\\' escaped). */
export const pgpassLine = (user: string, password: string) =>
  `*:*:*:${user}:${password.replace(/[\\:]/g, (c) => `\\${c}`)}\n`;

/** Pure: our pgbackrest.conf lines for the off-site repository on the backup host. */
export function sshRepoLines(cfg: Config): string[] {
  const o = cfg.backup.offsite;
  const r = `repo${SSH_REPO}`;
  return [
    `# Off-site: backup host ${o.ssh.user}@${o.ssh.host}:${o.ssh.port} over SSH (BACKUP_OFFSITE=ssh, pgBackRest repository host); ${o.cipher === "none" ? "NOT encrypted (BACKUP_OFFSITE_CIPHER=none)" : "encrypted there, passphrase in its config"}.`,
    `# Retention and bundling are set in that host's config (${o.ssh.remoteConfig}): backup and expire run there.`,
    `${r}-host=${o.ssh.host}`,
    `${r}-host-port=${o.ssh.port}`,
    `${r}-host-user=${o.ssh.user}`,
    `${r}-host-config=${safePath(o.ssh.remoteConfig, "BACKUP_OFFSITE_SSH_CONFIG")}`,
    `${r}-path=${o.path}`,
    `cmd-ssh=${safePath(sshFiles(cfg).wrapper, "the pgBackRest home")}`,
  ];
}

/** The backup host's folder for its config, log/, lock/ and ssh/. */
export const remoteHome = (cfg: Config) => dirname(cfg.backup.offsite.ssh.remoteConfig);

/** Pure: the pgbackrest.conf we write on the backup host (it runs `backup` and `expire`, reaching the members over SSH). */
export function remoteConf(cfg: Config, cipherPass: string, pgUser: string): string {
  const o = cfg.backup.offsite;
  const home = remoteHome(cfg);
  const r = `repo${SSH_REPO}`;
  const pg = cfg.members.flatMap((m, i) => [
    `pg${i + 1}-host=${m.address}`,
    `pg${i + 1}-host-port=${o.ssh.pgPort}`,
    `pg${i + 1}-host-user=${pgUser}`,
    `pg${i + 1}-host-config=${cfg.backup.pgbackrestHome}/pgbackrest.conf`,
    `pg${i + 1}-host-cmd=${sshFiles(cfg).pgCmd}`,
    `pg${i + 1}-path=${m.dataDir}`,
    `pg${i + 1}-socket-path=${m.socketDir}`,
    `pg${i + 1}-port=${m.pgPort}`,
    `pg${i + 1}-user=postgres`,
  ]);
  return [
    `# pgBackRest on the off-site backup host of cluster ${cfg.clusterName} (stack ${cfg.stack}).`,
    "# Written over SSH by the toolkit's `make backup` (scripts/lib/backup/offsite-ssh.ts): edits are overwritten.",
    "[global]",
    `${r}-path=${o.path}`,
    ...(o.cipher === "none" ? [] : [`${r}-cipher-type=${o.cipher}`, `${r}-cipher-pass=${cipherPass}`]),
    `${r}-bundle=y`,
    `${r}-retention-full-type=count`,
    `${r}-retention-full=${o.retentionFull}`,
    `${r}-retention-diff=${o.retentionDiff}`,
    "compress-type=lz4",
    `process-max=${cfg.backup.jobs}`,
    "start-fast=y",
    "archive-check=y",
    `log-path=${home}/log`,
    `lock-path=${home}/lock`,
    `spool-path=${home}/spool`,
    "log-level-console=warn",
    "log-level-file=info",
    `cmd-ssh=${home}/ssh/ssh`,
    "",
    `[${cfg.backup.stanza}]`,
    ...pg,
    "",
  ].join("\n");
}

/** Pure: the backup host's ssh_config for its connections back to the members (pinned keys, its own identity). */
export const remoteSshConfig = (home: string) =>
  [
    "# The backup host's connections to the database members (pgBackRest pgN-host); written by the toolkit.",
    "Host *",
    `  IdentityFile ${home}/ssh/id_ed25519`,
    "  IdentitiesOnly yes",
    "  IdentityAgent none",
    `  UserKnownHostsFile ${home}/ssh/known_hosts`,
    "  GlobalKnownHostsFile /dev/null",
    "  StrictHostKeyChecking yes",
    "  UpdateHostKeys no",
    "  BatchMode yes",
    "  ConnectTimeout 15",
    "",
  ].join("\n");

/** Pure: known_hosts lines for the members: `[addr]:port key` (plain `addr key` on port 22). */
export const memberKnownHosts = (cfg: Config, key: string) =>
  `${cfg.members
    .map((m) =>
      cfg.backup.offsite.ssh.pgPort === 22
        ? `${m.address} ${key}`
        : `[${m.address}]:${cfg.backup.offsite.ssh.pgPort} ${key}`,
    )
    .join("\n")}\n`;

/** Commands pgBackRest 2.45 runs only on the repository host (repoIsLocalVerify). */
export const REPO_HOST_COMMANDS = new Set(["backup", "expire"]);

/** Pure: a pgBackRest command run ON the backup host, through our wrapper (argv; ssh joins it for the remote shell). */
export const remotePgbackrest = (cfg: Config, args: string[]): Cmd => [
  sshFiles(cfg).wrapper,
  `${cfg.backup.offsite.ssh.user}@${cfg.backup.offsite.ssh.host}`,
  "pgbackrest",
  `--config=${cfg.backup.offsite.ssh.remoteConfig}`,
  ...args,
];

/** Pure: our callers ask for repo1 of the off-site-only config; with ssh the repository keeps its index. */
export const sshRepoArgs = (args: string[]) => args.map((a) => (a === "--repo=1" ? `--repo=${SSH_REPO}` : a));
