/**
 * Starting compose/dev.yml in order, with compose v2 (`docker compose`) or v1
 * (`docker-compose` 1.29, Debian's): the database cluster first, then the
 * databases and login roles the Supabase services log in with, then those
 * services. A plain `up --wait` started every client before its database and
 * role existed, so each restart-looped on first boot (issue 13, item 4).
 *
 * v1 has no `up --wait` (v2.1+): there the services' health is read from
 * `docker-compose ps` until every started service is healthy (or running, when
 * it has no healthcheck). Ordering never relies on depends_on conditions v1
 * lacks: the files use only service_started / service_healthy, and the order
 * between the stages is this module's.
 */
import { dirname, join } from "node:path";
import { composeFileArgs } from "./compose-files";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { run, which } from "./exec";
import { ensureDatabases, probeRoute } from "./cluster-ops";
import type { Progress, UpResult } from "./runtime";
import { ensureDockerStanza } from "./compose-pgbackrest";
import { isReady, parseV1Ps } from "./compose-ps";
import { assessCluster, clusterView } from "./patroni";

export interface ComposeFlavour {
  kind: "v1" | "v2";
  /** the program and its leading arguments: ["docker", "compose"] or ["docker-compose"] */
  argv: string[];
  version: string;
}

/** `docker compose version --short` prints "2.24.5" (or "v2.24.5"); `docker-compose version --short` "1.29.2". */
export function parseComposeVersion(kind: "v1" | "v2", out: string): ComposeFlavour | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(out.trim());
  if (!m) return undefined;
  const major = Number(m[1]);
  if (kind === "v2" && major < 2) return undefined;
  return {
    kind: major >= 2 ? "v2" : "v1",
    argv: kind === "v2" ? ["docker", "compose"] : ["docker-compose"],
    version: `${m[1]}.${m[2]}.${m[3]}`,
  };
}

/** v2 when the docker CLI has the compose plugin, else Debian's docker-compose; neither is an error naming both. */
export async function detectCompose(): Promise<ComposeFlavour> {
  if (await which("docker")) {
    const r = await run(["docker", "compose", "version", "--short"], { nothrow: true, timeoutMs: 10_000 });
    const f = r.code === 0 ? parseComposeVersion("v2", r.stdout) : undefined;
    if (f) return f;
  }
  if (await which("docker-compose")) {
    const r = await run(["docker-compose", "version", "--short"], { nothrow: true, timeoutMs: 10_000 });
    const f = r.code === 0 ? parseComposeVersion("v1", r.stdout) : undefined;
    if (f) return f;
  }
  throw new ToolkitError(
    "NO_COMPOSE",
    "neither `docker compose` (v2) nor `docker-compose` (v1) answers",
    "install Docker's compose plugin, or on Debian `apt-get install docker-compose`",
  );
}

export const composeFile = (cfg: Config) => join(cfg.rootDir, "compose", "dev.yml");

/** compose/dev.yml and the stack's rendered overrides (compose-files.ts; they sit beside the env file). */
export const composeArgv = (cfg: Config, f: ComposeFlavour, envFile: string, ...args: string[]) => [
  ...f.argv,
  "-p",
  cfg.clusterName,
  ...composeFileArgs(cfg, dirname(envFile)),
  "--env-file",
  envFile,
  ...args,
];

/** Stage 1: etcd, the Patroni members and HAProxy (compose/dev.yml's service names). */
export const clusterServices = (cfg: Config) => [
  ...cfg.members.map((m) => m.etcdName),
  ...cfg.members.map((m) => m.name),
  "haproxy",
];

/**
 * `up -d` for a stage; v2 waits for the stage's healthchecks itself. `noDeps`: a stage that names
 * its services after the cluster is up (nginx's depends_on names Kong, which DOCKER_SERVICES=cluster+nginx leaves out).
 */
export const upArgs = (f: ComposeFlavour, services: string[], noDeps = false) => [
  "up",
  "-d",
  ...(f.kind === "v2" ? ["--wait"] : []),
  ...(noDeps ? ["--no-deps"] : []),
  ...services,
];

/**
 * From v1's `docker-compose ps` table, the containers not ready yet: "(health: starting)",
 * "(unhealthy)", or not "Up" at all (Exit, Restarting). "Up" alone (no healthcheck) is ready.
 */
export const v1NotReady = (psText: string): string[] =>
  parseV1Ps(psText)
    .filter((c) => !isReady(c))
    .map((c) => `${c.name}: ${c.state}`);

async function waitV1(
  cfg: Config,
  f: ComposeFlavour,
  envFile: string,
  services: string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  while (Date.now() < deadline) {
    const r = await run(composeArgv(cfg, f, envFile, "ps", ...services), { nothrow: true, timeoutMs: 30_000 });
    last = r.code === 0 ? v1NotReady(r.stdout) : [r.stderr.trim() || "docker-compose ps failed"];
    if (!last.length) return;
    await Bun.sleep(2000);
  }
  throw new ToolkitError(
    "UP_FAILED",
    `not healthy after ${timeoutMs / 1000} s: ${last.join("; ")}`,
    `run \`docker-compose -p ${cfg.clusterName} logs\` for the failing service`,
  );
}

async function upStage(
  cfg: Config,
  f: ComposeFlavour,
  envFile: string,
  services: string[],
  timeoutMs: number,
  noDeps = false,
): Promise<void> {
  const r = await run(composeArgv(cfg, f, envFile, ...upArgs(f, services, noDeps)), { nothrow: true, timeoutMs });
  if (r.code !== 0)
    throw new ToolkitError(
      "UP_FAILED",
      `${f.argv.join(" ")} up failed (${services.join(", ") || "all services"})`,
      `run \`${f.argv.join(" ")} -p ${cfg.clusterName} logs\` for the failing service`,
      r.stderr,
    );
  if (f.kind === "v1") await waitV1(cfg, f, envFile, services, timeoutMs);
}

/** Until HAProxy routes both ways (containers being up proves little). */
async function waitRoutes(cfg: Config, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let problems: string[] = [];
  while (Date.now() < deadline) {
    const rw = await probeRoute(cfg, "rw");
    const ro = await probeRoute(cfg, "ro");
    problems = [
      ...(rw && !rw.inRecovery ? [] : ["read-write port does not reach a primary"]),
      ...(ro && ro.inRecovery ? [] : ["read-only port does not reach a replica"]),
    ];
    if (!problems.length) return;
    await Bun.sleep(1000);
  }
  throw new ToolkitError("CLUSTER_UNHEALTHY", problems.join("; "), "run `docker compose logs pg1 pg2 pg3 haproxy`");
}

export type Stage =
  | { stage: "cluster"; services: string[] }
  | { stage: "prepare" }
  /** services: those to start (and their depends_on); empty: every service the file has */
  | { stage: "clients"; services: string[] };

/**
 * The start-up order: the cluster, then the databases and login roles (ensureDatabases) and the
 * pgBackRest stanza, then every other service. DOCKER_SERVICES=cluster stops after the second
 * stage with pgbouncer alone (no Supabase service, Kong or nginx); cluster+nginx adds nginx, whose
 * / then proxies to the placeholder that answers 502 (as natively) instead of Kong.
 */
export const startPlan = (cfg: Config): Stage[] => [
  { stage: "cluster", services: clusterServices(cfg) },
  { stage: "prepare" },
  {
    stage: "clients",
    services: { all: [], cluster: ["pgbouncer"], "cluster+nginx": ["pgbouncer", "nginx"] }[cfg.docker.services],
  },
];

/** Runs startPlan; returns dev-up's result. */
export async function composeUpInOrder(
  cfg: Config,
  envFile: string,
  progress: Progress,
  t0 = Date.now(),
  prepare: (cfg: Config) => Promise<string[]> = async () => [],
): Promise<UpResult> {
  const f = await detectCompose();
  const changes: string[] = [];
  for (const s of startPlan(cfg)) {
    if (s.stage === "cluster") {
      progress("compose", `${f.argv.join(" ")} ${f.version}: cluster (${s.services.join(", ")})`);
      await upStage(cfg, f, envFile, s.services, 600_000);
      await waitRoutes(cfg, 180_000);
    } else if (s.stage === "prepare") {
      progress("compose", "databases and login roles");
      changes.push(...(await ensureDatabases(cfg)));
      // Supabase's database side (scripts/lib/supabase/), before any of its services starts.
      changes.push(...(await prepare(cfg)));
      changes.push(await ensureDockerStanza(cfg, (...a) => composeArgv(cfg, f, envFile, ...a)));
    } else {
      progress("compose", s.services.length ? s.services.join(", ") : "Supabase services, gateway and nginx");
      await upStage(cfg, f, envFile, s.services, 600_000, s.services.length > 0);
    }
  }
  // the members' REST APIs are published on their addresses: the same view as natively (dev-up prints the leader)
  const view = await clusterView(cfg);
  return {
    started: ["compose"],
    restarted: [],
    changes,
    health: view ? assessCluster(cfg, view) : { ok: true, running: cfg.members.length, problems: [] },
    ms: Date.now() - t0,
  };
}
