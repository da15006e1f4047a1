/**
 * The compose files of a docker-runtime stack, in the order compose merges them:
 * compose/dev.yml (and compose/dev-members.yml), then the overrides rendered from the stack's state into the
 * rendered-docker folder (each only once written): compose.apis.yml, one API per
 * Supabase-enabled database (compose-apis.ts), and compose.monitoring.yml, Grafana
 * and the stack's Prometheus/Alertmanager (scripts/lib/monitoring/compose.ts).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config";

export const OVERRIDE_FILES = ["compose.apis.yml", "compose.monitoring.yml"] as const;

/**
 * `-f` arguments for every compose command of the stack; `renderedDir` is <state>/rendered-docker.
 * compose/dev-members.yml publishes the members' ports when DOCKER_PUBLISH_MEMBERS is on.
 */
export function composeFileArgs(
  cfg: Pick<Config, "rootDir"> & { docker?: Pick<Config["docker"], "publishMembers"> },
  renderedDir: string,
): string[] {
  const files = [
    join(cfg.rootDir, "compose", "dev.yml"),
    ...(cfg.docker?.publishMembers ? [join(cfg.rootDir, "compose", "dev-members.yml")] : []),
    ...OVERRIDE_FILES.map((f) => join(renderedDir, f)).filter((p) => existsSync(p)),
  ];
  return files.flatMap((f) => ["-f", f]);
}
