#!/usr/bin/env bun
/** make restore-pitr AT='<time with offset>' [KEEP=1]: point-in-time restore into a new scratch instance. */
import { runMain, ToolkitError } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { envFlag, parseFlags } from "./lib/flags";
import { loadBackupConfig, withBackupCommand } from "./lib/backup/cli";
import { removeKeptPitr, restorePitr } from "./lib/backup/pitr";
import { parseSource, requireOffsite } from "./lib/backup/offsite-restore";
import { formatBytes, logLine, note } from "./lib/ui";

const USAGE = `usage: make restore-pitr AT='2026-11-21 14:05:00+00' [KEEP=1] [SOURCE=offsite]
       bun scripts/restore-pitr.ts --at '<time with offset>' [--keep] [--json] [--source offsite]
       bun scripts/restore-pitr.ts --remove        (stop and delete kept instances)

Restores the cluster as it was at AT into a NEW scratch Postgres instance
(its own data dir under <member root>/scratch, listening on
BACKUP_SCRATCH_ADDRESS), never over the live cluster: pgBackRest restores the
newest physical backup before AT and replays archived WAL up to AT. Prints
what it recovered; the instance is stopped and removed afterwards unless
KEEP=1, in which case connect with the cluster's postgres password.
SOURCE=offsite restores from the off-site repository alone (its own
pgBackRest config, in which the local repository does not exist).`;

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    { at: "string", keep: "boolean", remove: "boolean", json: "boolean", source: "string" },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  const cfg = loadBackupConfig();
  await openRuntime(cfg, "restore-pitr");
  if (flags.remove) {
    const gone = await withBackupCommand(cfg, "restore-pitr", { alert: false, silent: true }, () =>
      removeKeptPitr(cfg),
    );
    return void logLine(gone.length ? `removed ${gone.join(", ")}` : "no kept scratch instances");
  }
  const at = flags.at ?? (process.env.AT || undefined);
  if (!at)
    throw new ToolkitError("MISSING_AT", "which point in time? AT='2026-11-21 14:05:00+00' (make) or --at", USAGE);
  const keep = Boolean(flags.keep || envFlag("KEEP"));
  const source = parseSource(flags.source ?? process.env.SOURCE);
  if (source === "offsite") requireOffsite(cfg);
  const r = await withBackupCommand(cfg, "restore-pitr", { alert: false, silent: flags.json }, ({ progress }) =>
    restorePitr(cfg, { at, keep, source }, progress),
  );
  if (flags.json) return void console.log(JSON.stringify(r, null, 2));
  const lines = [
    `target       ${r.target}`,
    `backup set   ${r.backupSet ?? "?"} + archived WAL${source === "offsite" ? " (OFF-SITE repository only)" : ""}, timeline ${r.timeline ?? "?"}`,
    `stopped at   ${r.stoppedAt ? `first transaction after the target (${r.stoppedAt})` : "end of the target (no later transaction in the archive)"}`,
    `last commit  ${r.lastTransaction ?? "?"}`,
    `databases    ${r.databases.map((d) => `${d.name} (${formatBytes(d.bytes)})`).join(", ") || "none"}`,
    ...(r.unloggedEmpty.length
      ? [
          `NOT INCLUDED ${r.unloggedEmpty.join(", ")}: unlogged, so empty after a point-in-time restore (their rows are in the logical backups: \`make restore\`)`,
        ]
      : []),
    r.scratch.kept
      ? `instance     KEPT at ${r.scratch.address}:${r.scratch.port} (data ${r.scratch.dir}); remove with \`bun scripts/restore-pitr.ts --remove\``
      : `instance     stopped and removed (KEEP=1 keeps it)`,
    `took         ${(r.ms / 1000).toFixed(1)} s`,
  ];
  note(lines.join("\n"), "restore-pitr");
});
