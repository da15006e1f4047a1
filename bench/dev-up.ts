#!/usr/bin/env bun
/**
 * bench/dev-up: cold start to healthy, warm restart, and no-op re-run of the
 * whole stack (3 etcd, 3 Patroni/Postgres, HAProxy, nginx), on its own
 * address block (127.0.9.x, STACK=local-bench). The raw reference, measured in
 * the same run: one bare Postgres, `initdb` + `pg_ctl start -w`, the floor any
 * cluster bring-up sits on.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chownSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT_DIR } from "../scripts/lib/config";

const STACK = "local-bench";
const env = readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8")
  .replace(/^CLUSTER_NAME=.*$/m, "CLUSTER_NAME=pgplatform-bench")
  .replace(/^MEMBER_ADDRESSES=.*$/m, "MEMBER_ADDRESSES=127.0.9.11,127.0.9.12,127.0.9.13")
  .replace(/^HAPROXY_ADDRESS=.*$/m, "HAPROXY_ADDRESS=127.0.9.1")
  .replace(/^API_ADDRESS=.*$/m, "API_ADDRESS=127.0.9.1");
writeFileSync(join(ROOT_DIR, `envs/${STACK}.env`), env);

const script = (name: string, ...args: string[]) => {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(ROOT_DIR, "scripts", name), ...args], {
    env: { ...process.env, STACK },
    encoding: "utf8",
  });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${name} failed:\n${r.stdout}\n${r.stderr}`);
  return s;
};

function rawPostgres(): number {
  const dir = mkdtempSync(join(tmpdir(), "pgbench-raw-"));
  chmodSync(dir, 0o755);
  const root = process.getuid?.() === 0;
  if (root) chownSync(dir, 101, 104);
  const as = (cmd: string[]) =>
    root ? ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", ...cmd] : cmd;
  const bin = "/usr/lib/postgresql/15/bin";
  const t0 = performance.now();
  const sh = (cmd: string[]) => {
    const r = spawnSync(as(cmd)[0]!, as(cmd).slice(1), { encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stderr);
  };
  sh([
    `${bin}/initdb`,
    "-D",
    `${dir}/data`,
    "-k",
    "--auth=scram-sha-256",
    "--no-instructions",
    "-U",
    "postgres",
    "--pwfile",
    "/etc/hostname",
  ]);
  sh([
    `${bin}/pg_ctl`,
    "-D",
    `${dir}/data`,
    "-o",
    `-c listen_addresses=127.0.9.50 -c port=5432 -c unix_socket_directories=${dir}`,
    "-w",
    "start",
    "-l",
    `${dir}/log`,
  ]);
  const s = (performance.now() - t0) / 1000;
  sh([`${bin}/pg_ctl`, "-D", `${dir}/data`, "-m", "fast", "-w", "stop"]);
  rmSync(dir, { recursive: true, force: true });
  return s;
}

const fmt = (s: number) => `${s.toFixed(2)} s`;
try {
  script("clean.ts", "--yes");
  const raw = rawPostgres();
  const cold = script("dev-up.ts", "--no-install");
  const noop = script("dev-up.ts", "--no-install");
  const down = script("dev-down.ts");
  const warm = script("dev-up.ts", "--no-install");
  console.log("bench/dev-up (2-core machine, fast LAN profile)");
  console.log(`  raw: one bare Postgres, initdb + pg_ctl start   ${fmt(raw)}`);
  console.log(
    `  cold start to healthy (3 etcd, 3 members, sync standby, HAProxy, nginx, DBs)   ${fmt(cold)}   ${(cold / raw).toFixed(1)}x raw   target <= 30 s`,
  );
  console.log(`  no-op re-run   ${fmt(noop)}   target <= 3 s`);
  console.log(`  dev-down   ${fmt(down)}`);
  console.log(`  warm restart (data kept) to healthy   ${fmt(warm)}   ${(warm / raw).toFixed(1)}x raw`);
} finally {
  script("clean.ts", "--yes");
  rmSync(join(ROOT_DIR, `envs/${STACK}.env`), { force: true });
}
