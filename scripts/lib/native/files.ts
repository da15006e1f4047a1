/**
 * The native runtime's files and ports: every rendered file written with its
 * owner (member dirs the postgres OS user's, etcd's data dirs etcd's, logs
 * root's), and the check that every port a stopped component will bind is free.
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { ensureEtcdTls, etcdTlsFiles } from "../etcd-tls";
import { etcdOwner, pgOwner } from "../os-user";
import { portFree, portHolder } from "../ports";
import { runningPid, type ProcSpec } from "../procs";
import { writeIfChanged } from "../render";
import { ensureHaproxySocketDir, ensureSocketDir } from "../rundir";
import { ensureDirNoFollow, writeFileNoFollow } from "../safe-fs";
import { ensureStackDirs } from "../state-dir";
import { etcdHome, nativeEtcdTlsDir, patroniEtcdTlsFiles, renderStack, stackHttpAddress } from "../stack-files";
import { postmasterAlive, type Specs } from "./specs";

function listeners(cfg: Config, s: Specs): { spec: ProcSpec; address: string; port: number; what: string }[] {
  const out = [];
  for (const [i, m] of cfg.members.entries()) {
    out.push({ spec: s.etcd[i]!, address: m.address, port: m.etcdClientPort, what: `etcd ${m.etcdName} client` });
    out.push({ spec: s.etcd[i]!, address: m.address, port: m.etcdPeerPort, what: `etcd ${m.etcdName} peer` });
    out.push({ spec: s.patroni[i]!, address: m.address, port: m.pgPort, what: `Postgres ${m.name}` });
    out.push({ spec: s.patroni[i]!, address: m.address, port: m.restPort, what: `Patroni REST ${m.name}` });
  }
  out.push({ spec: s.haproxy, address: cfg.haproxy.address, port: cfg.haproxy.rwPort, what: "HAProxy read-write" });
  out.push({ spec: s.haproxy, address: cfg.haproxy.address, port: cfg.haproxy.roPort, what: "HAProxy read-only" });
  out.push({ spec: s.haproxy, address: cfg.haproxy.address, port: cfg.haproxy.statsPort, what: "HAProxy stats" });
  out.push({ spec: s.nginx, address: stackHttpAddress(cfg), port: cfg.api.port, what: "nginx API" });
  out.push({ spec: s.pool, address: cfg.pool.address, port: cfg.pool.port, what: "pgbouncer" });
  return out;
}

/** Every port a stopped component will bind must be free; name the holder otherwise. */
export async function checkPorts(cfg: Config, s: Specs): Promise<void> {
  for (const l of listeners(cfg, s)) {
    if (runningPid(l.spec)) continue;
    // A Postgres left running by a killed Patroni holds its port; Patroni adopts it on start.
    if (l.what.startsWith("Postgres") && postmasterAlive(cfg.members.find((m) => m.name === l.spec.name)!)) continue;
    if (!(await portFree(l.address, l.port))) {
      const holder = await portHolder(l.address, l.port);
      throw new ToolkitError(
        "PORT_IN_USE",
        `${l.address}:${l.port} (${l.what}) is already in use by ${holder}`,
        `stop that process, or change the port in ${cfg.file}`,
      );
    }
  }
}

/**
 * Render every file; returns the names of components whose config changed.
 * Member dirs and everything in them belong to postgres, the etcd data dirs to
 * etcd: those are created, chowned and written without following a symlink
 * their owner may have planted (scripts/lib/safe-fs.ts).
 */
export async function writeStackFiles(cfg: Config): Promise<Set<string>> {
  const changed = new Set<string>();
  const ids = pgOwner(cfg);
  const etcdIds = etcdOwner(cfg);
  ensureStackDirs(cfg);
  for (const d of [
    cfg.reportsDir,
    join(cfg.stateDir, "pids"),
    join(cfg.stateDir, "nginx", "tmp"),
    join(cfg.stateDir, "nginx", "apps"),
  ]) {
    mkdirSync(d, { recursive: true });
  }
  // Logs carry queries, paths and addresses: root's alone (every component's log is opened by us).
  ensureDirNoFollow(cfg.logsDir, 0o700);
  ensureDirNoFollow(etcdHome(cfg), 0o755);
  // The plain-HTTP etcd of older versions kept its data here; its peer URLs say http, so it cannot be reused.
  rmSync(join(cfg.stateDir, "etcd"), { recursive: true, force: true });
  const tlsChanges = await ensureEtcdTls(cfg, etcdTlsFiles(nativeEtcdTlsDir(cfg)), { etcd: etcdIds });
  if (tlsChanges.length) for (const m of cfg.members) changed.add(m.etcdName);
  for (const m of cfg.members) ensureDirNoFollow(join(etcdHome(cfg), m.etcdName), 0o700, etcdIds);
  const tls = etcdTlsFiles(nativeEtcdTlsDir(cfg));
  ensureHaproxySocketDir(cfg.runtimeDir, Boolean(cfg.pgOsUser), cfg.haproxy.rwPort);
  for (const f of renderStack(cfg, "native")) {
    if (f.member) {
      const m = cfg.members.find((x) => x.name === f.member)!;
      ensureDirNoFollow(m.dir, 0o700, ids);
      ensureSocketDir(cfg.runtimeDir, m.socketDir, ids, Boolean(cfg.pgOsUser), m.pgPort);
      if (writeIfChanged(join(m.dir, "patroni.yml"), f.content, { mode: 0o600, ...(ids ?? {}) })) changed.add(m.name);
      // Patroni's own copies of the CA and the etcd client pair (the key 0600, postgres's).
      const mine = patroniEtcdTlsFiles(m);
      let tlsChanged = writeFileNoFollow(mine.ca, readFileSync(tls.ca), { mode: 0o644, owner: ids });
      tlsChanged =
        writeFileNoFollow(mine.cert, readFileSync(tls.client.cert), { mode: 0o644, owner: ids }) || tlsChanged;
      tlsChanged = writeFileNoFollow(mine.key, readFileSync(tls.client.key), { mode: 0o600, owner: ids }) || tlsChanged;
      if (tlsChanged) changed.add(m.name);
    } else {
      const component = f.path.split("/")[0]!; // etcd, haproxy, nginx
      const name = component === "etcd" ? f.path.split("/")[1]!.replace(".yml", "") : component;
      // etcd's config sits in its home, root's and readable by the etcd group only; the others stay in the rendered dir.
      if (component === "etcd") {
        if (
          writeIfChanged(join(cfg.memberRoot, f.path), f.content, {
            mode: etcdIds ? 0o640 : 0o600,
            ...(etcdIds ? { uid: 0, gid: etcdIds.gid } : {}),
          })
        )
          changed.add(name);
      } else if (writeIfChanged(join(cfg.renderedDir, f.path), f.content, { mode: f.secret ? 0o600 : 0o644 }))
        changed.add(name);
    }
  }
  return changed;
}
