/**
 * The operator's own state folder for work that belongs to no stack (a
 * client's release stage, node_modules tarballs): $STATE_DIR of the current
 * stack's env file, so it follows the setting instead of a hard-coded .state.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseConfig, ROOT_DIR, stackName } from "./config";

/** The folder STATE_DIR names (per-stack folders live below it); <checkout>/.state when the stack has no env file. */
export function localStateBase(rootDir = ROOT_DIR, stack = stackName()): string {
  const rel = `envs/${stack}.env`;
  if (!existsSync(join(rootDir, rel))) return join(rootDir, ".state");
  return dirname(
    parseConfig(readFileSync(join(rootDir, rel), "utf8"), { file: rel, stack, rootDir, isRoot: false }).stateDir,
  );
}
