/**
 * Is the off-site repository there, before the local backup? pgBackRest
 * 2.45's archive-push pushes to every repository and fails when one fails
 * (src/command/archive/push/push.c, archivePushCheck/archivePushFile);
 * Postgres then retries that one segment forever, nothing later is archived,
 * and the local backup's own archive check times out. So `make backup` first
 * reaches the off-site repository and makes sure its stanza is there (a
 * missing stanza fails archive-push the same way). How differs per kind:
 * - ssh: the backup host answers with the pinned key, its config is written;
 * - s3: `pgbackrest info` with the off-site-only config, authenticated listings
 *   of the bucket through pgBackRest itself (the same TLS, key and passphrase
 *   archive-push uses), with a short --io-timeout: pgBackRest retries a
 *   refused connection for io-timeout (60 s) per request. info exits 0 and
 *   reports code 99 when the store fails; ensureOffsiteStanza turns that into
 *   OFFSITE_UNREACHABLE with the store's own message.
 * When it fails, archiving to it is PAUSED (pgbackrest.conf without repo2, a
 * marker file says why) and the local backup waits until the archiver has
 * caught up (an archive-push started before the pause may still be retrying
 * the dead repository for minutes); the run then fails loudly. The first
 * `make backup` that reaches the repository again resumes it.
 */
import { rmSync } from "node:fs";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { writeIfChanged } from "../render";
import { pgOwner, type BackupProgress } from "./common";
import { withClient } from "../pg";
import { offsitePaused, offsitePausedPath, readOffsiteSecrets } from "./offsite";
import { onBackupHost, prepareBackupHost, writeSshClientFiles } from "./offsite-host";
import { ensureOffsiteStanza } from "./offsite-run";
import { writePgbackrestFiles } from "./pgbackrest";

/** Pure: what the off-site repository is, in progress lines. */
export const offsiteNoun = (cfg: Config) =>
  cfg.backup.offsite.kind === "ssh" ? "the backup host" : "the object store";

/** ssh: the backup host answers with the pinned key; its config and our files written. */
async function prepareSsh(cfg: Config, progress: BackupProgress): Promise<void> {
  const { publicKey } = await writeSshClientFiles(cfg);
  await onBackupHost(cfg, "true", publicKey);
  writePgbackrestFiles(cfg); // the passphrase, before the backup host's config
  const h = await prepareBackupHost(cfg, readOffsiteSecrets(cfg).cipherPass);
  for (const c of h.changes) progress("offsite", c);
  if (h.changes.some((c) => c.startsWith("off-site ssh identity")))
    progress(
      "offsite",
      `our key, for ~${cfg.backup.offsite.ssh.user}/.ssh/authorized_keys on the backup host: ${h.publicKey}`,
    );
  progress("offsite", `the backup host's key, for ~postgres/.ssh/authorized_keys on every member: ${h.backupHostKey}`);
}

const PROBE_IO_TIMEOUT_S = 5;

/** Reach the off-site repository (per kind) and make sure its stanza is there; throws why not. */
async function reachOffsite(cfg: Config, progress: BackupProgress): Promise<void> {
  if (cfg.backup.offsite.kind === "ssh") await prepareSsh(cfg, progress);
  else writePgbackrestFiles(cfg); // s3: the store's key and the passphrase in pgbackrest-offsite.conf
  // Before the local backup: archive_command pushes to repo2 too, and a missing stanza there fails it.
  // s3: `info` is the probe, with a short --io-timeout (a refused connection is retried for io-timeout per request).
  const probe = cfg.backup.offsite.kind === "s3" ? [`--io-timeout=${PROBE_IO_TIMEOUT_S}`] : [];
  for (const c of await ensureOffsiteStanza(cfg, probe)) progress("offsite", c);
}

/**
 * Wait until the primary has no segment left to archive (pg_ls_archive_statusdir's .ready files). Here:
 * once paused, so the local backup's own archive check does not time out behind an archive-push still
 * retrying repo2; bench/backup.ts: before each timed backup, so none waits behind an earlier backlog.
 */
export async function waitArchiverCaughtUp(cfg: Config, progress: BackupProgress, timeoutMs = 600_000): Promise<void> {
  const pending = () =>
    withClient(cfg, {}, async (c) =>
      Number(
        (await c.query("SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")).rows[0].n,
      ),
    );
  const until = Date.now() + timeoutMs;
  let n = await pending();
  if (n > 0)
    progress("offsite", `waiting for the archiver to push ${n} held-back WAL segment(s) to the local repository`);
  while (n > 0 && Date.now() < until) {
    await new Promise((ok) => setTimeout(ok, 1000));
    n = await pending();
  }
  if (n > 0)
    progress("offsite", `${n} WAL segment(s) still not archived after ${timeoutMs / 1000} s; see the Postgres log`);
}

/** undefined: the off-site repository answered (archiving to it resumed if it was paused); else why it did not. */
export async function offsiteGate(cfg: Config, progress: BackupProgress): Promise<ToolkitError | undefined> {
  const kind = cfg.backup.offsite.kind;
  if (kind === "none") return undefined;
  const noun = offsiteNoun(cfg);
  try {
    await reachOffsite(cfg, progress);
  } catch (e) {
    const err =
      e instanceof ToolkitError
        ? e
        : new ToolkitError(
            `OFFSITE_${kind.toUpperCase()}_FAILED`,
            (e as Error).message,
            `check the BACKUP_OFFSITE_${kind.toUpperCase()}_* settings`,
          );
    if (!offsitePaused(cfg)) {
      writeIfChanged(offsitePausedPath(cfg), `${new Date().toISOString()}: ${err.message}\n`, {
        mode: 0o600,
        ...(pgOwner(cfg) ?? {}),
      });
      writePgbackrestFiles(cfg);
      progress(
        "offsite",
        `${noun} cannot be used (${err.code}): WAL archiving to it is PAUSED (archive_command pushes to the local repository alone) so the local backup can be made`,
      );
    }
    await waitArchiverCaughtUp(cfg, progress);
    return err;
  }
  if (offsitePaused(cfg)) {
    rmSync(offsitePausedPath(cfg), { force: true });
    writePgbackrestFiles(cfg);
    progress("offsite", `${noun} answers again: WAL archiving to it resumed`);
  }
  return undefined;
}
