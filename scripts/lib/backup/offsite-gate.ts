/**
 * BACKUP_OFFSITE=ssh: is the backup host there, before the local backup?
 * pgBackRest 2.45's archive-push pushes to every repository and fails when one
 * fails (src/command/archive/push/push.c, archivePushCheck/archivePushFile);
 * Postgres then retries that one segment forever, nothing later is archived,
 * and the local backup's own archive check times out. So when the backup host
 * does not answer (wrong pinned key, refused key, down), `make backup` pauses
 * archiving to it (pgbackrest.conf without repo2, a marker says why), makes the
 * local backup, then fails loudly; the first `make backup` that reaches the
 * host again resumes it.
 */
import { rmSync } from "node:fs";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { writeIfChanged } from "../render";
import { pgOwner, type BackupProgress } from "./common";
import { offsitePaused, offsitePausedPath } from "./offsite";
import { onBackupHost, writeSshClientFiles } from "./offsite-host";
import { writePgbackrestFiles } from "./pgbackrest";

/** undefined: the backup host answered (archiving to it resumed if it was paused); else why it did not. */
export async function offsiteGate(cfg: Config, progress: BackupProgress): Promise<ToolkitError | undefined> {
  if (cfg.backup.offsite.kind !== "ssh") return undefined;
  try {
    const { publicKey } = await writeSshClientFiles(cfg);
    await onBackupHost(cfg, "true", publicKey);
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
