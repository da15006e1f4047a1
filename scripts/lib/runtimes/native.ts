/** The native runtime behind the Runtime contract (scripts/lib/runtime.ts): local processes from Debian's packages. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run, type Cmd, type RunOptions, type RunResult } from "../exec";
import { runningPid, startProc, type ProcSpec } from "../procs";
import {
  VERBS,
  type ComponentPids,
  type DownResult,
  type LogSource,
  type ProcessState,
  type Progress,
  type Runtime,
  type UpResult,
} from "../runtime";
import { nativeDown } from "../native/down";
import { allSpecs, postmasterPid, procSpecs, stopComponent } from "../native/specs";
import { nativeUp } from "../native/up";

/** A member's environment: the OS user, dir and variables its Patroni runs with. */
export function memberRunOptions(cfg: Config, member: string): RunOptions {
  const m = cfg.members.find((x) => x.name === member);
  if (!m)
    throw new ToolkitError(
      "NO_SUCH_MEMBER",
      `no member named ${member}`,
      `pick one of ${cfg.members.map((x) => x.name).join(", ")}`,
    );
  const spec = procSpecs(cfg).patroni[m.index]!;
  return { asUser: spec.asUser, cwd: spec.cwd, env: spec.env };
}

/** The log files of every component that has written one, by name. */
export function logSources(logsDir: string): LogSource[] {
  if (!existsSync(logsDir)) return [];
  return readdirSync(logsDir)
    .filter((f) => f.endsWith(".log"))
    .map((f) => f.slice(0, -4))
    .sort()
    .map((name) => ({ name, path: join(logsDir, `${name}.log`) }));
}

export class NativeRuntime implements Runtime {
  readonly name = "native" as const;
  readonly verbs = VERBS;
  constructor(private readonly cfg: Config) {}

  up(progress: Progress): Promise<UpResult> {
    return nativeUp(this.cfg, progress);
  }

  down(progress: Progress): Promise<DownResult> {
    return nativeDown(this.cfg, progress);
  }

  async status(): Promise<ProcessState[]> {
    return allSpecs(procSpecs(this.cfg)).map((s) => ({ name: s.name, pid: runningPid(s) ?? null }));
  }

  exec(member: string, argv: Cmd, opts: RunOptions = {}): Promise<RunResult> {
    return run(argv, { ...memberRunOptions(this.cfg, member), ...opts });
  }

  async pids(component: string): Promise<ComponentPids> {
    const m = this.cfg.members.find((x) => x.name === component);
    return { main: runningPid(this.spec(component)), postmaster: m ? postmasterPid(m) : undefined };
  }

  /** Not async: the process is started before this returns, so an exit handler can use it. */
  start(component: string): Promise<void> {
    try {
      const spec = this.spec(component);
      if (!runningPid(spec)) startProc(spec);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async stop(component: string, graceMs: number): Promise<boolean> {
    return stopComponent(this.cfg, this.spec(component), graceMs);
  }

  logs(): LogSource[] {
    return logSources(this.cfg.logsDir);
  }

  private spec(component: string): ProcSpec {
    const all = allSpecs(procSpecs(this.cfg));
    const spec = all.find((s) => s.name === component);
    if (!spec)
      throw new ToolkitError(
        "NO_SUCH_COMPONENT",
        `stack ${this.cfg.stack} has no component ${component}`,
        `known: ${all.map((s) => s.name).join(", ")}`,
      );
    return spec;
  }
}
