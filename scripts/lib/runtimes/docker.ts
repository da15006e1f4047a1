/**
 * The docker runtime behind the Runtime contract: scripts/lib/docker.ts
 * (compose/dev.yml) as it was, for dev-up and dev-down. Only HAProxy's and
 * nginx's ports leave the containers, so the verbs that reach members'
 * REST API, data dirs, processes or log files are refused.
 */
import { ensureEnvironments } from "../supabase/environments";
import { writeDockerMonitoring } from "../monitoring/compose";
import { ensureMonitorRole } from "../monitoring/up";
import type { Config } from "../config";
import { join } from "node:path";
import { composeCmd, dockerRenderedDir, dockerUp, writeDockerTls } from "../docker";
import { composeArgv, detectCompose } from "../compose-up";
import { run, type Cmd, type RunOptions, type RunResult } from "../exec";
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
  readonly verbs: readonly Verb[] = ["dev-up", "dev-down", "clean"];
  constructor(private readonly cfg: Config) {}

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

  status(): Promise<ProcessState[]> {
    return Promise.reject(unsupported(this.name, "the process list", this.composeHint("ps")));
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
