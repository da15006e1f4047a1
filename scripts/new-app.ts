#!/usr/bin/env bun
/** make new-app NAME=<app>: onboard an internal app (database, role, env file, nginx block, registry), or --remove it. */
import * as p from "@clack/prompts";
import { applyAccess } from "./lib/access";
import { ACCESS_LEVELS, loadApps, type AccessLevel } from "./lib/apps";
import { loadConfig, type Config } from "./lib/config";
import { runMain, ToolkitError } from "./lib/errors";
import { openRuntime } from "./lib/runtimes/index";
import { envFlag, parseFlags } from "./lib/flags";
import { checkNewAppAccess } from "./lib/onboard/access-check";
import { inputIssues, onboardApp, type OnboardResult } from "./lib/onboard/onboard";
import { appNameProblem, badInputError, defaultDomain, domainProblem, planApp, NAME_RULE } from "./lib/onboard/plan";
import { planRemoval, removeApp, type RemovalPlan, type RemoveResult } from "./lib/onboard/remove";
import { onboardSummary } from "./lib/onboard/summary";
import { intro, isInteractive, logLine, note, outro, progressReporter } from "./lib/ui";

const USAGE = `usage: bun scripts/new-app.ts [<name>] [--port N] [--domain HOST] [--supabase] [--access private|public|none] [--yes] [--json]
       bun scripts/new-app.ts <name> --rotate-password
       bun scripts/new-app.ts <name> --remove [--yes]
       make new-app NAME=<name> [PORT=N] [DOMAIN=host] [SUPABASE=1] [ACCESS=private|public|none] [YES=1] [REMOVE=1] [STACK=dev]

Onboards an internal app onto the running cluster of STACK (default dev):
  database <name>_db owned by a new LOGIN role <name> (scram-sha-256), CONNECT
  revoked from PUBLIC; a port from the plan (hyperarchy 9100, bookwriter 9200,
  research_ai 9300, others 9400, 9500, ...); envs/.env.<name> (0600) with
  DATABASE_URL; an nginx server block for the hostname; an entry in envs/apps.yaml
  (so \`make backup\` dumps it).

  <name>             ${NAME_RULE}
  --port N           the app's port (default: next free in the plan)
  --domain HOST      hostname nginx routes to the app (default: <name>.localhost)
  --supabase         also set up Supabase's database side in the new database
  --access LEVEL     private (default: the team over the tailnet), public (also
                     https://<name>.<PUBLIC_DOMAIN> through the tunnel) or none
                     (this machine only); see \`make access-plan\`
  --rotate-password  give an existing app's role a new password (rewrites its env file)
  --remove           take a final backup (pg_dump -Fc, verified), then drop the app
  --yes              do not ask; without a terminal a missing answer is an error
  --json             print the result as JSON (implies no prompts)

Re-running for an existing app reports what exists and changes nothing.
If any step fails, what the run created is undone.`;

const HELP_HINT = "see `bun scripts/new-app.ts --help` for the flags";

/**
 * While the work runs, Ctrl-C must not kill us half-way: it asks the library to
 * stop at the next step and undo what it changed, then we exit 130. A second
 * Ctrl-C exits at once.
 */
async function undoableOnInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const saved = process.listeners("SIGINT");
  process.removeAllListeners("SIGINT");
  const onInterrupt = () => {
    if (ac.signal.aborted) {
      process.stderr.write("\ninterrupted again: exiting now (check with --remove or a re-run)\n");
      process.exit(130);
    }
    process.stderr.write(
      "\ninterrupted: stopping at the next step and undoing this run's changes (Ctrl-C again to exit now)\n",
    );
    ac.abort();
  };
  process.on("SIGINT", onInterrupt);
  try {
    return await work(ac.signal);
  } catch (e) {
    if (ac.signal.aborted && e instanceof ToolkitError) {
      process.stderr.write(e.format() + "\n");
      process.exit(130);
    }
    throw e;
  } finally {
    process.off("SIGINT", onInterrupt);
    for (const l of saved) process.on("SIGINT", l as () => void);
  }
}

const cancelled = (what: string): never => {
  p.cancel(`cancelled: ${what}`);
  process.exit(130);
};

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    {
      name: "string",
      port: "number",
      domain: "string",
      supabase: "boolean",
      access: "string",
      yes: "boolean",
      remove: "boolean",
      rotatePassword: "boolean",
      json: "boolean",
    },
    HELP_HINT,
  );
  if (flags.help) return void console.log(USAGE);
  if (flags._.length > 1)
    throw new ToolkitError("BAD_FLAG", `one app name at a time (got ${flags._.join(", ")})`, HELP_HINT);
  if (flags.access !== undefined && !(ACCESS_LEVELS as readonly string[]).includes(flags.access)) {
    throw new ToolkitError(
      "BAD_FLAG",
      `--access must be private, public or none (got ${JSON.stringify(flags.access)})`,
      HELP_HINT,
    );
  }
  if (
    flags.remove &&
    (flags.port !== undefined ||
      flags.domain !== undefined ||
      flags.supabase ||
      flags.rotatePassword ||
      flags.access !== undefined)
  ) {
    throw new ToolkitError(
      "BAD_FLAG",
      "--remove takes no other options than --yes and --json",
      "usage: bun scripts/new-app.ts <name> --remove [--yes]",
    );
  }
  const cfg = loadConfig();
  await openRuntime(cfg, "new-app");
  const yes = Boolean(flags.yes || envFlag("YES"));
  const ask = isInteractive() && !flags.json && !yes;

  let name = flags._[0] ?? flags.name;
  if (!name) {
    if (!ask)
      throw new ToolkitError(
        "MISSING_NAME",
        "the app name is required (no terminal to ask in, or --yes/--json given)",
        "pass it: `bun scripts/new-app.ts <name>` or `make new-app NAME=<name>`",
      );
    intro(`new-app: stack ${cfg.stack}`);
    const answer = await p.text({
      message: "App name?",
      placeholder: "bookwriter",
      validate: (v) => appNameProblem(v ?? "", cfg),
    });
    if (p.isCancel(answer)) cancelled("nothing created");
    name = answer as string;
  } else if (ask) intro(`new-app: stack ${cfg.stack}`);

  if (flags.remove) return removeFlow(cfg, name, { ask, yes, json: Boolean(flags.json) });

  const req = {
    name,
    port: flags.port,
    domain: flags.domain,
    supabase: flags.supabase,
    access: flags.access as AccessLevel | undefined,
  };
  const apps = loadApps(cfg);
  const problems = await inputIssues(cfg, req, apps);
  if (problems.length) throw badInputError(problems);
  const exists = apps.some((a) => a.name === name);
  if (ask && !exists) {
    // Ask only what cannot be inferred: the hostname and the Supabase side. The port comes from the plan.
    if (req.domain === undefined) {
      const d = await p.text({
        message: `Hostname for ${name}?`,
        placeholder: defaultDomain(name),
        defaultValue: defaultDomain(name),
        validate: (v) => (v ? domainProblem(v) : undefined),
      });
      if (p.isCancel(d)) cancelled("nothing created");
      req.domain = d as string;
    }
    if (req.supabase === undefined) {
      const s = await p.confirm({
        message: "Also set up Supabase's database side (schemas, grants for anon/authenticated/service_role)?",
        initialValue: false,
      });
      if (p.isCancel(s)) cancelled("nothing created");
      req.supabase = s as boolean;
    }
    // Only where it changes something: with neither a tailnet nor a tunnel every app is local (private by default).
    if (req.access === undefined && (cfg.access.tailnet !== "none" || cfg.access.tunnel !== "none")) {
      const publicHint =
        cfg.access.tunnel === "cloudflare"
          ? `https://${name.replace(/_/g, "-")}.${cfg.access.publicDomain} through the tunnel`
          : "needs TUNNEL=cloudflare in the env file";
      const a = await p.select({
        message: `Who may reach ${name}?`,
        initialValue: "private",
        options: [
          { value: "private", label: "private", hint: "the team, over the tailnet" },
          { value: "public", label: "public", hint: publicHint },
          { value: "none", label: "none", hint: "this machine only" },
        ],
      });
      if (p.isCancel(a)) cancelled("nothing created");
      req.access = a as AccessLevel;
    }
    const plan = planApp(cfg, req, apps);
    note(
      [
        `database  ${plan.database} (owner ${plan.role})`,
        `port      ${plan.port}`,
        `hostname  ${plan.domain}`,
        `supabase  ${plan.supabase ? "yes" : "no"}`,
        `access    ${plan.access ?? "private"}`,
      ].join("\n"),
      `${name} on stack ${cfg.stack}`,
    );
    const ok = await p.confirm({ message: `Create ${name}?`, initialValue: true });
    if (p.isCancel(ok) || !ok) cancelled("nothing created");
  }

  checkNewAppAccess(cfg, req, apps);

  const spin = flags.json ? undefined : progressReporter();
  spin?.start(`onboarding ${name}`);
  let result: OnboardResult;
  try {
    result = await undoableOnInterrupt((signal) =>
      onboardApp(cfg, req, {
        rotatePassword: flags.rotatePassword,
        signal,
        progress: spin ? (s, m) => spin.step(s, m) : undefined,
      }),
    );
  } catch (e) {
    spin?.fail(`${name}: failed`);
    throw e;
  }
  // The app's hostname goes into (or out of) the tunnel and tailnet configs; checked above.
  const access = await applyAccess(cfg, { allowPublicProduction: true });
  if (flags.json) return void console.log(JSON.stringify({ ...result, access }, null, 2));
  const nothing = result.changes.length === 0 && access.changed.length === 0;
  spin?.stop(
    nothing ? `${name} already exists: nothing to change` : `${name} ready in ${(result.ms / 1000).toFixed(2)} s`,
  );
  note(onboardSummary(cfg, result, access), nothing ? `${name} (unchanged)` : `${name} created`);
  outro(nothing ? "nothing to do" : `next: start ${name} on port ${result.app.port}`);
});

async function removeFlow(
  cfg: Config,
  name: string,
  o: { ask: boolean; yes: boolean; json: boolean },
): Promise<number> {
  const plan = await planRemoval(cfg, name);
  if (plan.nothing) {
    if (o.json) console.log(JSON.stringify({ plan, removed: [] }, null, 2));
    else logLine(`${name}: nothing to remove on stack ${cfg.stack}`);
    return 0;
  }
  if (!o.yes) {
    if (!o.ask)
      throw new ToolkitError(
        "NEEDS_CONFIRMATION",
        `--remove drops ${describe(plan)}`,
        "re-run with --yes (script) or YES=1 (make); a final backup is taken first",
      );
    note(describe(plan, "\n"), `remove ${name} from stack ${cfg.stack}`);
    const ok = await p.confirm({
      message: `Drop ${name}? A final backup (pg_dump -Fc) is taken first.`,
      initialValue: false,
    });
    if (p.isCancel(ok) || !ok) cancelled("nothing removed");
  }
  const spin = o.json ? undefined : progressReporter();
  spin?.start(`removing ${name}`);
  let r: RemoveResult;
  try {
    r = await undoableOnInterrupt((signal) =>
      removeApp(cfg, name, { signal, progress: spin ? (s, m) => spin.step(s, m) : undefined }),
    );
  } catch (e) {
    spin?.fail(`${name}: removal failed`);
    throw e;
  }
  // Withdraw the app's hostname from the tunnel and tailnet configs.
  const access = await applyAccess(cfg, { allowPublicProduction: true });
  if (o.json) {
    console.log(JSON.stringify({ ...r, access }, null, 2));
    return 0;
  }
  spin?.stop(`${name} removed in ${(r.ms / 1000).toFixed(2)} s`);
  const lines = [...r.removed, ...access.changed.map((f) => `${f} (${name} withdrawn)`), ...access.removed].map(
    (x) => `  - ${x}`,
  );
  if (r.backup)
    lines.unshift(
      `final backup  ${r.backup.path.replace(cfg.rootDir + "/", "")} (${r.backup.bytes} bytes, ${r.backup.entries} entries, verified with pg_restore --list)`,
      "",
    );
  if (r.backup) {
    lines.push(
      "",
      "to restore: re-create the app (bun scripts/new-app.ts " + name + "), then",
      `  pg_restore --no-owner --role=${plan.role} -h ${cfg.haproxy.address} -p ${cfg.haproxy.rwPort} -U postgres -d ${plan.database} ${r.backup.path.replace(cfg.rootDir + "/", "")}`,
    );
  }
  note(lines.join("\n"), `${name} removed`);
  outro("done");
  return 0;
}

function describe(plan: RemovalPlan, sep = ", "): string {
  const parts: string[] = [];
  if (plan.databaseExists) parts.push(`database ${plan.database}`);
  if (plan.roleExists) parts.push(`role ${plan.role}`);
  if (plan.envFile) parts.push(`env file ${plan.envFile.split("/").slice(-2).join("/")}`);
  if (plan.nginxConf) parts.push(`nginx block ${plan.domain ?? plan.name}`);
  if (plan.registered) parts.push("registry entry");
  if (!plan.registered) parts.push("(not a registered app)");
  return parts.join(sep);
}
