/**
 * BACKUP_OFFSITE=ssh: is the backup host there, before the local backup?
 * pgBackRest 2.45's archive-push pushes to every repository and fails when one
 * fails (src/command/archive/push/push.c, archivePushCheck/archivePushFile);
 * Postgres then retries that one segment forever, nothing later is archived,
 * and the local backup's own archive check times out. So when the backup host
 * does not answer (wrong pinned key, refused key, down), or its config or
 * stanza cannot be made (checked here, before the local backup, for the
 * same reason), `make backup` pauses
 * archiving to it (pgbackrest.conf without repo2, a marker says why), makes the
 * local backup, then fails loudly; the first `make backup` that reaches the
 * host again resumes it.
 */
import { rmSync } from "node:fs";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { writeIfChanged } from "../render";
import { pgOwner, type BackupProgress } from "./common";
import { offsitePaused, offsitePausedPath, readOffsiteSecrets } from "./offsite";
import { onBackupHost, prepareBackupHost, writeSshClientFiles } from "./offsite-host";
import { ensureOffsiteStanza } from "./offsite-run";
import { writePgbackrestFiles } from "./pgbackrest";

/** undefined: the backup host answered (archiving to it resumed if it was paused); else why it did not. */
export async function offsiteGate(cfg: Config, progress: BackupProgress): Promise<ToolkitError | undefined> {
  if (cfg.backup.offsite.kind !== "ssh") return undefined;
  try {
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
    progress(
      "offsite",
      `the backup host's key, for ~postgres/.ssh/authorized_keys on every member: ${h.backupHostKey}`,
    );
    // Before the local backup: archive_command pushes to repo2 too, and a missing stanza there fails it.
    for (const c of await ensureOffsiteStanza(cfg)) progress("offsite", c);
  } catch (e) {
    const err =
      e instanceof ToolkitError
        ? e
        : new ToolkitError("OFFSITE_SSH_FAILED", (e as Error).message, "check the BACKUP_OFFSITE_SSH_* settings");
    if (!offsitePaused(cfg)) {
      writeIfChanged(offsitePausedPath(cfg), `${new Date().toISOString()}: ${err.message}\n`, {
        mode: 0o600,
        ...(pgOwner(cfg) ?? {}),
      });
      writePgbackrestFiles(cfg);
      progress(
        "offsite",
        "the backup host does not answer: WAL archiving to it is PAUSED (archive_command pushes to the local repository alone) so the local backup can be made",
      );
    }
    return err;
  }
  if (offsitePaused(cfg)) {
    rmSync(offsitePausedPath(cfg), { force: true });
    writePgbackrestFiles(cfg);
    progress("offsite", "the backup host answers again: WAL archiving to it resumed");
  }
  return undefined;
}
