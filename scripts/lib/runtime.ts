/**
 * The runtime contract: how a stack's members run. Every verb opens the
 * stack's runtime (scripts/lib/runtimes/index.ts `openRuntime`) and either
 * works through this interface or is refused with RUNTIME_UNSUPPORTED.
 *
 * Implementations (scripts/lib/runtimes/):
 * - native: Debian's etcd, Patroni + Postgres, HAProxy, nginx, pgbouncer as
 *   local processes, each member on its own loopback address. Every verb.
 * - docker: compose/dev.yml, the same rendered templates in pinned images.
 *   dev-up, dev-down, clean, status, backup and restore: each member's Postgres,
 *   Patroni REST and etcd client port are published on its own address, as
 *   natively; pgBackRest runs in the leader's container. Data dirs, processes
 *   and log files stay inside the containers: the verbs needing them refuse.
 *
 * A multi-host runtime (one member per host over SSH, issue 14) fits as a
 * third implementation without changing the verbs: `up`/`down` render each
 * host's files and start or stop its systemd units over SSH; `exec(member)`
 * runs the argv array on that member's host through the SSH transport of
 * scripts/lib/deploy/target.ts (argv stays an array end to end); `pids`
 * answers from `systemctl show -p MainPID` on the host, so the pids are the
 * host's own (signal them with `exec(member, ["kill", ...])`, never locally);
 * `status` lists the units per host; `logs` names journald sources. The
 * runtime-independent operations (scripts/lib/cluster-ops.ts) already talk
 * only to the network (Patroni REST, etcd, Postgres), so they work unchanged.
 * It declares the verbs it carries out in `verbs`; the rest refuse.
 */
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { isRoot, run, which, type Cmd, type RunOptions, type RunResult } from "./exec";
import type { Health } from "./patroni";
import { isDebianLike, missingPackages } from "./setup";

export type RuntimeName = "native" | "docker";

/** Every make verb that acts on a stack (the runtime-independent ones, e.g. db-url or access-plan, open none). */
export const VERBS = [
  "dev-up",
  "dev-down",
  "status",
  "clean",
  "logs",
  "backup",
  "backup-list",
  "backup-verify",
  "backup-cron",
  "backup-drill",
  "restore",
  "restore-pitr",
  "new-app",
  "access-apply",
  "switchover",
  "restart-member",
  "test-failover",
  "alerts",
  "migrate-saas",
] as const;
export type Verb = (typeof VERBS)[number];

export type Progress = (component: string, message: string) => void;

export interface UpResult {
  started: string[];
  restarted: string[];
  changes: string[];
  health: Health;
  ms: number;
}

export interface DownResult {
  stopped: string[];
}

/** One process of the stack; pid null when it does not run (or, in a container, is not ours to see). */
export interface ProcessState {
  name: string;
  pid: number | null;
  /** a container's state as compose reports it ("Up (healthy)", "Exit 137"); absent natively */
  state?: string;
  /** false: a container that is not running, or whose healthcheck fails (the stack is then not healthy) */
  ready?: boolean;
}

/** A component's processes: its own (Patroni, etcd, HAProxy, ...) and, for a member, Postgres's postmaster. */
export interface ComponentPids {
  main?: number;
  postmaster?: number;
}

/** Where a component's log can be read. */
export interface LogSource {
  name: string;
  path: string;
}

export interface Runtime {
  readonly name: RuntimeName;
  /** the verbs this runtime carries out; openRuntime refuses the others */
  readonly verbs: readonly Verb[];
  /** bring the stack up (idempotent) */
  up(progress: Progress): Promise<UpResult>;
  /** stop the stack in a safe order; data is kept */
  down(progress: Progress): Promise<DownResult>;
  /** make clean, after down: what only the runtime holds (docker: the project's containers, volumes and network). */
  removeAll?(): Promise<string[]>;
  /** every process the runtime runs for the stack */
  status(): Promise<ProcessState[]>;
  /**
   * pgBackRest where the repository is, when that is not this host (docker: in the leader's
   * container, with the container's config and the password on stdin); absent: the local one.
   */
  pgbackrest?(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** run an argv array in a member's environment (its OS user, its dir) */
  exec(member: string, argv: Cmd, opts?: RunOptions): Promise<RunResult>;
  /** the process ids of one component (member, etcd member, haproxy, ...) */
  pids(component: string): Promise<ComponentPids>;
  /** start one stopped component (native: the process is started before the first await, so an exit handler may call it) */
  start(component: string): Promise<void>;
  /** stop one component; false when it was not running */
  stop(component: string, graceMs: number): Promise<boolean>;
  /** the components' logs */
  logs(): LogSource[];
}

const FIX_NATIVE = "run it with RUNTIME=native (install the packages with `make setup`)";

/** The refusal of a verb (or a runtime operation) the runtime does not carry out. */
export function unsupported(runtime: RuntimeName, what: string, fix = FIX_NATIVE): ToolkitError {
  return new ToolkitError("RUNTIME_UNSUPPORTED", `${what} is not supported by the ${runtime} runtime`, fix);
}

/** Can apt install what is missing here (Debian-like, apt-get, root or passwordless sudo)? */
async function packagesInstallable(): Promise<boolean> {
  if (!isDebianLike() || !(await which("apt-get"))) return false;
  if (isRoot()) return true;
  return Boolean(await which("sudo")) && (await run(["sudo", "-n", "true"], { nothrow: true })).code === 0;
}

/** The native runtime can run where its packages are present, or can be installed (dev-up installs them). */
export async function nativeCanRun(): Promise<boolean> {
  return (await missingPackages()).length === 0 || (await packagesInstallable());
}

export async function dockerEngineAnswers(): Promise<boolean> {
  if (!(await which("docker"))) return false;
  const r = await run(["docker", "info", "--format", "{{.ServerVersion}}"], { nothrow: true, timeoutMs: 5000 }).catch(
    () => undefined,
  );
  return Boolean(r && r.code === 0 && r.stdout.trim());
}

/**
 * The rule RUNTIME follows, on this machine and on a deploy target (scripts/lib/deploy/preflight.ts):
 * native or docker as given; auto is native wherever the native runtime can run, docker only where
 * it cannot and an engine answers, else native (whose up then names what is missing).
 */
export function resolveRuntime(want: RuntimeName | "auto", nativeRuns: boolean, engineAnswers: boolean): RuntimeName {
  if (want !== "auto") return want;
  return nativeRuns || !engineAnswers ? "native" : "docker";
}

/** RUNTIME from the environment, else the env file, resolved here (the engine is asked only when native cannot run). */
export async function pickRuntime(cfg: Config): Promise<RuntimeName> {
  const forced = process.env.RUNTIME;
  const want = forced === "native" || forced === "docker" || forced === "auto" ? forced : cfg.runtime;
  if (want !== "auto") return want;
  const nativeRuns = await nativeCanRun();
  return resolveRuntime(want, nativeRuns, !nativeRuns && (await dockerEngineAnswers()));
}
