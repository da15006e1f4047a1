/**
 * The docker runtime behind the Runtime contract: scripts/lib/docker.ts
 * (compose/dev.yml). HAProxy, pgbouncer and nginx are published as natively, and
 * so are each member's Postgres, Patroni REST and etcd client port (on the member's
 * address): make status and the backups reach the cluster over the network
 * unchanged. pgBackRest runs in the leader's container (its repository is the
 * shared `pgbackrest` volume). The verbs that need members' data dirs, processes
 * or log files on this host are refused.
 */
import { ensureEnvironments } from "../supabase/environments";
import { writeDockerMonitoring } from "../monitoring/compose";
import { ensureMonitorRole } from "../monitoring/up";
import type { Config } from "../config";
import { join } from "node:path";
import { composeCmd, dockerRenderedDir, dockerUp, writeDockerTls } from "../docker";
import { composeArgv, detectCompose } from "../compose-up";
import { dockerPgbackrestArgv } from "../compose-pgbackrest";
import { isReady, parseV1Ps, parseV2Ps } from "../compose-ps";
import { ToolkitError } from "../errors";
import { run, type Cmd, type RunOptions, type RunResult } from "../exec";
import { clusterView, isRunning } from "../patroni";
import {
  unsupported,
  type ComponentPids,
  type DownResult,
  type LogSource,
  type ProcessState,
  type Progress,
  type Runtime,
  type UpResult,
  type Verb,
} from "../runtime";

/** `docker compose exec` in a member's container, argv as an array. */
export const dockerExecCmd = (cfg: Config, member: string, argv: Cmd) => composeCmd(cfg, "exec", "-T", member, ...argv);

export class DockerRuntime implements Runtime {
  readonly name = "docker" as const;
  readonly verbs: readonly Verb[];
  constructor(private readonly cfg: Config) {
    // status, backup and restore reach the members on their own addresses (compose/dev-members.yml)
    this.verbs = [
      "dev-up",
      "dev-down",
      "clean",
      ...(cfg.docker.publishMembers ? (["status", "backup", "restore"] as const) : []),
    ];
  }

  /** MONITORING=true: Prometheus, Alertmanager and Grafana in an override (monitoring/compose.ts), written first. */
  async up(progress: Progress): Promise<UpResult> {
    // Prometheus's copy of the etcd client pair comes from the stack's docker TLS files
    await writeDockerTls(this.cfg);
    writeDockerMonitoring(this.cfg, dockerRenderedDir(this.cfg));
    // postgres_exporter's login role, made with the databases (before any exporter starts)
    const prepare = async (c: Config) => [
      ...(await ensureEnvironments(c)),
      ...(c.monitoring.enabled ? await ensureMonitorRole(c) : []),
    ];
    return dockerUp(this.cfg, progress, prepare);
  }

  /** With the compose dev-up found (v1 where no `docker compose` exists: the podman run of issue 21). */
  async down(): Promise<DownResult> {
    const f = await detectCompose();
    await run(composeArgv(this.cfg, f, join(dockerRenderedDir(this.cfg), "compose.env"), "stop"), {
      timeoutMs: 300_000,
    });
    return { stopped: ["compose"] };
  }

  /** make clean: `down -v` removes the project's containers, named volumes (the members' data) and network. */
  async removeAll(): Promise<string[]> {
    const f = await detectCompose();
    const env = join(dockerRenderedDir(this.cfg), "compose.env");
    await run(composeArgv(this.cfg, f, env, "down", "-v", "--remove-orphans", "-t", "10"), { timeoutMs: 300_000 });
    return [`removed the ${this.cfg.clusterName} containers, volumes and network (${f.argv.join(" ")} down -v)`];
  }

  exec(member: string, argv: Cmd, opts: RunOptions = {}): Promise<RunResult> {
    return run(dockerExecCmd(this.cfg, member, argv), opts);
  }

  private composeHint(args: string): string {
    return `use \`${composeCmd(this.cfg, ...args.split(" ")).join(" ")}\`, or run the stack with RUNTIME=native`;
  }

  /** The project's containers as compose lists them (state and health); pids stay the engine's. */
  async status(): Promise<ProcessState[]> {
    const f = await detectCompose();
    const env = join(dockerRenderedDir(this.cfg), "compose.env");
    const argv = composeArgv(this.cfg, f, env, "ps", ...(f.kind === "v2" ? ["--all", "--format", "json"] : []));
    const r = await run(argv, { nothrow: true, timeoutMs: 60_000 });
    if (r.code !== 0)
      throw new ToolkitError(
        "COMPOSE_PS_FAILED",
        `${f.argv.join(" ")} ps failed for project ${this.cfg.clusterName}`,
        "is the engine up (DOCKER_HOST)? start the stack with `make dev-up`",
        r.stderr,
      );
    const rows = f.kind === "v2" ? parseV2Ps(r.stdout) : parseV1Ps(r.stdout);
    return rows.map((c) => ({ name: c.name, pid: null, state: c.state, ready: isReady(c) }));
  }

  /** pgBackRest in the leader's container: only the primary's own data dir is in its config. */
  async pgbackrest(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const view = await clusterView(this.cfg);
    const leader = view?.members.find((m) => m.role === "leader" && isRunning(m));
    if (!leader)
      throw new ToolkitError(
        "NO_LEADER",
        "no running leader to run pgBackRest in",
        "see `make status`; pgBackRest runs in the leader's container",
      );
    const f = await detectCompose();
    const env = join(dockerRenderedDir(this.cfg), "compose.env");
    const argv = dockerPgbackrestArgv(this.cfg, (...a) => composeArgv(this.cfg, f, env, ...a), leader.name, args);
    return run(argv, { timeoutMs: 3_600_000, ...opts, input: `${this.cfg.secrets.POSTGRES_PASSWORD}\n` });
  }

  pids(component: string): Promise<ComponentPids> {
    return Promise.reject(
      unsupported(this.name, `the process ids of ${component}`, this.composeHint(`top ${component}`)),
    );
  }

  start(component: string): Promise<void> {
    return Promise.reject(
      unsupported(this.name, `starting ${component} alone`, this.composeHint(`start ${component}`)),
    );
  }

  stop(component: string): Promise<boolean> {
    return Promise.reject(unsupported(this.name, `stopping ${component} alone`, this.composeHint(`stop ${component}`)));
  }

  logs(): LogSource[] {
    throw unsupported(this.name, "make logs", this.composeHint("logs"));
  }
}
