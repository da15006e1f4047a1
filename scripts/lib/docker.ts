/**
 * The docker runtime: compose/dev.yml runs the same rendered templates inside
 * pinned images. Only used when an engine answers (RUNTIME=auto) or is forced.
 */
import { join } from "node:path";
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { run } from "./exec";
import type { Progress, UpResult } from "./native";
import { writeIfChanged } from "./render";
import { renderStack } from "./stack-files";
import { SECRET_KEYS } from "./secrets";

export const dockerRenderedDir = (cfg: Config) => join(cfg.stateDir, "rendered-docker");

export function writeDockerFiles(cfg: Config): string {
  const dir = dockerRenderedDir(cfg);
  for (const f of renderStack(cfg, "docker")) writeIfChanged(join(dir, f.path), f.content, { mode: f.secret ? 0o600 : 0o644 });
  // compose reads ports, image settings and secrets from one env file (0600).
  const env = [
    `RENDERED_DIR=${dir}`,
    `HAPROXY_RW_PORT=${cfg.haproxy.rwPort}`,
    `HAPROXY_RO_PORT=${cfg.haproxy.roPort}`,
    `HAPROXY_STATS_PORT=${cfg.haproxy.statsPort}`,
    `API_PORT=${cfg.api.port}`,
    ...SECRET_KEYS.map((k) => `${k}=${cfg.secrets[k]}`),
  ].join("\n");
  writeIfChanged(join(dir, "compose.env"), env + "\n", { mode: 0o600 });
  return dir;
}

export const composeCmd = (cfg: Config, ...args: string[]) => [
  "docker", "compose", "-p", cfg.clusterName, "-f", join(cfg.rootDir, "compose", "dev.yml"), "--env-file", join(dockerRenderedDir(cfg), "compose.env"), ...args,
];

export async function dockerUp(cfg: Config, progress: Progress): Promise<UpResult> {
  const t0 = Date.now();
  writeDockerFiles(cfg);
  progress("compose", "docker compose up -d --wait");
  const r = await run(composeCmd(cfg, "up", "-d", "--wait"), { nothrow: true, timeoutMs: 600_000 });
  if (r.code !== 0) throw new ToolkitError("UP_FAILED", "docker compose up failed", "run `docker compose logs` for the failing service", r.stderr);
  return { started: ["compose"], restarted: [], changes: [], health: { ok: true, running: 3, problems: [] }, ms: Date.now() - t0 };
}
