/**
 * The native runtime's process table: what runs for a stack (etcd, Patroni,
 * HAProxy, nginx, pgbouncer), each as a ProcSpec (command, pid file, log),
 * and how one of them is stopped. scripts/lib/procs.ts starts and signals them.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config, Member } from "../config";
import { ToolkitError } from "../errors";
import { which } from "../exec";
import { etcdOsUser } from "../os-user";
import { poolIniPath } from "../pool";
import { cmdlineOf, runningPid, stopProc, type ProcSpec } from "../procs";
import { etcdHome } from "../stack-files";

export interface Specs {
  etcd: ProcSpec[];
  patroni: ProcSpec[];
  haproxy: ProcSpec;
  nginx: ProcSpec;
  pool: ProcSpec;
}

const pidFile = (cfg: Config, name: string) => join(cfg.stateDir, "pids", `${name}.pid`);
export const logFile = (cfg: Config, name: string) => join(cfg.logsDir, `${name}.log`);
export const patroniConfigPath = (m: Member) => join(m.dir, "patroni.yml");

/** etcd's rendered config (natively beside its data, where the etcd user can read it). */
export const etcdConfigPath = (cfg: Config, m: Member) => join(etcdHome(cfg), `${m.etcdName}.yml`);

export function procSpecs(cfg: Config): Specs {
  const r = cfg.renderedDir;
  const etcd = cfg.members.map((m) => {
    const conf = etcdConfigPath(cfg, m);
    return {
      name: m.etcdName,
      cmd: ["etcd", "--config-file", conf],
      marker: conf,
      pidFile: pidFile(cfg, m.etcdName),
      logFile: logFile(cfg, m.etcdName),
      asUser: etcdOsUser(cfg),
    };
  });
  const patroni = cfg.members.map((m) => {
    const conf = patroniConfigPath(m);
    return {
      name: m.name,
      cmd: ["patroni", conf],
      marker: conf,
      pidFile: pidFile(cfg, m.name),
      logFile: logFile(cfg, m.name),
      asUser: cfg.pgOsUser,
      cwd: m.dir,
      env: { HOME: m.dir, PGPASSFILE: join(m.dir, "pgpass") },
    };
  });
  const hconf = join(r, "haproxy", "haproxy.cfg");
  const nconf = join(r, "nginx", "nginx.conf");
  return {
    etcd,
    patroni,
    haproxy: {
      name: "haproxy",
      cmd: ["haproxy", "-db", "-f", hconf],
      marker: hconf,
      pidFile: pidFile(cfg, "haproxy"),
      logFile: logFile(cfg, "haproxy"),
    },
    nginx: {
      name: "nginx",
      cmd: ["nginx", "-p", join(cfg.stateDir, "nginx"), "-c", nconf, "-g", "daemon off;"],
      marker: nconf,
      pidFile: pidFile(cfg, "nginx"),
      logFile: logFile(cfg, "nginx"),
    },
    // pgbouncer refuses to run as root: it runs as the postgres OS user, like the members.
    pool: {
      name: "pgbouncer",
      cmd: ["pgbouncer", poolIniPath(cfg)],
      marker: poolIniPath(cfg),
      pidFile: pidFile(cfg, "pgbouncer"),
      logFile: logFile(cfg, "pgbouncer"),
      asUser: cfg.pgOsUser,
    },
  };
}

/**
 * etcd as started before mutual TLS (plain HTTP, config in the rendered dir, run as root).
 * Only dev-down stops it; dev-up refuses to start beside it.
 */
export const legacyEtcdSpecs = (cfg: Config) =>
  procSpecs(cfg).etcd.map((s) => ({ ...s, marker: join(cfg.renderedDir, "etcd", `${s.name}.yml`) }));

export function refuseLegacyEtcd(cfg: Config): void {
  const old = legacyEtcdSpecs(cfg).filter((s) => runningPid(s));
  if (old.length) {
    throw new ToolkitError(
      "ETCD_TLS_UPGRADE",
      `${old.map((s) => s.name).join(", ")} still run without TLS (started by an older toolkit)`,
      "run `make dev-down` (it stops them), then `make dev-up`: etcd comes back with mutual TLS and Patroni rewrites its keys; Postgres data is kept",
    );
  }
}

export const allSpecs = (s: Specs) => [...s.etcd, ...s.patroni, s.haproxy, s.nginx, s.pool];

/** Binaries the native runtime needs, each with the Debian package that ships it. */
export const NATIVE_BINARIES: [bin: string, pkg: string][] = [
  ["etcd", "etcd-server"],
  ["etcdctl", "etcd-client"],
  ["patroni", "patroni"],
  ["haproxy", "haproxy"],
  ["nginx", "nginx"],
  ["pgbackrest", "pgbackrest"],
  ["openssl", "openssl"],
  ["pgbouncer", "pgbouncer"],
];

export async function checkBinaries(cfg: Config): Promise<void> {
  const missing: string[] = [];
  for (const [bin, pkg] of NATIVE_BINARIES) if (!(await which(bin))) missing.push(`${bin} (package ${pkg})`);
  if (!existsSync(join(cfg.pgBinDir, "postgres"))) missing.push(`${cfg.pgBinDir}/postgres (package postgresql-15)`);
  if (missing.length) {
    throw new ToolkitError(
      "MISSING_BINARY",
      `missing: ${missing.join(", ")}`,
      "run `make setup` (as root on Debian/Ubuntu it installs them with apt)",
    );
  }
}

export const postmasterAlive = (m: Member): boolean => postmasterPid(m) !== undefined;

/** The member's running postmaster: the pid in postmaster.pid, only while its command line names this data dir. */
export function postmasterPid(m: Member): number | undefined {
  try {
    const pid = Number(readFileSync(join(m.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return pid > 0 && cmdlineOf(pid)?.includes(m.dataDir) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Stop one component. For a Patroni member, also its Postgres: a Patroni that
 * outlives the grace period is SIGKILLed, and its postmaster would otherwise
 * run on as an orphan holding the member's port. SIGINT is Postgres's fast shutdown.
 */
export async function stopComponent(cfg: Config, spec: ProcSpec, graceMs: number): Promise<boolean> {
  const stopped = await stopProc(spec, graceMs);
  const member = cfg.members.find((m) => m.name === spec.name);
  const pid = member && postmasterPid(member);
  if (!pid) return stopped;
  process.kill(pid, "SIGINT");
  const deadline = Date.now() + graceMs;
  while (postmasterPid(member) === pid && Date.now() < deadline) await Bun.sleep(100);
  if (postmasterPid(member) === pid) process.kill(pid, "SIGKILL");
  return true;
}
