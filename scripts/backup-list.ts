#!/usr/bin/env bun
/** make backup-list: logical backups with their status, and pgBackRest's physical backups. */
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { parseFlags } from "./lib/flags";
import { isGood, listBackups } from "./lib/backup/manifest";
import { pitrWindow, stanzaInfo } from "./lib/backup/pgbackrest";
import { withClient } from "./lib/pg";
import { formatBytes, note, table } from "./lib/ui";

const USAGE = `usage: make backup-list [ARGS=--json]
       bun scripts/backup-list.ts [--json]

Lists logical backups (id, status, databases, size, source) and pgBackRest's
physical backups, and the time range make restore-pitr AT= can reach (from
the end of the oldest physical backup to the last WAL the archive received).`;

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { json: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  await openRuntime(cfg, "backup-list");
  const logical = listBackups(cfg).map((m) => ({
    id: m.id,
    status: m.status,
    good: isGood(m),
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
    databases: m.databases.map((d) => d.name),
    bytes: m.files.reduce((a, f) => a + f.size, 0),
    source: m.source?.member,
    walPosition: m.walPosition,
    physical: m.physical?.label,
    problems: m.verification?.problems ?? (m.error ? [m.error] : []),
  }));
  const physical = await stanzaInfo(cfg).catch((e) => ({
    status: { code: -1, message: (e as Error).message },
    backups: [],
    archiveMin: undefined,
    archiveMax: undefined,
  }));
  // The leader's archiver says when the newest WAL reached the repository: the latest reachable AT.
  const lastArchived = await withClient(
    cfg,
    { timeoutMs: 3000 },
    async (c) => (await c.query("SELECT last_archived_time AS t FROM pg_stat_archiver")).rows[0]?.t as Date | null,
  ).catch(() => null);
  const pitr = pitrWindow(physical, lastArchived ?? undefined);
  if (flags.json)
    return void console.log(
      JSON.stringify({ stack: cfg.stack, dir: cfg.backup.dir, logical, physical: { ...physical, pitr } }, null, 2),
    );
  const rows = [["id", "status", "size", "source", "databases", "physical"]];
  for (const b of logical)
    rows.push([
      b.id,
      b.good ? "good" : b.status,
      formatBytes(b.bytes),
      b.source ?? "-",
      b.databases.join(","),
      b.physical ?? "-",
    ]);
  note(logical.length ? table(rows) : `no logical backups in ${cfg.backup.dir}`, `logical backups (${cfg.backup.dir})`);
  const utc = (d: Date) => d.toISOString().replace("T", " ").slice(0, 19);
  const prow = [["label", "type", "started (UTC)", "restorable from (UTC)", "size", "repo"]];
  for (const b of physical.backups)
    prow.push([
      b.label,
      b.type,
      utc(new Date(b.start * 1000)),
      utc(new Date(b.stop * 1000)),
      formatBytes(b.size),
      formatBytes(b.repoSize),
    ]);
  const archive = pitr.from
    ? `\nrestore-pitr AT= reaches ${utc(new Date(pitr.from))}+00 .. ${utc(new Date(pitr.to!))}+00 (${pitr.toSource})`
    : "";
  note(
    physical.backups.length ? table(prow) + archive : `no physical backups (${physical.status.message})`,
    `pgBackRest (stanza ${cfg.backup.stanza})`,
  );
});
