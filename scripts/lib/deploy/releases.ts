/**
 * A client's releases on the target and their local stage: upload (node_modules
 * once per lockfile, then the release via incoming/), `current` switched by an
 * atomic rename, the deploy lock, pruning to the last N. Moved out of deploy.ts.
 */
import { chmodSync, existsSync, mkdirSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT_DIR } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { localStateBase } from "../state-dir";
import { nodeModulesKey } from "./bundle";
import { remoteLayout, type ClientSettings } from "./settings";
import type { Target } from "./target";

export type Progress = (step: string, message: string) => void;

/** The local stage of one client: <STATE_DIR>/clients/<name> (the operator stack's STATE_DIR, scripts/lib/state-dir.ts). */
export const stageRoot = (name: string, rootDir = ROOT_DIR) => join(localStateBase(rootDir), "clients", name);

/** The local stage (a release with every secret, its tarball): 0700, so nothing in it is readable by others. */
export function ensureStageRoot(name: string): string {
  const dir = stageRoot(name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}

/** An empty file only we can read, made before its first byte is written (tar then writes into it). */
function privateFile(path: string): string {
  rmSync(path, { force: true });
  writeFileSync(path, "", { mode: 0o600, flag: "wx" });
  return path;
}

export async function listReleases(t: Target, s: ClientSettings): Promise<number[]> {
  const r = await t.exec(["ls", "-1", remoteLayout(s).releases], { nothrow: true });
  return r.stdout
    .split("\n")
    .map((x) => x.trim())
    .filter((x) => /^\d+$/.test(x))
    .map(Number)
    .sort((a, b) => a - b);
}

export async function currentRelease(t: Target, s: ClientSettings): Promise<number | undefined> {
  const r = await t.exec(["readlink", remoteLayout(s).current], { nothrow: true });
  const n = r.stdout.trim().split("/").pop();
  return r.code === 0 && n && /^\d+$/.test(n) ? Number(n) : undefined;
}

/** Point `current` at a release atomically (a symlink renamed over the old one). */
export async function switchCurrent(t: Target, s: ClientSettings, n: number) {
  const l = remoteLayout(s);
  await t.exec(["ln", "-sfn", `releases/${n}`, `${l.current}.new`]);
  await t.exec(["mv", "-T", `${l.current}.new`, l.current]);
}

/**
 * The deploy's folders on the target. incoming/ receives tarballs that hold
 * every secret and the TLS key: it is 0700 before the first byte arrives
 * (and one left 0755 by an older toolkit is tightened); the tarballs are 0600.
 */
export async function prepareRemoteDirs(t: Target, s: ClientSettings): Promise<void> {
  const l = remoteLayout(s);
  await t.exec(["mkdir", "-p", l.releases, l.cache]);
  await t.exec(["mkdir", "-p", "-m", "0700", l.incoming]);
  await t.exec(["chmod", "0700", l.incoming]);
}

export async function withLock<T>(t: Target, s: ClientSettings, fn: () => Promise<T>): Promise<T> {
  const l = remoteLayout(s);
  await prepareRemoteDirs(t, s);
  const got = await t.exec(["mkdir", l.lock], { nothrow: true });
  if (got.code !== 0)
    throw new ToolkitError(
      "DEPLOY_LOCKED",
      `another deploy of ${s.name} holds ${l.lock} on ${t.label}`,
      `wait for it; if none is running, remove the lock: ssh ${s.host} rmdir ${l.lock}`,
    );
  try {
    return await fn();
  } finally {
    await t.exec(["rmdir", l.lock], { nothrow: true });
  }
}

/** node_modules travels once per lockfile: a cached tarball here, extracted once there, hard-linked into each release. */
async function ensureNodeModules(t: Target, s: ClientSettings, src: string, progress: Progress): Promise<string> {
  const key = nodeModulesKey(src);
  const l = remoteLayout(s);
  const dir = `${l.cache}/node_modules-${key}`;
  if ((await t.exec(["test", "-f", `${dir}/.complete`], { nothrow: true })).code === 0) return dir;
  const tarball = join(localStateBase(), "clients", `node_modules-${key}.tar`);
  if (!existsSync(tarball)) {
    mkdirSync(dirname(tarball), { recursive: true });
    // The contents of the real directory (node_modules may be a symlink in a checkout).
    await run(["tar", "-C", realpathSync(join(src, "node_modules")), "-cf", privateFile(`${tarball}.tmp`), "."], {
      timeoutMs: 600_000,
    });
    renameSync(`${tarball}.tmp`, tarball);
  }
  progress("upload", `node_modules (${key}) to ${t.label}`);
  const remoteTar = `${l.incoming}/node_modules-${key}.tar`;
  await t.exec(["rm", "-f", remoteTar]); // a leftover keeps its old mode when written over
  await t.put(tarball, remoteTar);
  await t.exec(["rm", "-rf", `${dir}.tmp`]);
  await t.exec(["mkdir", "-p", `${dir}.tmp`]);
  await t.exec(["tar", "-C", `${dir}.tmp`, "-xf", remoteTar], { timeoutMs: 600_000 });
  await t.exec(["touch", `${dir}.tmp/.complete`]);
  await t.exec(["mv", "-T", `${dir}.tmp`, dir]);
  await t.exec(["rm", "-f", remoteTar]);
  return dir;
}

/** Upload release n (the toolkit and the bundle with its secrets) into releases/n via incoming/ (see prepareRemoteDirs). */
export async function uploadRelease(
  t: Target,
  s: ClientSettings,
  plan: { digest: string; stageDir: string },
  n: number,
  src: string,
  progress: Progress,
) {
  const l = remoteLayout(s);
  const nm = await ensureNodeModules(t, s, src, progress);
  const tarball = privateFile(join(ensureStageRoot(s.name), `release-${plan.digest}.tar`));
  await run(["tar", "-C", plan.stageDir, "-cf", tarball, "."], { timeoutMs: 300_000 });
  const remoteTar = `${l.incoming}/release-${plan.digest}.tar`;
  await t.exec(["rm", "-f", remoteTar]); // a leftover keeps its old mode when written over
  await t.put(tarball, remoteTar);
  const dir = `${l.releases}/${n}`;
  await t.exec(["mkdir", "-m", "0700", dir]);
  await t.exec(["tar", "-C", dir, "-xf", remoteTar]);
  await t.exec(["cp", "-al", nm, `${dir}/node_modules`]);
  await t.exec(["rm", "-f", remoteTar]);
  await run(["rm", "-f", tarball]);
  progress("upload", `release ${n} (${plan.digest}) on ${t.label}`);
}

/** Which releases to delete: all but the newest `keep`, never the live one. Pure. */
export function releasesToPrune(all: number[], keep: number, live: number): number[] {
  const sorted = [...all].sort((a, b) => a - b);
  const kept = new Set([...sorted.slice(-keep), live]);
  return sorted.filter((n) => !kept.has(n));
}

/** Keep the newest KEEP_RELEASES releases (and always the live one). */
export async function prune(t: Target, s: ClientSettings, live: number): Promise<number[]> {
  const drop = releasesToPrune(await listReleases(t, s), s.keepReleases, live);
  for (const n of drop) await t.exec(["rm", "-rf", `${remoteLayout(s).releases}/${n}`]);
  return drop;
}
