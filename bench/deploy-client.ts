#!/usr/bin/env bun
/**
 * bench-deploy-client: how long PLAN=1 and a full deploy to this host take,
 * run the way a user runs them (the entry script, HOST=local), against the
 * raw reference of the same run: a bare `nginx -t` of the three rendered sites.
 * Own client stack on 127.0.7.31-33 / 127.0.7.2 under /var/tmp; torn down at the end.
 * Prints figures; never part of make test.
 */
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { TOOLKIT_PATHS } from "../scripts/lib/deploy/bundle";
import { renderSites, wrapperConfig } from "../scripts/lib/deploy/nginx";
import { loadClientSettings } from "../scripts/lib/deploy/settings";

const ROOT = resolve(import.meta.dir, "..");
const NAME = "bench7";
const REMOTE_DIR = `/var/tmp/pgplatform-clients/${NAME}`;
const tmp = mkdtempSync(join(tmpdir(), "pgp-bench-deploy-"));
const src = join(tmp, "src");
const clients = join(tmp, "clients");

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = (cmd: string[], env: Record<string, string> = {}) => {
  const t0 = performance.now();
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    cwd: src,
    env: { ...process.env, CLIENTS_DIR: clients, CI: "true", ...env },
    encoding: "utf8",
    timeout: 900_000,
  });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { ms, stdout: r.stdout };
};
const deploy = (args: string[]) => time([process.execPath, "scripts/deploy-client.ts", "--client", NAME, ...args]);

function setup() {
  for (const p of TOOLKIT_PATHS)
    if (existsSync(join(ROOT, p))) cpSync(join(ROOT, p), join(src, p), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(src, "node_modules"));
  mkdirSync(join(clients, NAME), { recursive: true });
  writeFileSync(
    join(clients, NAME, "client.env"),
    [
      `CLIENT_NAME=${NAME}`,
      "HOST=local",
      `DOMAIN=${NAME}.internal`,
      "ACCESS=internal",
      "PROFILE=16",
      "PG_SHARED_BUFFERS=128MB",
      `REMOTE_DIR=${REMOTE_DIR}`,
      "KEEP_RELEASES=3",
      "RUNTIME=native",
      "MEMBER_ADDRESSES=127.0.7.31,127.0.7.32,127.0.7.33",
      "HAPROXY_ADDRESS=127.0.7.2",
      "API_ADDRESS=127.0.7.2",
    ].join("\n") + "\n",
  );
}

function teardown() {
  if (existsSync(`${REMOTE_DIR}/current`))
    spawnSync(
      "env",
      ["-C", `${REMOTE_DIR}/current`, `STACK=client-${NAME}`, "node_modules/.bin/bun", "scripts/clean.ts", "--yes"],
      { stdio: "ignore" },
    );
  // Anything still running from the bench's own dir (only this bench starts processes there).
  for (const d of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      if (Number(d) !== process.pid && readFileSync(`/proc/${d}/cmdline`, "utf8").includes(`${REMOTE_DIR}/`))
        process.kill(Number(d), "SIGKILL");
    } catch {
      /* gone */
    }
  }
  rmSync(REMOTE_DIR, { recursive: true, force: true });
  rmSync(join(src, ".state"), { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
}

if (existsSync(REMOTE_DIR)) throw new Error(`${REMOTE_DIR} exists: a previous bench did not finish; clean it first`);
const rows: string[][] = [];
try {
  setup();
  const planCold = deploy(["--plan", "--json"]).ms; // generates secrets and the private CA
  const planWarm = median([1, 2, 3].map(() => deploy(["--plan", "--json"]).ms));

  // Raw reference: the real nginx -t on the same three rendered sites (no bun, no preflight).
  const s = loadClientSettings(NAME, clients);
  const tls = join(clients, NAME, ".tls");
  const prefix = join(tmp, "nginx-raw");
  mkdirSync(join(prefix, "tmp"), { recursive: true });
  const sites = renderSites(src, s, {
    tlsCert: join(tls, "server.crt"),
    tlsKey: join(tls, "server.key"),
    webroot: join(tmp, "w"),
  });
  const files = sites.map((x) => {
    const p = join(prefix, x.name);
    writeFileSync(p, x.content);
    return p;
  });
  writeFileSync(join(prefix, "nginx.conf"), wrapperConfig(prefix, files));
  const raw = median(
    [1, 2, 3, 4, 5].map(() => time(["nginx", "-t", "-q", "-p", prefix, "-c", join(prefix, "nginx.conf")]).ms),
  );

  const first = deploy(["--yes", "--json"]);
  const firstJ = JSON.parse(first.stdout);
  const noop = [1, 2].map(() => deploy(["--yes", "--json"]));
  if (noop.some((n) => JSON.parse(n.stdout).changed))
    throw new Error("a re-deploy of the same bundle changed something");
  const rotate = deploy(["--yes", "--json", "--rotate", "DASHBOARD_PASSWORD"]).ms; // new release on a running platform
  const rollback = deploy(["--rollback", "--yes", "--json"]).ms;

  const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  rows.push(
    ["raw: nginx -t on the 3 rendered sites (median of 5)", f(raw), "1.0x"],
    [
      "PLAN=1, new client (secrets + private CA + render + validate + preflight)",
      f(planCold),
      `${(planCold / raw).toFixed(1)}x`,
    ],
    ["PLAN=1, existing client (median of 3)", f(planWarm), `${(planWarm / raw).toFixed(1)}x`],
    [
      `full deploy, cold (release 1: upload, platform bring-up, ${firstJ.apply.health.length} health checks)`,
      f(first.ms),
      "",
    ],
    ["re-deploy of the same bundle, no-op (median of 2)", f(median(noop.map((n) => n.ms))), ""],
    ["deploy of a changed bundle (ROTATE=DASHBOARD_PASSWORD, new release, platform running)", f(rotate), ""],
    ["ROLLBACK=1 (switch back + bring-up + health)", f(rollback), ""],
  );
} finally {
  teardown();
}
const w = Math.max(...rows.map((r) => r[0]!.length));
console.log(
  `deploy-client benchmark (${new Date().toISOString()}, HOST=local, load average ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")})`,
);
for (const r of rows) console.log(`  ${r[0]!.padEnd(w)}  ${r[1]!.padStart(8)}  ${r[2]}`);
