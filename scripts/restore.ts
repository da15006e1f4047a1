#!/usr/bin/env bun
/** make restore DB=<name> [FROM=<backup id>] [TO=<new name>]: a logical backup back into the live cluster. */
import * as p from "@clack/prompts";
import { runMain, ToolkitError } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { envFlag, parseFlags } from "./lib/flags";
import { loadBackupConfig, withBackupCommand } from "./lib/backup/cli";
import { restoreDatabase, targetExists } from "./lib/backup/restore";
import { parseSource, restoreFromOffsite } from "./lib/backup/offsite-restore";
import { isInteractive, note } from "./lib/ui";

const USAGE = `usage: make restore DB=<database> [FROM=<backup id>] [TO=<new name>] [YES=1] [SOURCE=offsite]
       bun scripts/restore.ts --db <database> [--from <id>] [--to <name>] [--yes] [--json] [--source offsite]

Restores one database from a logical backup (default: the newest verified
one) into the live cluster. The backup's sha256 sums are checked first; the
data goes into a temporary database made with the original's owner, ACL,
settings, connection limit and comment; its row counts, content checksums,
large objects and properties are compared with the manifest, and only then
is it renamed into place. A database it replaces is
kept as <name>_pre_restore_<stamp> (connections disabled), never dropped.
Replacing an existing database asks first (or YES=1 / --yes).
SOURCE=offsite downloads the backup from the off-site repository alone
(decrypted, sha256 checked) and restores it the same way.`;

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    { db: "string", from: "string", to: "string", yes: "boolean", json: "boolean", source: "string" },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  const db = flags.db ?? process.env.DB;
  const from = flags.from ?? (process.env.FROM || undefined);
  const to = flags.to ?? (process.env.TO || undefined);
  if (!db) throw new ToolkitError("MISSING_DB", "which database? DB=<name> (make) or --db <name>", USAGE);
  const cfg = loadBackupConfig();
  await openRuntime(cfg, "restore");
  let confirmed = Boolean(flags.yes || envFlag("YES"));
  const target = to ?? db;
  if (!confirmed && (await targetExists(cfg, target))) {
    if (!isInteractive())
      throw new ToolkitError(
        "NEEDS_CONFIRMATION",
        `database ${target} exists: restoring replaces it (the current one is kept, renamed)`,
        "re-run with YES=1 (make) or --yes, or restore next to it with TO=<new name>",
      );
    const ok = await p.confirm({
      message: `Replace database ${target} with the backup? (the current one is kept, renamed)`,
      initialValue: false,
    });
    if (p.isCancel(ok) || !ok) return void note("cancelled: nothing changed");
    confirmed = true;
  }
  const source = parseSource(flags.source ?? process.env.SOURCE);
  const r = await withBackupCommand(cfg, "restore", { alert: false, silent: flags.json }, ({ progress }) =>
    (source === "offsite" ? restoreFromOffsite : restoreDatabase)(cfg, { db, from, to, confirmed }, progress),
  );
  if (flags.json) return void console.log(JSON.stringify(r, null, 2));
  const lines = [
    `restored     ${r.from} from ${source === "offsite" ? "the OFF-SITE copy of " : ""}backup ${r.backup} as ${r.database}`,
    `checked      ${r.tables} tables, ${r.rows} rows, their content and the database's owner/ACL/settings match the manifest`,
    `access       CONNECT for ${r.canConnect.join(", ") || "nobody but superusers"}${r.canConnect.includes("PUBLIC") ? "" : " (not PUBLIC)"}`,
    r.previousKeptAs
      ? `previous     kept as ${r.previousKeptAs} (connections disabled; DROP DATABASE it when satisfied)`
      : `previous     none (${r.database} did not exist)`,
    `took         ${(r.ms / 1000).toFixed(1)} s`,
  ];
  note(lines.join("\n"), "restore");
});
