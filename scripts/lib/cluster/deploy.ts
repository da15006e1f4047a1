/**
 * make cluster-deploy: the plan first (nothing changes when it finds a
 * problem), then on every host over SSH: missing packages, directories, the
 * rendered files (only those whose checksum differs), the nonlocal-bind
 * sysctl; then etcd on all hosts, Patroni on all hosts (the first to take
 * etcd's initialize key bootstraps, the others clone from it), HAProxy and
 * vip-manager; then verify: 3 members with a sync standby, the VIP on the
 * leader's host, a write through the VIP. Re-running changes nothing and
 * restarts nothing when no file changed.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import { ROOT_DIR } from "../config";
import { ToolkitError } from "../errors";
import { ensureSecrets } from "../secrets";
import {
  aptInstallCommand,
  checksumCommand,
  directoryCommands,
  installFileCommand,
  nonlocalBindCommand,
  reloadPatroniCommand,
  serviceSpec,
  startCommand,
  stopCommand,
  type ServiceName,
} from "./commands";
import { planCluster, planError, type PlanReport } from "./plan";
import type { HostConn } from "./remote";
import { CLUSTER_SECRET_KEYS, renderHostFiles, type ClusterSecrets, type HostFile } from "./render";
import { clusterSecretsFile, type ClusterSettings } from "./settings";
import { clusterStatus, etcdHealthy, type ClusterStatus } from "./status";
import { ensureClusterTls, hostTlsFiles, operatorEtcdTls } from "./tls";

export interface DeployResult {
  plan: PlanReport;
  installed: Record<string, string[]>;
  changedFiles: Record<string, string[]>;
  started: string[];
  restarted: string[];
  status: ClusterStatus;
  ms: number;
}

export function clusterSecrets(s: ClusterSettings): ClusterSecrets {
  const all = ensureSecrets(clusterSecretsFile(s.name)).secrets as unknown as Record<string, string>;
  return Object.fromEntries(CLUSTER_SECRET_KEYS.map((k) => [k, all[k]!])) as unknown as ClusterSecrets;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** Paths whose content differs from what sha256sum printed (missing files included). Pure. */
export function changedFiles(files: Pick<HostFile, "path" | "content">[], sha256sumOut: string): string[] {
  const have = new Map(
    sha256sumOut
      .split("\n")
      .map((l) => l.match(/^([0-9a-f]{64}) [ *](.+)$/))
      .filter((m) => m !== null)
      .map((m) => [m![2]!, m![1]!]),
  );
  return files.filter((f) => have.get(f.path) !== sha256(f.content)).map((f) => f.path);
}

export async function must(
  c: HostConn,
  argv: readonly string[],
  what: string,
  opts: { input?: string; timeoutMs?: number; fix?: string } = {},
) {
  const r = await c.exec(argv, { nothrow: true, timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input });
  if (r.code !== 0)
    throw new ToolkitError(
      "HOST_STEP_FAILED",
      `${c.host.ssh}: ${what} failed (exit ${r.code})`,
      opts.fix ??
        "fix the host as the line below says, then re-run make cluster-deploy (it continues where it stopped)",
      (r.stderr || r.stdout).trim().split("\n").slice(-8).join("\n"),
    );
  return r;
}

/** Packages, directories, files, sysctl on one host. Returns the paths written. */
export async function prepareHost(
  s: ClusterSettings,
  sec: ClusterSecrets,
  c: HostConn,
  missing: string[],
): Promise<string[]> {
  if (missing.length)
    await must(c, aptInstallCommand(missing), `apt-get install ${missing.join(" ")}`, { timeoutMs: 900_000 });
  for (const d of directoryCommands(s, c.host)) await must(c, d, d.slice(2).join(" "));
  const files = [...renderHostFiles(ROOT_DIR, s, sec, c.host), ...hostTlsFiles(s, c.host)];
  const sums = await c.exec(checksumCommand(files.map((f) => f.path)), { nothrow: true });
  const changed = changedFiles(files, sums.stdout);
  for (const f of files.filter((x) => changed.includes(x.path)))
    await must(c, installFileCommand(f), `writing ${f.path}`, { input: f.content });
  await must(c, nonlocalBindCommand(), "sysctl net.ipv4.ip_nonlocal_bind=1");
  return changed;
}

export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  fix: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new ToolkitError("CLUSTER_NOT_READY", `${what} not reached within ${Math.round(timeoutMs / 1000)} s`, fix);
    await Bun.sleep(500);
  }
}

/**
 * Bring one service up on every host: start where not running (all hosts at
 * once); where it ran and its file changed, restart it one host at a time
 * (etcd keeps its quorum, the VIP keeps an HAProxy), waiting for `settled`
 * after each. Patroni re-reads its file on a reload: no restart.
 */
async function serviceUp(
  s: ClusterSettings,
  conns: HostConn[],
  name: ServiceName,
  changed: Record<string, string[]>,
  log: (m: string) => void,
  out: { started: string[]; restarted: string[] },
  settled: () => Promise<void> = async () => {},
) {
  const running = await Promise.all(
    conns.map(async (c) => {
      const r = await must(c, startCommand(s, c.host, name), `starting ${name}`);
      const was = /already running/.test(r.stdout + r.stderr);
      if (!was) out.started.push(`${name}@${c.host.name}`);
      return was;
    }),
  );
  for (const [i, c] of conns.entries()) {
    if (!running[i] || !changed[c.host.ssh]?.includes(serviceSpec(s, c.host, name).config)) continue;
    if (name === "patroni") await must(c, reloadPatroniCommand(s, c.host), "reloading patroni");
    else {
      await must(c, stopCommand(s, c.host, name), `stopping ${name}`);
      await must(c, startCommand(s, c.host, name), `starting ${name}`);
      await settled();
    }
    out.restarted.push(`${name}@${c.host.name}`);
  }
  log(`${name}: up on ${conns.map((c) => c.host.name).join(", ")}`);
}

/** A write through the VIP's read-write port, then a read on its read-only port. */
export async function verifyThroughVip(s: ClusterSettings, sec: ClusterSecrets): Promise<void> {
  const q = async (port: number, sql: string) => {
    const client = new pg.Client({
      host: s.vip,
      port,
      user: "postgres",
      password: sec.POSTGRES_PASSWORD,
      database: "postgres",
      connectionTimeoutMillis: 5000,
    });
    await client.connect();
    try {
      return (await client.query(sql)).rows[0] as Record<string, unknown>;
    } finally {
      await client.end().catch(() => {});
    }
  };
  const rw = await q(s.ports.rw, "SELECT pg_is_in_recovery() AS standby");
  if (rw.standby !== false)
    throw new ToolkitError(
      "VIP_NOT_PRIMARY",
      `${s.vip}:${s.ports.rw} reached a standby`,
      "check `make cluster-status`; HAProxy's /primary checks",
    );
  await q(s.ports.rw, "CREATE TABLE IF NOT EXISTS pgplatform_deploy_check (at timestamptz)");
  await q(s.ports.rw, "INSERT INTO pgplatform_deploy_check VALUES (now())");
  const ro = await q(s.ports.ro, "SELECT pg_is_in_recovery() AS standby");
  if (ro.standby !== true)
    throw new ToolkitError(
      "VIP_RO_NOT_STANDBY",
      `${s.vip}:${s.ports.ro} reached the primary`,
      "check HAProxy's /replica checks",
    );
}

export async function deployCluster(
  s: ClusterSettings,
  conns: HostConn[],
  log: (m: string) => void = () => {},
): Promise<DeployResult> {
  const t0 = Date.now();
  const plan = await planCluster(s, conns);
  const err = planError(plan);
  if (err) throw err;
  log(`plan: ${conns.length} hosts ready (${plan.ms} ms)`);
  const sec = clusterSecrets(s);
  const made = await ensureClusterTls(s);
  if (made.length) log(`etcd TLS: made ${made.join(", ")} in clusters/${s.name}/.tls/`);
  const installed: Record<string, string[]> = {};
  const changed: Record<string, string[]> = {};
  await Promise.all(
    conns.map(async (c, i) => {
      installed[c.host.ssh] = plan.hosts[i]!.missingPackages;
      changed[c.host.ssh] = await prepareHost(s, sec, c, plan.hosts[i]!.missingPackages);
    }),
  );
  log(
    `files: ${Object.values(changed).flat().length} written (${Object.entries(changed)
      .map(([h, f]) => `${h} ${f.length}`)
      .join(", ")})`,
  );
  const out = { started: [] as string[], restarted: [] as string[] };
  const tls = operatorEtcdTls(s);
  const etcdUp = () =>
    waitFor(
      "etcd healthy on every host",
      60_000,
      async () =>
        (await Promise.all(s.hosts.map((h) => etcdHealthy(s, h.address, tls)))).every(Boolean) ? true : undefined,
      `see make cluster-status and the etcd log on each host (/var/log/pgplatform/${s.name}/etcd.log)`,
    ).then(() => {});
  await serviceUp(s, conns, "etcd", changed, log, out, etcdUp);
  await etcdUp();
  await serviceUp(s, conns, "patroni", changed, log, out);
  await serviceUp(s, conns, "haproxy", changed, log, out);
  await serviceUp(s, conns, "vip-manager", changed, log, out);
  const status = await waitFor(
    "3 members running with a sync standby and the VIP on the leader's host",
    180_000,
    async () => {
      const st = await clusterStatus(s, conns);
      return st.health.ok ? st : undefined;
    },
    `run make cluster-status CLUSTER=${s.name}; the logs are in /var/log/pgplatform/${s.name}/ on each host`,
  );
  await waitFor(
    "a write through the VIP",
    30_000,
    async () =>
      verifyThroughVip(s, sec).then(
        () => true,
        () => undefined,
      ),
    `connect to ${s.vip}:${s.ports.rw} by hand; check HAProxy's log on the leader's host`,
  );
  log(
    `verified: leader ${status.leader}, sync standby ${status.syncStandby}, VIP ${s.vip} on ${status.vipHolder}, a write through ${s.vip}:${s.ports.rw}`,
  );
  return { plan, installed, changedFiles: changed, ...out, status, ms: Date.now() - t0 };
}

/** Stop every service on every host (reverse order); data stays. */
export async function stopCluster(s: ClusterSettings, conns: HostConn[]): Promise<void> {
  for (const name of ["vip-manager", "haproxy", "patroni", "etcd"] as ServiceName[]) {
    await Promise.all(conns.map((c) => must(c, stopCommand(s, c.host, name), `stopping ${name}`)));
  }
}
