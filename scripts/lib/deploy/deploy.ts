/**
 * make deploy-client: plan (render + validate + preflight), deploy (upload a
 * release, switch `current`, bring the platform up with the release's own
 * dev-up, apply the environments, health-check), automatic rollback to the
 * previous release when anything after the switch fails, ROLLBACK=1 by hand,
 * and pruning to the last N releases. Returns data; never prints or exits.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT_DIR } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { redact } from "../redact";
import { ensureClientSecrets, type ClientSecrets } from "./client-secrets";
import { enforceGate } from "./gate";
import { nodeModulesKey, releaseDigest, renderBundleFiles, toolkitFiles, validateBundle, writeRelease, type BundleFile, type Validation } from "./bundle";
import { preflight, type PreflightReport } from "./preflight";
import { clientSecretsFile, clientStack, clientTlsDir, clientsDir, remoteLayout, type ClientSettings } from "./settings";
import { openTarget, type Target } from "./target";
import type { ApplyResult } from "./on-target";
import { certbotCommand, ensureInternalTls, type TlsPaths } from "./tls";

export type Progress = (step: string, message: string) => void;

export interface PlanResult {
  client: string;
  digest: string;
  stageDir: string;
  files: { path: string; mode: string }[];
  validations: Validation[];
  secretsCreated: string[];
  secretsRotated: string[];
  /** an older bundle's shared JWT secret replaced by one per environment: what changed and what to do */
  secretsMigrated?: string;
  tlsCreated: string[];
  certbot?: string[];
}

export interface DeployOptions {
  /** the toolkit to ship (default: this checkout) */
  sourceDir?: string;
  clientsBase?: string;
  rotate?: string[];
  progress?: Progress;
  /** first contact with the target over ssh: record its host key (TRUST_NEW_HOST=1) */
  trustNewHost?: boolean;
}

const stageRoot = (name: string) => join(ROOT_DIR, ".state", "clients", name);

/** The local stage (a release with every secret, its tarball): 0700, so nothing in it is readable by others. */
function ensureStageRoot(name: string): string {
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

/** Render and validate a release locally. Touches only the bundle's secrets/TLS (created once) and the local stage dir. */
export async function planRelease(s: ClientSettings, opts: DeployOptions = {}): Promise<{ plan: PlanResult; secrets: ClientSecrets; bundle: BundleFile[] }> {
  const src = opts.sourceDir ?? ROOT_DIR;
  const base = opts.clientsBase ?? clientsDir();
  const progress = opts.progress ?? (() => {});
  const sec = await ensureClientSecrets(clientSecretsFile(s.name, base), opts.rotate ?? []);
  // The bundle always carries staging and production: the gate applies to every client bundle.
  await enforceGate(sec.secrets, clientSecretsFile(s.name, base));
  if (sec.migrated) progress("secrets", `migrated: ${sec.migrated}`);
  progress("secrets", `${sec.created.length ? `generated ${sec.created.length}` : "kept"}${sec.rotated.length ? `, rotated ${sec.rotated.join(", ")}` : ""}; gate passed`);
  let tls: TlsPaths | undefined;
  let tlsCreated: string[] = [];
  if (s.access === "internal") {
    const r = await ensureInternalTls(clientTlsDir(s.name, base), s, (opts.rotate ?? []).includes("TLS"));
    tls = r.paths;
    tlsCreated = r.created;
    progress("tls", tlsCreated.length ? tlsCreated.join("; ") : "private CA and certificate kept");
  }
  const bundle = renderBundleFiles(src, s, sec.secrets, tls ? { cert: readFileSync(tls.cert, "utf8"), key: readFileSync(tls.key, "utf8"), ca: readFileSync(tls.caCert, "utf8") } : undefined);
  const toolkit = toolkitFiles(src);
  const digest = releaseDigest(src, bundle, toolkit);
  const validations = await validateBundle(src, s, bundle, tls);
  progress("validate", validations.map((v) => v.check).join(", "));
  const stageDir = join(ensureStageRoot(s.name), "release");
  writeRelease(stageDir, src, bundle, toolkit, digest);
  return {
    plan: {
      client: s.name,
      digest,
      stageDir,
      files: bundle.map((f) => ({ path: f.path, mode: f.mode.toString(8) })),
      validations,
      secretsCreated: sec.created,
      secretsRotated: sec.rotated,
      ...(sec.migrated ? { secretsMigrated: sec.migrated } : {}),
      tlsCreated,
      certbot: s.access === "public" ? certbotCommand(s, `${remoteLayout(s).stateDir}/acme-webroot`, `${remoteLayout(s).stateDir}/letsencrypt`) : undefined,
    },
    secrets: sec.secrets,
    bundle,
  };
}

export function preflightError(rep: PreflightReport): ToolkitError {
  return new ToolkitError(
    "PREFLIGHT_FAILED",
    `preflight on ${rep.target}: ${rep.blockers} blocker(s): ${rep.rows.filter((r) => r.status === "fail").map((r) => `${r.check} (${r.detail})`).join("; ")}`,
    "fix the target (or the client's settings) and re-run with PLAN=1 to check",
  );
}

interface RemoteRun {
  up?: { started: string[]; restarted: string[]; changes: string[] };
  apply?: ApplyResult;
  error?: string;
}

/** Bring the platform up from the release `current` points at, then apply + health. Never throws: the caller decides on rollback. */
async function upAndCheck(t: Target, s: ClientSettings, progress: Progress): Promise<RemoteRun> {
  const l = remoteLayout(s);
  const inCurrent = (script: string, args: string[]) => ["env", "-C", l.current, `STACK=${clientStack(s.name)}`, `RUNTIME=${s.runtime}`, "node_modules/.bin/bun", `scripts/${script}`, ...args];
  const out: RemoteRun = {};
  const up = await t.exec(inCurrent("dev-up.ts", ["--json", "--no-install"]), { nothrow: true, timeoutMs: 600_000 });
  if (up.code !== 0) {
    out.error = `dev-up on the target failed: ${redact((up.stderr || up.stdout).trim().split("\n").slice(-8).join(" | "))}`;
    return out;
  }
  out.up = JSON.parse(up.stdout);
  progress("up", `platform up (started: ${out.up!.started.join(", ") || "none"}; changes: ${out.up!.changes.length})`);
  const ap = await t.exec(inCurrent("deploy-client.ts", ["--on-target"]), { nothrow: true, timeoutMs: 300_000 });
  try {
    out.apply = JSON.parse(ap.stdout);
  } catch {
    out.error = `on-target apply failed: ${redact((ap.stderr || ap.stdout).trim().split("\n").slice(-8).join(" | "))}`;
    return out;
  }
  if (!out.apply!.ok) out.error = `health check failed: ${out.apply!.health.filter((h) => !h.ok).map((h) => `${h.check}: ${h.detail}`).join("; ")}`;
  else progress("health", `${out.apply!.health.length} checks passed`);
  return out;
}

async function listReleases(t: Target, s: ClientSettings): Promise<number[]> {
  const r = await t.exec(["ls", "-1", remoteLayout(s).releases], { nothrow: true });
  return r.stdout.split("\n").map((x) => x.trim()).filter((x) => /^\d+$/.test(x)).map(Number).sort((a, b) => a - b);
}

async function currentRelease(t: Target, s: ClientSettings): Promise<number | undefined> {
  const r = await t.exec(["readlink", remoteLayout(s).current], { nothrow: true });
  const n = r.stdout.trim().split("/").pop();
  return r.code === 0 && n && /^\d+$/.test(n) ? Number(n) : undefined;
}

/** Point `current` at a release atomically (a symlink renamed over the old one). */
async function switchCurrent(t: Target, s: ClientSettings, n: number) {
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

async function withLock<T>(t: Target, s: ClientSettings, fn: () => Promise<T>): Promise<T> {
  const l = remoteLayout(s);
  await prepareRemoteDirs(t, s);
  const got = await t.exec(["mkdir", l.lock], { nothrow: true });
  if (got.code !== 0) throw new ToolkitError("DEPLOY_LOCKED", `another deploy of ${s.name} holds ${l.lock} on ${t.label}`, `wait for it; if none is running, remove the lock: ssh ${s.host} rmdir ${l.lock}`);
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
  const tarball = join(ROOT_DIR, ".state", "clients", `node_modules-${key}.tar`);
  if (!existsSync(tarball)) {
    mkdirSync(join(ROOT_DIR, ".state", "clients"), { recursive: true });
    // The contents of the real directory (node_modules may be a symlink in a checkout).
    await run(["tar", "-C", realpathSync(join(src, "node_modules")), "-cf", privateFile(`${tarball}.tmp`), "."], { timeoutMs: 600_000 });
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
export async function uploadRelease(t: Target, s: ClientSettings, plan: PlanResult, n: number, src: string, progress: Progress) {
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

export interface DeployResult {
  client: string;
  target: string;
  plan: PlanResult;
  preflight: PreflightReport;
  /** set when this run pinned a first-seen host key (TRUST_NEW_HOST) */
  hostKeyRecorded?: string;
  release: number;
  previous?: number;
  /** false: the same bundle was already live and nothing on the target changed */
  changed: boolean;
  newRelease: boolean;
  up?: RemoteRun["up"];
  apply?: ApplyResult;
  pruned: number[];
  ms: number;
}

export async function deployClient(s: ClientSettings, opts: DeployOptions & { planOnly?: boolean } = {}): Promise<{ plan: PlanResult; preflight: PreflightReport; hostKeyRecorded?: string } | DeployResult> {
  const t0 = Date.now();
  const progress = opts.progress ?? (() => {});
  const src = opts.sourceDir ?? ROOT_DIR;
  const t = openTarget(s, { trustNewHost: opts.trustNewHost });
  try {
    // The target first: an unknown or changed host key (or any ssh failure) stops us before anything is made.
    const { recorded: hostKeyRecorded } = await t.connect();
    if (hostKeyRecorded) progress("ssh", hostKeyRecorded);
    const { plan } = await planRelease(s, opts);
    const pre = await preflight(t, s);
    progress("preflight", `${pre.rows.length} checks, ${pre.blockers} blocker(s)`);
    if (opts.planOnly) return { plan, preflight: pre, hostKeyRecorded };
    if (pre.blockers) throw preflightError(pre);
    if (pre.runtime === "docker") {
      // The environments' compose files are rendered and validated, but bringing them up and
      // health-checking them through docker is not wired yet; the native runtime is.
      throw new ToolkitError("DOCKER_DEPLOY_UNSUPPORTED", `${t.label} has a docker engine, and deploying with the docker runtime is not implemented yet`, `set RUNTIME=native in clients/${s.name}/client.env (the OS packages must be installed there)`);
    }
    return await withLock(t, s, async () => {
      const l = remoteLayout(s);
      const cur = await currentRelease(t, s);
      const curDigest = cur === undefined ? "" : (await t.exec(["cat", `${l.current}/client/digest`], { nothrow: true })).stdout.trim();
      let release = cur ?? 0;
      let newRelease = false;
      if (curDigest !== plan.digest) {
        const all = await listReleases(t, s);
        release = Math.max(0, ...all) + 1;
        await uploadRelease(t, s, plan, release, src, progress);
        await switchCurrent(t, s, release);
        newRelease = true;
        progress("switch", `current -> releases/${release}`);
      } else progress("release", `releases/${release} already has this bundle (${plan.digest})`);
      const res = await upAndCheck(t, s, progress);
      if (res.error) {
        const err = `release ${release}: ${res.error}`;
        if (!newRelease || cur === undefined) throw new ToolkitError("DEPLOY_FAILED", err, "see the target's logs: make logs on the target, or the output above");
        progress("rollback", `${res.error}; rolling back to release ${cur}`);
        await switchCurrent(t, s, cur);
        const back = await upAndCheck(t, s, progress);
        await t.exec(["touch", `${l.releases}/${release}/FAILED`], { nothrow: true });
        throw new ToolkitError(
          "DEPLOY_FAILED",
          `${err}; rolled back to release ${cur}${back.error ? ` — and the rollback is unhealthy too: ${back.error}` : " (healthy)"}`,
          back.error ? "the platform needs attention: run `make status` on the target" : "fix the release and deploy again",
        );
      }
      const pruned = await prune(t, s, release);
      const changed = newRelease || Boolean(res.up && (res.up.started.length || res.up.restarted.length || res.up.changes.length)) || Boolean(res.apply?.changes.length);
      return { client: s.name, target: t.label, plan, preflight: pre, hostKeyRecorded, release, previous: newRelease ? cur : undefined, changed, newRelease, up: res.up, apply: res.apply, pruned, ms: Date.now() - t0 };
    });
  } finally {
    await t.close();
  }
}

/** Which releases to delete: all but the newest `keep`, never the live one. Pure. */
export function releasesToPrune(all: number[], keep: number, live: number): number[] {
  const sorted = [...all].sort((a, b) => a - b);
  const kept = new Set([...sorted.slice(-keep), live]);
  return sorted.filter((n) => !kept.has(n));
}

/** Keep the newest KEEP_RELEASES releases (and always the live one). */
async function prune(t: Target, s: ClientSettings, live: number): Promise<number[]> {
  const drop = releasesToPrune(await listReleases(t, s), s.keepReleases, live);
  for (const n of drop) await t.exec(["rm", "-rf", `${remoteLayout(s).releases}/${n}`]);
  return drop;
}

export interface RollbackResult {
  client: string;
  target: string;
  from: number;
  to: number;
  apply?: ApplyResult;
  ms: number;
}

/** ROLLBACK=1: point `current` at the newest healthy release before it and bring that up. */
export async function rollbackClient(s: ClientSettings, progress: Progress = () => {}, opts: { trustNewHost?: boolean } = {}): Promise<RollbackResult> {
  const t0 = Date.now();
  const t = openTarget(s, opts);
  try {
    const { recorded } = await t.connect();
    if (recorded) progress("ssh", recorded);
    return await withLock(t, s, async () => {
      const cur = await currentRelease(t, s);
      if (cur === undefined) throw new ToolkitError("NOT_DEPLOYED", `${s.name} has no current release on ${t.label}`, `deploy first: make deploy-client CLIENT=${s.name}`);
      const l = remoteLayout(s);
      const older = (await listReleases(t, s)).filter((n) => n < cur).reverse();
      let to: number | undefined;
      for (const n of older) if ((await t.exec(["test", "-e", `${l.releases}/${n}/FAILED`], { nothrow: true })).code !== 0) { to = n; break; }
      if (to === undefined) throw new ToolkitError("NO_PREVIOUS_RELEASE", `no release before ${cur} to roll back to on ${t.label}`, "deploy a fixed bundle instead");
      await switchCurrent(t, s, to);
      progress("switch", `current -> releases/${to}`);
      const res = await upAndCheck(t, s, progress);
      if (res.error) throw new ToolkitError("ROLLBACK_FAILED", `release ${to}: ${res.error}`, "run `make status` on the target");
      return { client: s.name, target: t.label, from: cur, to, apply: res.apply, ms: Date.now() - t0 };
    });
  } finally {
    await t.close();
  }
}
