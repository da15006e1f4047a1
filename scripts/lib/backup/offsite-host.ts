/**
 * BACKUP_OFFSITE=ssh, the side effects: our ssh identity and config (in the
 * pgBackRest home, owned by postgres), and the backup host's own files,
 * written there over SSH at every `make backup` (its pgbackrest.conf holds
 * the cipher passphrase: written through ssh's stdin, 0600, never in argv).
 * What pgBackRest allows where is explained in offsite-ssh.ts.
 */
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { writeIfChanged } from "../render";
import { ensurePgDir, pgOwner, runAsPg } from "./common";
import {
  hostKeyAlias,
  memberKnownHosts,
  pgCmdWrapper,
  pgpassLine,
  pinnedHostKey,
  remoteConf,
  remoteHome,
  remoteSshConfig,
  safePath,
  sshClientConfig,
  sshFiles,
  sshWrapper,
} from "./offsite-ssh";

/** Our identity (generated once as postgres, 0600), the pinned key, ssh_config and the cmd-ssh wrapper. */
export async function writeSshClientFiles(cfg: Config): Promise<{ changes: string[]; publicKey: string }> {
  const f = sshFiles(cfg);
  const changes: string[] = [];
  ensurePgDir(cfg, f.dir, 0o700);
  if (!existsSync(f.key)) {
    const comment = `pgplatform-${cfg.clusterName}@${hostname()}`;
    await runAsPg(cfg, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", f.key]);
    changes.push(`off-site ssh identity ${f.key}`);
  }
  const own = { ...(pgOwner(cfg) ?? {}) };
  const pinned = `${hostKeyAlias(cfg)} ${pinnedHostKey(cfg)}\n`;
  if (writeIfChanged(f.knownHosts, pinned, { mode: 0o600, ...own })) changes.push("off-site pinned host key");
  if (writeIfChanged(f.config, sshClientConfig(cfg), { mode: 0o600, ...own })) changes.push("off-site ssh_config");
  writeIfChanged(f.wrapper, sshWrapper(safePath(f.config, "the pgBackRest home")), { mode: 0o755, ...own });
  writeIfChanged(f.pgpass, pgpassLine("postgres", cfg.secrets.POSTGRES_PASSWORD), { mode: 0o600, ...own });
  writeIfChanged(f.pgCmd, pgCmdWrapper(f.pgpass), { mode: 0o755, ...own });
  return { changes, publicKey: readFileSync(f.pub, "utf8").trim() };
}

/** Pure: what went wrong with ssh, named (the pinned key, the identity to install), else pgBackRest/ssh's own lines. */
export function sshProblem(cfg: Config, out: string, publicKey = ""): ToolkitError | undefined {
  const o = cfg.backup.offsite.ssh;
  const at = `${o.user}@${o.host}:${o.port}`;
  // pgBackRest names the host of a failed remote: a member means the backup host's hop back (pgN-host).
  const member = [...out.matchAll(/protocol on '([^']+)'/g)].map((m) => m[1]).find((h) => h !== o.host);
  if (
    member &&
    /Host key verification failed|Permission denied|Connection refused|IDENTIFICATION HAS CHANGED/.test(out)
  )
    return new ToolkitError(
      "OFFSITE_SSH_MEMBER",
      `the backup host could not log in to member ${member}:${o.pgPort} as postgres: ${out.match(/Host key verification failed|Permission denied \([^)]*\)|Connection refused|REMOTE HOST IDENTIFICATION HAS CHANGED/)![0]}`,
      `on every member, append the backup host's key (printed by \`make backup\`, the line "the backup host's key") to ~postgres/.ssh/authorized_keys, and give the members' sshd host keys in BACKUP_OFFSITE_SSH_PG_KNOWN_HOSTS`,
    );
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known/.test(out))
    return new ToolkitError(
      "OFFSITE_SSH_HOST_KEY",
      `the backup host ${at} did not present the pinned host key (BACKUP_OFFSITE_SSH_HOST_KEY=${o.hostKey.slice(0, 60)}${o.hostKey.length > 60 ? "…" : ""} in ${cfg.file}); nothing was sent to it`,
      "compare with the key on the backup host itself (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` there); if it was reinstalled, update BACKUP_OFFSITE_SSH_HOST_KEY, otherwise treat it as an interception",
    );
  if (/Permission denied \(publickey/.test(out))
    return new ToolkitError(
      "OFFSITE_SSH_AUTH",
      `the backup host ${at} refused our key ${sshFiles(cfg).key}`,
      `append this line to ~${o.user}/.ssh/authorized_keys on the backup host: ${publicKey || `(the contents of ${sshFiles(cfg).pub})`}`,
    );
  if (/Connection refused|Connection timed out|No route to host|Could not resolve hostname/.test(out))
    return new ToolkitError(
      "OFFSITE_SSH_CONNECT",
      `cannot reach the backup host ${at}: ${out.trim().split("\n").at(-1)}`,
      "check BACKUP_OFFSITE_SSH_HOST / BACKUP_OFFSITE_SSH_PORT and that sshd runs there",
    );
  return undefined;
}

/** One command on the backup host as its user, through our wrapper (the remote shell reads one line: paths are checked safe). */
export async function onBackupHost(cfg: Config, script: string, publicKey: string, input?: string): Promise<string> {
  const o = cfg.backup.offsite.ssh;
  const r = await runAsPg(cfg, [sshFiles(cfg).wrapper, `${o.user}@${o.host}`, script], {
    nothrow: true,
    timeoutMs: 120_000,
    ...(input !== undefined ? { input } : {}),
  });
  if (r.code === 0) return r.stdout;
  throw (
    sshProblem(cfg, r.stderr, publicKey) ??
    new ToolkitError(
      "OFFSITE_SSH_FAILED",
      `on the backup host ${o.user}@${o.host}: \`${script.split(";")[0]}\` failed (${r.code})`,
      "see the backup host's answer below",
      r.stderr.trim().split("\n").slice(-6).join("\n"),
    )
  );
}

export interface BackupHostSetup {
  changes: string[];
  /** ours: to be in the backup user's authorized_keys */
  publicKey: string;
  /** the backup host's: to be in postgres's authorized_keys on every member */
  backupHostKey: string;
}

/** Pure: the members' host keys the backup host pins, from BACKUP_OFFSITE_SSH_PG_KNOWN_HOSTS or this host's own key. */
export function membersKnownHosts(cfg: Config): string {
  const file = cfg.backup.offsite.ssh.pgKnownHosts;
  const src = file || "/etc/ssh/ssh_host_ed25519_key.pub";
  if (!existsSync(src))
    throw new ToolkitError(
      "OFFSITE_SSH_PG_KNOWN_HOSTS",
      `BACKUP_OFFSITE_SSH_PG_KNOWN_HOSTS: ${src} does not exist`,
      "give a known_hosts file with every member's sshd host key (the backup host connects back to them)",
    );
  const text = readFileSync(src, "utf8");
  return file ? text : memberKnownHosts(cfg, text.trim().split(/\s+/).slice(0, 2).join(" "));
}

/**
 * The backup host's folder (config, log/, lock/, spool/, ssh/), its own key for reaching the members
 * (generated THERE: the private half never travels), its pgbackrest.conf; and a version check.
 */
export async function prepareBackupHost(cfg: Config, cipherPass: string): Promise<BackupHostSetup> {
  const { changes, publicKey } = await writeSshClientFiles(cfg);
  const home = safePath(remoteHome(cfg), "BACKUP_OFFSITE_SSH_CONFIG");
  const repo = safePath(cfg.backup.offsite.path, "BACKUP_OFFSITE_PATH");
  const k = `${home}/ssh/id_ed25519`;
  const backupHostKey = (
    await onBackupHost(
      cfg,
      `set -e; umask 077; mkdir -p ${home}/log ${home}/lock ${home}/spool ${home}/ssh ${repo}; ` +
        `[ -f ${k} ] || ssh-keygen -q -t ed25519 -N '' -C pgplatform-backup-host -f ${k}; cat ${k}.pub`,
      publicKey,
    )
  ).trim();
  const local = (await runAsPg(cfg, ["pgbackrest", "version"])).stdout.trim();
  const remote = (await onBackupHost(cfg, "pgbackrest version", publicKey)).trim();
  if (remote !== local)
    throw new ToolkitError(
      "OFFSITE_SSH_VERSION",
      `the backup host runs ${remote || "no pgbackrest"}, this host ${local}: pgBackRest needs the same version on both`,
      `install the same version there (Debian 12: \`apt-get install pgbackrest\`), then run \`make backup\` again`,
    );
  const pgUser = cfg.pgOsUser ?? (await runAsPg(cfg, ["id", "-un"])).stdout.trim();
  const files: [string, string][] = [
    [cfg.backup.offsite.ssh.remoteConfig, remoteConf(cfg, cipherPass, pgUser)],
    [`${home}/ssh/config`, remoteSshConfig(home)],
    [`${home}/ssh/known_hosts`, membersKnownHosts(cfg)],
    [`${home}/ssh/ssh`, sshWrapper(`${home}/ssh/config`)],
  ];
  for (const [path, body] of files)
    await onBackupHost(
      cfg,
      `set -e; umask 077; cat > ${path}.new; chmod 700 ${path}.new; mv ${path}.new ${path}`,
      publicKey,
      body,
    );
  return { changes, publicKey, backupHostKey };
}
