/**
 * Restores from the far copy alone (issue 17). Logical: the backup is
 * downloaded from the off-site repository into a temporary folder (each file
 * decrypted and checked against the manifest that travelled with it), then
 * restored exactly like a local one (restoreDatabase: temp database, row
 * counts, content checksums and properties against the manifest, rename).
 * Physical: restorePitr with source "offsite" (its own pgBackRest config,
 * where the local repository does not exist).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import type { BackupProgress } from "./common";
import { fetchLogicalOffsite, listLogicalOffsite } from "./offsite-copy";
import { offsiteEnabled } from "./offsite";
import { restoreDatabase, type RestoreOptions, type RestoreResult } from "./restore";

export type BackupSource = "local" | "offsite";

/** Pure: SOURCE=local|offsite (empty: local). */
export function parseSource(v: string | undefined): BackupSource {
  const s = (v ?? "").trim() || "local";
  if (s !== "local" && s !== "offsite")
    throw new ToolkitError(
      "BAD_FLAG",
      `SOURCE=${JSON.stringify(v)} must be local or offsite`,
      "use SOURCE=offsite to restore from the off-site copy alone, or leave it out",
    );
  return s;
}

export function requireOffsite(cfg: Config): void {
  if (!offsiteEnabled(cfg))
    throw new ToolkitError(
      "NO_OFFSITE",
      `${cfg.file} has BACKUP_OFFSITE=none: there is no off-site copy to restore from`,
      "set BACKUP_OFFSITE=s3 or ssh and its BACKUP_OFFSITE_* keys, then `make backup`",
    );
}

export async function restoreFromOffsite(
  cfg: Config,
  opts: RestoreOptions,
  progress: BackupProgress,
): Promise<RestoreResult & { source: "offsite" }> {
  requireOffsite(cfg);
  const ids = await listLogicalOffsite(cfg);
  const id = opts.from ?? ids.at(-1);
  if (!id || !ids.includes(id))
    throw new ToolkitError(
      "UNKNOWN_BACKUP",
      opts.from
        ? `the off-site repository has no logical backup ${opts.from}`
        : "the off-site repository holds no logical backup",
      ids.length ? `it has: ${ids.join(", ")}` : "run `make backup` first",
    );
  mkdirSync(join(cfg.stateDir, "offsite-fetch"), { recursive: true, mode: 0o700 });
  const tmp = mkdtempSync(join(cfg.stateDir, "offsite-fetch", "restore-"));
  try {
    progress("fetch", `downloading logical backup ${id} from the off-site repository`);
    await fetchLogicalOffsite(cfg, id, tmp);
    // The same restore as a local one, reading the downloaded copy: nothing of the local backups is used.
    const r = await restoreDatabase({ ...cfg, backup: { ...cfg.backup, dir: tmp } }, { ...opts, from: id }, progress);
    return { ...r, source: "offsite" };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
