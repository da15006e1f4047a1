#!/usr/bin/env bun
/** make backup-list: logical backups with their status, and pgBackRest's physical backups. */
import { loadConfig } from "./lib/config";
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { fmtBytes } from "./lib/backup/common";
import { isGood, listBackups } from "./lib/backup/manifest";
import { stanzaInfo } from "./lib/backup/pgbackrest";
import { note, table } from "./lib/ui";

const USAGE = `usage: make backup-list [ARGS=--json]
       bun scripts/backup-list.ts [--json]

Lists logical backups (id, status, databases, size, source) and pgBackRest's
physical backups with the WAL range available for make restore-pitr.`;

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { json: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
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
  const physical = await stanzaInfo(cfg).catch((e) => ({ status: { code: -1, message: (e as Error).message }, backups: [], archiveMin: undefined, archiveMax: undefined }));
  if (flags.json) return void console.log(JSON.stringify({ stack: cfg.stack, dir: cfg.backup.dir, logical, physical }, null, 2));
  const rows = [["id", "status", "size", "source", "databases", "physical"]];
  for (const b of logical) rows.push([b.id, b.good ? "good" : b.status, fmtBytes(b.bytes), b.source ?? "-", b.databases.join(","), b.physical ?? "-"]);
  note(logical.length ? table(rows) : `no logical backups in ${cfg.backup.dir}`, `logical backups (${cfg.backup.dir})`);
  const prow = [["label", "type", "started (UTC)", "size", "repo", "WAL"]];
  for (const b of physical.backups) prow.push([b.label, b.type, new Date(b.start * 1000).toISOString().replace("T", " ").slice(0, 19), fmtBytes(b.size), fmtBytes(b.repoSize), `${b.walStart}..${b.walStop}`]);
  const archive = physical.archiveMin ? `\nWAL archive ${physical.archiveMin} .. ${physical.archiveMax}` : "";
  note(physical.backups.length ? table(prow) + archive : `no physical backups (${physical.status.message})`, `pgBackRest (stanza ${cfg.backup.stanza})`);
});
