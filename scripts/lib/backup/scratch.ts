/**
 * Scratch Postgres instances: where verification and point-in-time restores
 * happen, never the live cluster. Each has its own data dir under
 * <member root>/scratch/<name>, runs as postgres, and is stopped and removed
 * afterwards unless the user asks to keep it. SCRAM everywhere, as in the
 * cluster: the superuser's password is the cluster's (verification restores
 * globals.sql, PITR restores the cluster's own data dir), so one secret reaches
 * both, passed as PGPASSWORD, never on a command line.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import type { LoadTarget } from "./load";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { tail } from "../exec";
import { CATALOG_ONLY_OPTIONS } from "../pg";
import { ensurePgDir, LOAD_PGOPTIONS, pgBin, pgOwner, runAsPg } from "./common";
import { writeFileNoFollow } from "../safe-fs";
import { ensureSocketDir, scratchSocketName } from "../rundir";

export interface Scratch {
  name: string;
  dir: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
  port: number;
  /** "" = no TCP at all (verification); an address on our loopback block for restore-pitr */
  address: string;
}

export const scratchRoot = (cfg: Config) => join(cfg.memberRoot, "scratch");

export function scratchFor(cfg: Config, name: string, address = ""): Scratch {
  const dir = join(scratchRoot(cfg), name);
  // The socket under the short runtime dir: <checkout>/.state/.../scratch/<name>/run would pass sun_path's 107 bytes.
  return {
    name,
    dir,
    dataDir: join(dir, "data"),
    socketDir: join(cfg.runtimeDir, scratchSocketName(name)),
    logFile: join(dir, "postgres.log"),
    port: cfg.members[0]!.pgPort,
    address,
  };
}

export function listScratch(cfg: Config): Scratch[] {
  if (!existsSync(scratchRoot(cfg))) return [];
  return readdirSync(scratchRoot(cfg)).map((n) => {
    const s = scratchFor(cfg, n);
    const addr = /^listen_addresses = '([^']*)'/m.exec(safeRead(join(s.dataDir, "postgresql.conf")))?.[1] ?? "";
    return { ...s, address: addr };
  });
}

const safeRead = (p: string) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
};

export function prepareScratchDirs(cfg: Config, s: Scratch): void {
  if (existsSync(s.dir))
    throw new ToolkitError(
      "SCRATCH_EXISTS",
      `scratch instance ${s.dir} already exists`,
      "remove it with `bun scripts/restore-pitr.ts --remove` (or delete the folder after stopping it)",
    );
  ensurePgDir(cfg, scratchRoot(cfg), 0o755);
  ensurePgDir(cfg, s.dir, 0o700);
  ensureSocketDir(cfg.runtimeDir, s.socketDir, pgOwner(cfg), Boolean(cfg.pgOsUser), s.port);
}

export async function initScratch(cfg: Config, s: Scratch): Promise<void> {
  prepareScratchDirs(cfg, s);
  // initdb reads the superuser's password from a file: 0600, the postgres user's, gone right after.
  const pwfile = join(s.dir, "initdb.pw");
  // The scratch dir is postgres's: never write through a symlink planted there.
  writeFileNoFollow(pwfile, cfg.secrets.POSTGRES_PASSWORD + "\n", { mode: 0o600, owner: pgOwner(cfg) });
  try {
    await runAsPg(
      cfg,
      [
        pgBin(cfg, "initdb"),
        "-D",
        s.dataDir,
        "-U",
        "postgres",
        "--auth=scram-sha-256",
        `--pwfile=${pwfile}`,
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
      ],
      { timeoutMs: 120_000 },
    );
  } finally {
    rmSync(pwfile, { force: true });
  }
}

/**
 * Our own postgresql.conf and pg_hba.conf (a restored data dir carries the
 * live member's, which name its paths). `extra` adds settings, e.g. the
 * max_* values recovery needs to be at least the primary's.
 */
export function writeScratchConf(
  cfg: Config,
  s: Scratch,
  extra: Record<string, string | number> = {},
  opts: { fast?: boolean } = {},
): void {
  const settings: Record<string, string | number> = {
    listen_addresses: s.address,
    port: s.port,
    unix_socket_directories: s.socketDir,
    shared_buffers: "128MB",
    max_connections: 50,
    logging_collector: "off",
    hba_file: join(s.dataDir, "pg_hba.conf"),
    ident_file: join(s.dataDir, "pg_ident.conf"),
    // A disposable instance: durability buys nothing, speed does.
    ...(opts.fast
      ? {
          fsync: "off",
          full_page_writes: "off",
          synchronous_commit: "off",
          wal_level: "minimal",
          max_wal_senders: 0,
          maintenance_work_mem: "256MB",
          checkpoint_timeout: "30min",
          max_wal_size: "4GB",
        }
      : {}),
    ...extra,
  };
  const conf = Object.entries(settings)
    .map(([k, v]) => `${k} = ${typeof v === "number" ? v : `'${String(v).replace(/'/g, "''")}'`}`)
    .join("\n");
  const hba = [
    "# scratch instance: passwords (SCRAM) on its private socket too, as in the cluster",
    "local all all scram-sha-256",
    // Passwords (as in the cluster) from the addresses the cluster itself allows.
    ...(s.address ? [`host all all ${cfg.pgHbaCidr} scram-sha-256`] : []),
  ].join("\n");
  const ids = pgOwner(cfg);
  for (const [f, body] of [
    ["postgresql.conf", conf],
    ["pg_hba.conf", hba],
    ["pg_ident.conf", ""],
  ] as const) {
    const p = join(s.dataDir, f);
    writeFileNoFollow(p, `# written by scripts/lib/backup/scratch.ts\n${body}\n`, { mode: 0o600, owner: ids });
  }
}

export async function startScratch(cfg: Config, s: Scratch, timeoutSec = 600): Promise<void> {
  ensureSocketDir(cfg.runtimeDir, s.socketDir, pgOwner(cfg), Boolean(cfg.pgOsUser), s.port);
  const r = await runAsPg(
    cfg,
    [pgBin(cfg, "pg_ctl"), "-D", s.dataDir, "-l", s.logFile, "-w", "-t", String(timeoutSec), "start"],
    { nothrow: true, timeoutMs: (timeoutSec + 30) * 1000 },
  );
  if (r.code !== 0) {
    // The scratch folder is removed after a failure: keep its log in the stack's logs, and put Postgres' own last lines in the message.
    const log = safeRead(s.logFile);
    const kept = join(cfg.logsDir, `scratch-${s.name}.log`);
    try {
      mkdirSync(cfg.logsDir, { recursive: true });
      writeFileSync(kept, log || r.stderr || r.stdout);
    } catch {}
    const last = tail(log || r.stderr || r.stdout, 3)
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .join(" | ");
    throw new ToolkitError(
      "SCRATCH_START_FAILED",
      `scratch instance ${s.name} did not start: ${last || "(no log)"}`,
      `see ${kept} (kept)`,
      tail(log || r.stderr || r.stdout, 12),
    );
  }
}

export function scratchRunning(s: Scratch): boolean {
  const pid = Number(safeRead(join(s.dataDir, "postmaster.pid")).split("\n")[0]);
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopScratch(cfg: Config, s: Scratch): Promise<void> {
  if (!scratchRunning(s)) return;
  await runAsPg(cfg, [pgBin(cfg, "pg_ctl"), "-D", s.dataDir, "-m", "fast", "-w", "-t", "120", "stop"], {
    nothrow: true,
    timeoutMs: 150_000,
  });
}

export async function removeScratch(cfg: Config, s: Scratch): Promise<void> {
  await stopScratch(cfg, s);
  if (scratchRunning(s))
    throw new ToolkitError(
      "SCRATCH_STOP_FAILED",
      `scratch instance ${s.name} is still running`,
      `stop it: pg_ctl -D ${s.dataDir} stop -m immediate`,
    );
  rmSync(s.dir, { recursive: true, force: true });
  rmSync(s.socketDir, { recursive: true, force: true });
}

export async function scratchClient(cfg: Config, s: Scratch, database = "postgres"): Promise<pg.Client> {
  const c = new pg.Client({
    host: s.socketDir,
    port: s.port,
    user: "postgres",
    password: cfg.secrets.POSTGRES_PASSWORD,
    database,
    application_name: "pgplatform-scratch",
    options: CATALOG_ONLY_OPTIONS,
  });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/** libpq arguments for tools (psql, pg_restore) talking to the scratch instance over its socket; pass scratchEnv(cfg) too. */
export const scratchConnArgs = (s: Scratch) => [
  "-h",
  s.socketDir,
  "-p",
  String(s.port),
  "-U",
  "postgres",
  "--no-password",
];

/** The password for tools run against a scratch instance (the cluster superuser's), as libpq reads it. */
export const scratchEnv = (cfg: Config) => ({ PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, ...LOAD_PGOPTIONS });

/** Where loadArchive (load.ts) connects to load a dump into a scratch instance. */
export const scratchLoadTarget = (cfg: Config, s: Scratch): LoadTarget => ({
  host: s.socketDir,
  port: s.port,
  superPassword: cfg.secrets.POSTGRES_PASSWORD,
  superClient: (database) => scratchClient(cfg, s, database),
});
