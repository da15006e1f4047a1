/**
 * make deploy-client: plan (render + validate + preflight), deploy (upload a
 * release, switch `current`, bring the platform up with the release's own
 * dev-up, apply the environments, health-check), automatic rollback to the
 * previous release when anything after the switch fails, ROLLBACK=1 by hand,
 * and pruning to the last N releases. Returns data; never prints or exits.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT_DIR } from "../config";
import { ToolkitError } from "../errors";
import { redact } from "../redact";
import { ensureClientSecrets, type ClientSecrets } from "./client-secrets";
import { enforceGate } from "./gate";
import {
  releaseDigest,
  renderBundleFiles,
  toolkitFiles,
  validateBundle,
  writeRelease,
  type BundleFile,
  type Validation,
} from "./bundle";
import { preflight, type PreflightReport } from "./preflight";
import {
  clientSecretsFile,
  clientStack,
  clientTlsDir,
  clientsDir,
  remoteLayout,
  type ClientSettings,
} from "./settings";
import { openTarget, type Target } from "./target";
import type { ApplyResult } from "./on-target";
import { certbotCommand, ensureInternalTls, type TlsPaths } from "./tls";
import {
  currentRelease,
  ensureStageRoot,
  listReleases,
  prune,
  switchCurrent,
  uploadRelease,
  withLock,
  type Progress,
} from "./releases";

export { prepareRemoteDirs, releasesToPrune, uploadRelease, type Progress } from "./releases";

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

/** Render and validate a release locally. Touches only the bundle's secrets/TLS (created once) and the local stage dir. */
export async function planRelease(
  s: ClientSettings,
  opts: DeployOptions = {},
): Promise<{ plan: PlanResult; secrets: ClientSecrets; bundle: BundleFile[] }> {
  const src = opts.sourceDir ?? ROOT_DIR;
  const base = opts.clientsBase ?? clientsDir();
  const progress = opts.progress ?? (() => {});
  const sec = await ensureClientSecrets(clientSecretsFile(s.name, base), opts.rotate ?? []);
  // The bundle always carries staging and production: the gate applies to every client bundle.
  await enforceGate(sec.secrets, clientSecretsFile(s.name, base));
  if (sec.migrated) progress("secrets", `migrated: ${sec.migrated}`);
  progress(
    "secrets",
    `${sec.created.length ? `generated ${sec.created.length}` : "kept"}${sec.rotated.length ? `, rotated ${sec.rotated.join(", ")}` : ""}; gate passed`,
  );
  let tls: TlsPaths | undefined;
  let tlsCreated: string[] = [];
  if (s.access === "internal") {
    const r = await ensureInternalTls(clientTlsDir(s.name, base), s, (opts.rotate ?? []).includes("TLS"));
    tls = r.paths;
    tlsCreated = r.created;
    progress("tls", tlsCreated.length ? tlsCreated.join("; ") : "private CA and certificate kept");
  }
  const bundle = renderBundleFiles(
    src,
    s,
    sec.secrets,
    tls
      ? {
          cert: readFileSync(tls.cert, "utf8"),
          key: readFileSync(tls.key, "utf8"),
          ca: readFileSync(tls.caCert, "utf8"),
        }
      : undefined,
  );
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
      certbot:
        s.access === "public"
          ? certbotCommand(s, `${remoteLayout(s).stateDir}/acme-webroot`, `${remoteLayout(s).stateDir}/letsencrypt`)
          : undefined,
    },
    secrets: sec.secrets,
    bundle,
  };
}

export function preflightError(rep: PreflightReport): ToolkitError {
  return new ToolkitError(
    "PREFLIGHT_FAILED",
    `preflight on ${rep.target}: ${rep.blockers} blocker(s): ${rep.rows
      .filter((r) => r.status === "fail")
      .map((r) => `${r.check} (${r.detail})`)
      .join("; ")}`,
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
  const inCurrent = (script: string, args: string[]) => [
    "env",
    "-C",
    l.current,
    `STACK=${clientStack(s.name)}`,
    `RUNTIME=${s.runtime}`,
    "node_modules/.bin/bun",
    `scripts/${script}`,
    ...args,
  ];
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
  if (!out.apply!.ok)
    out.error = `health check failed: ${out
      .apply!.health.filter((h) => !h.ok)
      .map((h) => `${h.check}: ${h.detail}`)
      .join("; ")}`;
  else progress("health", `${out.apply!.health.length} checks passed`);
  return out;
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

export async function deployClient(
  s: ClientSettings,
  opts: DeployOptions & { planOnly?: boolean } = {},
): Promise<{ plan: PlanResult; preflight: PreflightReport; hostKeyRecorded?: string } | DeployResult> {
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
      throw new ToolkitError(
        "DOCKER_DEPLOY_UNSUPPORTED",
        `${t.label} has a docker engine, and deploying with the docker runtime is not implemented yet`,
        `set RUNTIME=native in clients/${s.name}/client.env (the OS packages must be installed there)`,
      );
    }
    return await withLock(t, s, async () => {
      const l = remoteLayout(s);
      const cur = await currentRelease(t, s);
      const curDigest =
        cur === undefined ? "" : (await t.exec(["cat", `${l.current}/client/digest`], { nothrow: true })).stdout.trim();
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
        if (!newRelease || cur === undefined)
          throw new ToolkitError(
            "DEPLOY_FAILED",
            err,
            "see the target's logs: make logs on the target, or the output above",
          );
        progress("rollback", `${res.error}; rolling back to release ${cur}`);
        await switchCurrent(t, s, cur);
        const back = await upAndCheck(t, s, progress);
        await t.exec(["touch", `${l.releases}/${release}/FAILED`], { nothrow: true });
        throw new ToolkitError(
          "DEPLOY_FAILED",
          `${err}; rolled back to release ${cur}${back.error ? ` — and the rollback is unhealthy too: ${back.error}` : " (healthy)"}`,
          back.error
            ? "the platform needs attention: run `make status` on the target"
            : "fix the release and deploy again",
        );
      }
      const pruned = await prune(t, s, release);
      const changed =
        newRelease ||
        Boolean(res.up && (res.up.started.length || res.up.restarted.length || res.up.changes.length)) ||
        Boolean(res.apply?.changes.length);
      return {
        client: s.name,
        target: t.label,
        plan,
        preflight: pre,
        hostKeyRecorded,
        release,
        previous: newRelease ? cur : undefined,
        changed,
        newRelease,
        up: res.up,
        apply: res.apply,
        pruned,
        ms: Date.now() - t0,
      };
    });
  } finally {
    await t.close();
  }
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
export async function rollbackClient(
  s: ClientSettings,
  progress: Progress = () => {},
  opts: { trustNewHost?: boolean } = {},
): Promise<RollbackResult> {
  const t0 = Date.now();
  const t = openTarget(s, opts);
  try {
    const { recorded } = await t.connect();
    if (recorded) progress("ssh", recorded);
    return await withLock(t, s, async () => {
      const cur = await currentRelease(t, s);
      if (cur === undefined)
        throw new ToolkitError(
          "NOT_DEPLOYED",
          `${s.name} has no current release on ${t.label}`,
          `deploy first: make deploy-client CLIENT=${s.name}`,
        );
      const l = remoteLayout(s);
      const older = (await listReleases(t, s)).filter((n) => n < cur).reverse();
      let to: number | undefined;
      for (const n of older)
        if ((await t.exec(["test", "-e", `${l.releases}/${n}/FAILED`], { nothrow: true })).code !== 0) {
          to = n;
          break;
        }
      if (to === undefined)
        throw new ToolkitError(
          "NO_PREVIOUS_RELEASE",
          `no release before ${cur} to roll back to on ${t.label}`,
          "deploy a fixed bundle instead",
        );
      await switchCurrent(t, s, to);
      progress("switch", `current -> releases/${to}`);
      const res = await upAndCheck(t, s, progress);
      if (res.error)
        throw new ToolkitError("ROLLBACK_FAILED", `release ${to}: ${res.error}`, "run `make status` on the target");
      return { client: s.name, target: t.label, from: cur, to, apply: res.apply, ms: Date.now() - t0 };
    });
  } finally {
    await t.close();
  }
}
