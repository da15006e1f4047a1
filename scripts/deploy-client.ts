#!/usr/bin/env bun
/** make deploy-client: stamp out a customer's server (bundle, TLS, preflight, deploy, health, rollback). */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as p from "@clack/prompts";
import { ROOT_DIR, loadConfig } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { envFlag, parseFlags } from "./lib/flags";
import { readClientSecrets, type ClientSecrets } from "./lib/deploy/client-secrets";
import { deployClient, preflightError, rollbackClient, type DeployResult, type PlanResult } from "./lib/deploy/deploy";
import { applyOnTarget } from "./lib/deploy/on-target";
import type { PreflightReport } from "./lib/deploy/preflight";
import {
  CLIENT_NAME_RE,
  checkClientName,
  clientEnvFile,
  clientStack,
  loadClientSettings,
  newClientValues,
  parseClientSettings,
  profileForMemory,
  writeClientEnv,
  type ClientSettings,
} from "./lib/deploy/settings";
import { openTarget } from "./lib/deploy/target";
import { intro, isInteractive, logLine, note, outro, table } from "./lib/ui";

const USAGE = `usage: make deploy-client [CLIENT=acme] [HOST=ops@server|local] [DOMAIN=acme.internal] [ACCESS=internal|public]
                         [PROFILE=16|32|64] [YES=1] [PLAN=1] [ROLLBACK=1] [ROTATE=KEY[,KEY]] [TRUST_NEW_HOST=1]
       bun scripts/deploy-client.ts [--client acme] [--host ...] [--domain ...] [--access ...] [--profile ...]
                                    [--admin-email ...] [--yes] [--plan] [--rollback] [--rotate KEY] [--trust-new-host] [--json]

Creates or updates the customer bundle in clients/<CLIENT>/ (client.env committed; .secrets.env and
.tls/ generated, 0600, gitignored), renders and validates the release (stack env, compose files,
nginx -t), runs the preflight on the target, uploads a new release, brings the platform up with the
native runtime (docker only where its packages are missing and an engine answers), health-checks every environment and rolls back
to the previous release on failure. PLAN=1 stops after the preflight and changes nothing on the
target. Re-deploying the same bundle changes nothing. Without a terminal, missing answers are errors.
The target's ssh host key is pinned in clients/<CLIENT>/known_hosts: an unknown host is refused
unless TRUST_NEW_HOST=1 (first contact: the key is recorded and reported), a changed key always is.`;

const SPEC = {
  client: "string",
  host: "string",
  domain: "string",
  access: "string",
  profile: "string",
  adminEmail: "string",
  yes: "boolean",
  plan: "boolean",
  rollback: "boolean",
  rotate: "string",
  json: "boolean",
  onTarget: "boolean",
  trustNewHost: "boolean",
} as const;

function ask<T>(value: T | undefined, flag: string, question: () => Promise<T | symbol>): Promise<T> {
  if (value !== undefined && value !== "") return Promise.resolve(value);
  if (!isInteractive())
    throw new ToolkitError(
      "MISSING_ANSWER",
      `${flag} is required without a terminal`,
      `pass ${flag.toUpperCase()}=... (make) or --${flag} ... (script); see --help`,
    );
  return question().then((v) => {
    if (p.isCancel(v)) throw new ToolkitError("CANCELLED", "cancelled", "nothing was changed");
    return v as T;
  });
}

/**
 * Run `fn`; if the host key is unknown and a person is at the terminal, show
 * the offered fingerprint and ask before trusting it (the flag is
 * TRUST_NEW_HOST=1). The refusal happens before anything changed, so a retry is safe.
 */
async function askTrust<T>(trust: boolean, fn: (trust: boolean) => Promise<T>): Promise<T> {
  try {
    return await fn(trust);
  } catch (e) {
    if (trust || !(e instanceof ToolkitError) || e.code !== "HOST_KEY_UNKNOWN" || !isInteractive()) throw e;
    note(`${e.message}\n${e.fix ?? ""}`, "unknown ssh host key");
    const ok = await p.confirm({
      message: "Have you confirmed this fingerprint with the customer, and trust it?",
      initialValue: false,
    });
    if (p.isCancel(ok) || !ok) throw e;
    return fn(true);
  }
}

/** The size profile from the target's memory (new clients without PROFILE). */
async function detectProfile(s: ClientSettings, trustNewHost: boolean, json: boolean): Promise<"16" | "32" | "64"> {
  const t = openTarget(s, { trustNewHost });
  try {
    // An ssh failure is reported here with ssh's own error line (host key, auth, refused, ...).
    const { recorded } = await t.connect();
    if (recorded && !json) note(recorded, "ssh host key");
    const r = await t.exec(["cat", "/proc/meminfo"], { nothrow: true, timeoutMs: 30_000 });
    const kb = Number(r.stdout.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0);
    if (!kb)
      throw new ToolkitError(
        "NO_PROFILE",
        `cannot read the memory of ${t.label} to pick a size profile: ${(r.stderr || r.stdout).trim().split("\n").pop() || `cat /proc/meminfo exited ${r.code}`}`,
        "pass PROFILE=16|32|64",
      );
    return profileForMemory(kb);
  } finally {
    await t.close();
  }
}

async function settingsFor(
  name: string,
  flags: ReturnType<typeof parseFlags<typeof SPEC>>,
): Promise<{ s: ClientSettings; created: boolean; updated: boolean }> {
  const file = clientEnvFile(name);
  const overrides: Record<string, string | undefined> = {
    HOST: flags.host,
    DOMAIN: flags.domain,
    ACCESS: flags.access,
    PROFILE: flags.profile,
    ADMIN_EMAIL: flags.adminEmail,
  };
  if (existsSync(file)) {
    const s = loadClientSettings(name);
    const values = { ...s.raw };
    for (const [k, v] of Object.entries(overrides)) if (v !== undefined && v !== "") values[k] = v;
    const updated = writeClientEnv(name, values);
    return { s: updated ? loadClientSettings(name) : s, created: false, updated };
  }
  const host = await ask<string>(flags.host, "host", () =>
    p.text({ message: "Target host (ssh destination, or `local`)?", placeholder: "ops@acme-server" }),
  );
  const domain = await ask<string>(flags.domain, "domain", () =>
    p.text({ message: "Customer domain?", placeholder: `${name}.internal` }),
  );
  const access = (await ask<string>(flags.access, "access", () =>
    p.select({
      message: "Access?",
      options: [
        { value: "internal", label: "internal (private CA)" },
        { value: "public", label: "public (Let's Encrypt)" },
      ],
    }),
  )) as "internal" | "public";
  const adminEmail =
    access === "public"
      ? await ask<string>(flags.adminEmail, "admin-email", () => p.text({ message: "Let's Encrypt e-mail?" }))
      : "";
  const values = newClientValues(name, { host, domain, access, profile: flags.profile ?? "16", adminEmail });
  // Validate what we have before reaching out to the target.
  let s = parseClientSettings(
    Object.entries(values)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n"),
    file,
  );
  if (!flags.profile)
    values.PROFILE = await askTrust(flags.trustNewHost || envFlag("TRUST_NEW_HOST"), (trust) =>
      detectProfile(s, trust, Boolean(flags.json)),
    );
  writeClientEnv(name, values);
  s = loadClientSettings(name);
  return { s, created: true, updated: true };
}

const rowsOf = (pre: PreflightReport) =>
  table([["check", "status", "detail"], ...pre.rows.map((r) => [r.check, r.status.toUpperCase(), r.detail])]);

function printPlan(plan: PlanResult, pre: PreflightReport) {
  note(
    plan.validations.map((v) => `${v.check.padEnd(18)} ${v.detail}`).join("\n"),
    `bundle ${plan.client} (release digest ${plan.digest})`,
  );
  if (plan.certbot) note(plan.certbot.join(" "), "certbot (run on the target once DNS points at it)");
  if (plan.secretsMigrated)
    note(plan.secretsMigrated, "secrets migrated: the old API keys stop verifying with the next deploy");
  note(rowsOf(pre), `preflight on ${pre.target}`);
}

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), SPEC, USAGE);
  if (flags.help) return void console.log(USAGE);

  if (flags.onTarget) {
    // Runs on the customer's server inside a release (the deployer calls it over ssh).
    const s = parseClientSettings(readFileSync(join(ROOT_DIR, "client", "client.env"), "utf8"), "client/client.env");
    const secrets = readClientSecrets(join(ROOT_DIR, "client", ".secrets.env")) as ClientSecrets;
    const cfg = loadConfig(clientStack(s.name));
    const r = await applyOnTarget(cfg, s, secrets, ROOT_DIR);
    console.log(JSON.stringify(r, null, 2));
    return r.ok ? 0 : 1;
  }

  const rotate = (flags.rotate ?? process.env.ROTATE ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
  const plan = flags.plan || envFlag("PLAN");
  const rollback = flags.rollback || envFlag("ROLLBACK");
  const yes = flags.yes || envFlag("YES");
  const trustNewHost = flags.trustNewHost || envFlag("TRUST_NEW_HOST");
  const name = checkClientName(
    await ask<string>(flags.client, "client", () =>
      p.text({
        message: "Client name?",
        placeholder: "acme",
        validate: (v) => (CLIENT_NAME_RE.test(v ?? "") ? undefined : "2-21 lowercase letters/digits"),
      }),
    ),
  );
  const progress = flags.json ? () => {} : (step: string, msg: string) => logLine(`${step.padEnd(9)} ${msg}`);

  if (rollback) {
    const s = loadClientSettings(name);
    if (!yes) {
      if (!isInteractive())
        throw new ToolkitError(
          "NEEDS_CONFIRMATION",
          `ROLLBACK=1 switches ${name} on ${s.host} back to the previous release`,
          "re-run with YES=1",
        );
      const ok = await p.confirm({
        message: `Roll ${name} on ${s.host} back to the previous release?`,
        initialValue: false,
      });
      if (p.isCancel(ok) || !ok) return void logLine("cancelled: nothing changed");
    }
    if (!flags.json) intro(`deploy-client: rollback ${name} on ${s.host}`);
    const r = await askTrust(trustNewHost, (trust) => rollbackClient(s, progress, { trustNewHost: trust }));
    if (flags.json) return void console.log(JSON.stringify(r, null, 2));
    outro(`rolled back: release ${r.from} -> ${r.to} (${(r.ms / 1000).toFixed(1)} s)`);
    return;
  }

  const { s, created, updated } = await settingsFor(name, flags);
  if (!flags.json) intro(`deploy-client: ${name} on ${s.host}${plan ? " (plan)" : ""}`);
  if (created && !flags.json)
    note(`${clientEnvFile(name).replace(ROOT_DIR + "/", "")} (profile ${s.profile} GB): commit it`, "new client");
  else if (updated && !flags.json)
    note(`${clientEnvFile(name).replace(ROOT_DIR + "/", "")} updated from the flags`, "settings");

  if (!plan && !yes) {
    if (!isInteractive())
      throw new ToolkitError(
        "NEEDS_CONFIRMATION",
        `deploy-client changes ${s.host} (releases under ${s.remoteDir})`,
        "re-run with YES=1, or PLAN=1 to only check",
      );
    const ok = await p.confirm({ message: `Deploy ${name} to ${s.host}?`, initialValue: true });
    if (p.isCancel(ok) || !ok) return void logLine("cancelled: nothing changed");
  }

  const r = await askTrust(trustNewHost, (trust) =>
    deployClient(s, { rotate, progress, planOnly: plan, trustNewHost: trust }),
  );
  if ("release" in r) {
    const d = r as DeployResult;
    if (flags.json) return void console.log(JSON.stringify(d, null, 2));
    note(rowsOf(d.preflight), `preflight on ${d.preflight.target}`);
    note(
      table([
        ["check", "ok", "detail"],
        ...(d.apply?.health ?? []).map((h) => [h.check, h.ok ? "ok" : "FAIL", h.detail]),
      ]),
      "health",
    );
    for (const w of d.apply?.warnings ?? []) note(w, "warning");
    if (d.plan.secretsMigrated) note(d.plan.secretsMigrated, "secrets migrated: the old API keys no longer verify");
    outro(
      d.changed
        ? `release ${d.release} live on ${d.target}${d.previous ? ` (previous ${d.previous})` : ""} in ${(d.ms / 1000).toFixed(1)} s`
        : `release ${d.release} already live: nothing changed (${(d.ms / 1000).toFixed(1)} s)`,
    );
    return;
  }
  if (flags.json) console.log(JSON.stringify(r, null, 2));
  else printPlan(r.plan, r.preflight);
  if (r.preflight.blockers) {
    if (flags.json) return 1;
    throw preflightError(r.preflight);
  }
  if (!flags.json) outro("plan: bundle valid, preflight passed; nothing changed on the target");
});
