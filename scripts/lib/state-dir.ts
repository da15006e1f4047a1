/**
 * The operator's own state folder for work that belongs to no stack (a
 * client's release stage, node_modules tarballs): $STATE_DIR of the current
 * stack's env file, so it follows the setting instead of a hard-coded .state.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { type Config, parseConfig, ROOT_DIR, stackName } from "./config";
import { ensureDirNoFollow } from "./safe-fs";

/**
 * The stack's state dir and member root, on every runtime: the postgres user must reach what
 * lives below (natively the members; on any runtime the scratch instances a backup is verified in),
 * so the state dir and its parent are traversable but not listable; secret files are 0600 each.
 */
export function ensureStackDirs(cfg: Config): void {
  mkdirSync(cfg.stateDir, { recursive: true });
  chmodSync(dirname(cfg.stateDir), 0o711);
  chmodSync(cfg.stateDir, 0o711);
  ensureDirNoFollow(cfg.memberRoot, 0o755);
}

/** The folder STATE_DIR names (per-stack folders live below it); <checkout>/.state when the stack has no env file. */
export function localStateBase(rootDir = ROOT_DIR, stack = stackName()): string {
  const rel = `envs/${stack}.env`;
  if (!existsSync(join(rootDir, rel))) return join(rootDir, ".state");
  return dirname(
    parseConfig(readFileSync(join(rootDir, rel), "utf8"), { file: rel, stack, rootDir, isRoot: false }).stateDir,
  );
}
