/**
 * The joining host's part of make cluster-replace: its etcd joins the
 * running cluster, data of an earlier membership is moved aside, and the
 * leader's pg_hba is asked whether it lets the new host replicate yet.
 */
import pg from "pg";
import { ROOT_DIR } from "../config";
import { installFileCommand, runningCommand, startCommand } from "./commands";
import { must, waitFor } from "./deploy";
import type { HostConn } from "./remote";
import { hostPaths, renderEtcd, type ClusterSecrets } from "./render";
import { joiningEtcdYml, staleDataCommands } from "./replace-plan";
import type { ClusterSettings } from "./settings";
import { etcdHealthy } from "./status";
import { operatorEtcdTls } from "./tls";

export const FIX =
  "fix the host as the line below says, then re-run make cluster-replace (it continues where it stopped)";

/** Has the leader's pg_hba the new host yet (Patroni wrote it after its reload)? Asked through the VIP. */
export async function hbaAllows(s: ClusterSettings, sec: ClusterSecrets, address: string): Promise<boolean> {
  const c = new pg.Client({
    host: s.vip,
    port: s.ports.rw,
    user: "postgres",
    password: sec.POSTGRES_PASSWORD,
    database: "postgres",
    connectionTimeoutMillis: 3000,
  });
  c.on("error", () => {});
  try {
    await c.connect();
    const r = await c.query("SELECT count(*)::int AS n FROM pg_hba_file_rules WHERE address = $1", [address]);
    return (r.rows[0] as { n: number }).n > 0;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Before a service's first start on the joining host: its data from an earlier membership moved aside. */
export async function moveStaleAside(c: HostConn, next: ClusterSettings, service: "etcd" | "patroni") {
  const stale = staleDataCommands(next, c.host, new Date().toISOString().replace(/[-:]|\.\d+/g, ""))[service];
  if ((await c.exec(stale.test, { nothrow: true })).code !== 0) return;
  for (const cmd of stale.moveAside) await must(c, cmd, `moving ${service}'s earlier data aside`, { fix: FIX });
}

/** etcd on the new host: started once with initial-cluster-state existing, then its file as every deploy renders it. */
export async function etcdJoin(next: ClusterSettings, c: HostConn): Promise<void> {
  const p = hostPaths(next, c.host);
  const running = (await c.exec(runningCommand(next, c.host, "etcd"), { nothrow: true })).code === 0;
  const normal = { path: p.etcdYml, mode: 0o644, owner: "root" as const };
  const yml = renderEtcd(ROOT_DIR, next, c.host);
  if (!running) {
    await moveStaleAside(c, next, "etcd");
    await must(c, installFileCommand(normal), "writing the joining etcd.yml", { input: joiningEtcdYml(yml), fix: FIX });
    await must(c, startCommand(next, c.host, "etcd"), "starting etcd", { fix: FIX });
  }
  const tls = operatorEtcdTls(next);
  await waitFor(
    `etcd of ${c.host.name} joined and healthy`,
    60_000,
    async () => ((await etcdHealthy(next, c.host.address, tls)) ? true : undefined),
    `see /var/log/pgplatform/${next.name}/etcd.log on ${c.host.ssh}`,
  );
  // initial-cluster* are read only while the data dir is empty: the usual file from now on (a re-deploy is a no-op).
  await must(c, installFileCommand(normal), "writing etcd.yml", { input: yml, fix: FIX });
}
