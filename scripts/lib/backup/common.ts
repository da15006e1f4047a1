/**
 * Small pieces every backup module shares: the progress callback type, the
 * postgres OS user's ids, directories it must own, and the UTC stamp that
 * names a backup folder.
 */
import { existsSync, statfsSync } from "node:fs";
import type { Config } from "../config";
import { run, type Cmd, type RunOptions } from "../exec";
import { pgOwner } from "../os-user";
import { ensureDirNoFollow } from "../safe-fs";
import { formatBytes } from "../ui";

/** Long work reports through this; entry scripts turn it into log lines or a progress bar. */
export type BackupProgress = (step: string, message: string, fraction?: number) => void;
export const quiet: BackupProgress = () => {};

export { pgOwner };

/**
 * A directory the postgres OS user owns (pgBackRest repo, scratch instances).
 * postgres controls what is inside its folders: a symlink there is refused, never followed.
 */
export function ensurePgDir(cfg: Config, dir: string, mode = 0o750): boolean {
  return ensureDirNoFollow(dir, mode, pgOwner(cfg));
}

/**
 * libpq options for the sessions that LOAD a dump (pg_restore, globals): a
 * database or role set `default_transaction_read_only = on` (an archive) is
 * restored as it is, but its load must be able to write; an app's
 * `ALTER DATABASE ... SET statement_timeout = '1ms'` must not cancel it.
 * Startup options outrank ALTER DATABASE / ALTER ROLE settings; the settings
 * themselves are carried and apply to every later session.
 */
const NO_TIMEOUTS = "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c lock_timeout=0";
export const LOAD_PGOPTIONS = { PGOPTIONS: `-c default_transaction_read_only=off ${NO_TIMEOUTS}` };
/** For pg_dump: its first queries run before it sets its own timeouts, under the database's. */
export const DUMP_PGOPTIONS = { PGOPTIONS: NO_TIMEOUTS };

/** Run as the postgres OS user from a directory it can enter (tools like psql complain about /root). */
export function runAsPg(cfg: Config, cmd: Cmd, opts: RunOptions = {}) {
  return run(cmd, {
    cwd: "/",
    ...opts,
    asUser: cfg.pgOsUser,
    env: { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, ...opts.env },
  });
}

/** Absolute path of a Postgres client or server binary (cron's PATH has no /usr/lib/postgresql). */
export const pgBin = (cfg: Config, name: string) => `${cfg.pgBinDir}/${name}`;

/** 2026-11-21T21:05:03.123Z -> 20261121T210503Z: sorts by time, safe in paths. */
export function backupStamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

export function stampToDate(stamp: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(stamp);
  if (!m) return undefined;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

export const BACKUP_ID_RE = /^\d{8}T\d{6}Z(-\d+)?$/;

export function freeBytes(dir: string): number {
  let d = dir;
  while (!existsSync(d)) d = d.replace(/\/[^/]*$/, "") || "/";
  const s = statfsSync(d);
  return Number(s.bavail) * Number(s.bsize);
}

/** Pure: is there room for `need` bytes with `free` available? A message naming both when not. */
export function spaceProblem(what: string, dir: string, needBytes: number, freeBytesAvail: number): string | undefined {
  if (freeBytesAvail >= needBytes) return undefined;
  return `${what}: ${dir} has ${formatBytes(freeBytesAvail)} free, needs about ${formatBytes(needBytes)}`;
}

/**
 * Pure: the lines of pg_restore / psql output that say what failed: the TOC
 * entry (the object), the server's ERROR line with its DETAIL, HINT and
 * CONTEXT, and the first line of the command. The tail of the output is
 * usually the failed statement's text, which names neither.
 */
export function serverErrorLines(stderr: string, max = 14): string[] {
  const lines = stderr.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (/^pg_restore: (from TOC entry|error:)|^psql:.*(ERROR|FATAL):|\b(ERROR|FATAL|DETAIL|HINT|CONTEXT):\s/.test(l))
      out.push(l.trimEnd());
    else if (/^Command was: /.test(l)) out.push(l.trimEnd().slice(0, 200));
  }
  const picked = out.length ? out : lines.filter((l) => l.trim()).slice(-3);
  return picked.slice(0, max);
}
