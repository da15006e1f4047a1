#!/usr/bin/env bun
/** make backup-verify [FROM=<id>]: restore a backup (default: the newest) into a scratch instance and compare. */
import { runMain, ToolkitError } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { parseFlags } from "./lib/flags";
import { loadBackupConfig, withBackupCommand } from "./lib/backup/cli";
import { backupPath, findBackup, listBackups } from "./lib/backup/manifest";
import { verifyBackup } from "./lib/backup/verify";
import { note } from "./lib/ui";

const USAGE = `usage: make backup-verify [FROM=<backup id>]
       bun scripts/backup-verify.ts [<backup id>] [--no-physical] [--json]

Checks the sha256 of every file against the manifest (naming any file that
differs), restores the roles and every database into a scratch instance and
compares per-table row counts and content checksums, large objects and the
database's owner, ACL and settings, and runs pgbackrest verify. Records the
result in the manifest; exits 1 (and fires the alert) if anything is off.`;

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    { noPhysical: "boolean", json: "boolean", alertUrl: "string", alertCommand: "string" },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  const cfg = loadBackupConfig();
  await openRuntime(cfg, "backup-verify");
  const want = flags._[0] ?? (process.env.FROM || undefined);
  const v = await withBackupCommand(
    cfg,
    "backup-verify",
    { alert: { url: flags.alertUrl, command: flags.alertCommand }, silent: flags.json },
    async ({ progress }) => {
      // Default: the newest backup, verified or not (re-checking an old good one proves it still is).
      const m = want ? findBackup(cfg, want) : listBackups(cfg).at(-1);
      if (!m) throw new ToolkitError("NO_BACKUP", `no backups in ${cfg.backup.dir}`, "run `make backup` first");
      const res = await verifyBackup(cfg, backupPath(cfg, m.id), { physical: !flags.noPhysical }, progress);
      if (!res.ok)
        throw new ToolkitError(
          "VERIFY_FAILED",
          `backup ${m.id} failed verification: ${res.problems[0]}`,
          "the backup is marked failed; take a new one with `make backup`",
          res.problems.join("\n"),
        );
      return { id: m.id, ...res };
    },
  );
  if (flags.json) return void console.log(JSON.stringify(v, null, 2));
  note(
    [
      `backup       ${v.id}`,
      `result       good: files, restore, row counts${v.checks.checksums ? ", content checksums" : ""}${v.checks.databaseProperties ? ", database properties" : ""}${v.checks.pgbackrest ? ", pgbackrest verify" : ""} all check out${v.checks.checksums ? "" : " (this backup predates content checksums)"}`,
      `took         ${(v.ms / 1000).toFixed(1)} s`,
    ].join("\n"),
    "backup-verify",
  );
});
