/**
 * A throwaway standalone PostgreSQL 15 (initdb + pg_ctl) for tests and
 * benchmarks that need a second server, e.g. a fake Supabase project as a
 * migration source. Runs as the `postgres` OS user when we are root, listens
 * on one address only, scram-sha-256 with a generated password, and is
 * stopped (by its postmaster pid) and removed by stop().
 */
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { Config } from "../../scripts/lib/config";
import { isRoot, osUserIds, run } from "../../scripts/lib/exec";
import { alive } from "../../scripts/lib/procs";
import { registerSecret } from "../../scripts/lib/redact";
import { generateSecret } from "../../scripts/lib/secrets";

export interface ScratchPg {
  host: string;
  port: number;
  password: string;
  dir: string;
  pid: number;
  /** postgresql://postgres:<pw>@host:port/<db> */
  url(database?: string, user?: string, password?: string): string;
  /** run SQL as the superuser through psql (file or text) */
  psql(database: string, sql: string, opts?: { file?: boolean }): Promise<string>;
  stop(): Promise<void>;
}

/** The scratch server's address in a stack's own block: 127.0.N.50 (HAProxy sits at 127.0.N.1). */
export const scratchAddress = (cfg: Config) => cfg.haproxy.address.replace(/\.\d+$/, ".50");

const SCRATCH_BASE = "/var/tmp";
const SCRATCH_DIR = /^pgplatform-it-(\d+)-[\w.-]+$/;

/**
 * Scratch servers of test processes that are gone (killed before their
 * afterAll ran): their postmaster would hold the address and port the next
 * run needs. A dir's name carries its test's pid; a postmaster is stopped
 * only while its command line names that dir.
 */
export async function clearStaleScratch(): Promise<string[]> {
  const cleared: string[] = [];
  for (const name of readdirSync(SCRATCH_BASE)) {
    const m = name.match(SCRATCH_DIR);
    if (!m || alive(Number(m[1]))) continue;
    const dir = join(SCRATCH_BASE, name);
    const pidFile = join(dir, "data", "postmaster.pid");
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").split("\n")[0]) : 0;
    let cmd = "";
    try {
      cmd = pid ? readFileSync(`/proc/${pid}/cmdline`, "utf8") : "";
    } catch {
      /* not running */
    }
    if (cmd.includes(dir)) {
      process.kill(pid, "SIGQUIT"); // postgres' immediate shutdown
      for (let i = 0; i < 200 && alive(pid); i++) await Bun.sleep(50);
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
    cleared.push(dir);
  }
  return cleared;
}

export async function startScratchPg(opts: {
  host: string;
  port?: number;
  binDir?: string;
  name?: string;
  settings?: Record<string, string>;
}): Promise<ScratchPg> {
  const bin = opts.binDir ?? "/usr/lib/postgresql/15/bin";
  const port = opts.port ?? 5432;
  await clearStaleScratch();
  const dir = `${SCRATCH_BASE}/pgplatform-it-${process.pid}-${opts.name ?? "scratch"}`;
  const data = join(dir, "data");
  const user = isRoot() ? "postgres" : undefined;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ids = user ? osUserIds("postgres") : undefined;
  if (user && !ids) throw new Error("no postgres OS user: install postgresql-15");
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const password = generateSecret(24);
  registerSecret(password);
  const pwfile = join(dir, "pw");
  writeFileSync(pwfile, password + "\n", { mode: 0o600 });
  if (ids) chownSync(pwfile, ids.uid, ids.gid);
  await run(
    [
      join(bin, "initdb"),
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=scram-sha-256",
      `--pwfile=${pwfile}`,
      "-E",
      "UTF8",
      "--locale=C.UTF-8",
    ],
    { asUser: user, timeoutMs: 120_000 },
  );
  rmSync(pwfile);
  const settings: Record<string, string> = {
    listen_addresses: `'${opts.host}'`,
    port: String(port),
    unix_socket_directories: `'${dir}'`,
    max_connections: "50",
    logging_collector: "off",
    ...opts.settings,
  };
  appendFileSync(
    join(data, "postgresql.conf"),
    "\n" +
      Object.entries(settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join("\n") +
      "\n",
  );
  appendFileSync(join(data, "pg_hba.conf"), `\nhost all all ${opts.host}/32 scram-sha-256\n`);
  await run([join(bin, "pg_ctl"), "-D", data, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"], {
    asUser: user,
    timeoutMs: 90_000,
  });
  const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  const url = (database = "postgres", u = "postgres", pw = password) =>
    `postgresql://${encodeURIComponent(u)}:${encodeURIComponent(pw)}@${opts.host}:${port}/${encodeURIComponent(database)}`;
  return {
    host: opts.host,
    port,
    password,
    dir,
    pid,
    url,
    async psql(database, sql, o = {}) {
      const args = [
        join(bin, "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        opts.host,
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        database,
      ];
      const r = await run(o.file ? [...args, "-f", sql] : args, {
        env: { PGPASSWORD: password },
        input: o.file ? undefined : sql,
        timeoutMs: 3_600_000,
      });
      return r.stdout;
    },
    async stop() {
      if (alive(pid)) {
        await run([join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"], {
          asUser: user,
          nothrow: true,
          timeoutMs: 60_000,
        });
        if (alive(pid)) {
          process.kill(pid, "SIGKILL");
          for (let i = 0; i < 100 && alive(pid); i++) await Bun.sleep(50);
        }
      }
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
}
