/**
 * Onboarding an app onto the running cluster: role, database, privileges,
 * optional Supabase side, env file, nginx block, registry entry. Each step
 * first looks at what exists, so a re-run changes nothing; each change pushes
 * its undo, so a failure anywhere leaves the stack as it was.
 */
import { existsSync } from "node:fs";
import { appEnvPath, appNginxPath, loadApps, registryPath, saveApps, type AppEntry } from "../apps";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { procSpecs } from "../native/specs";
import { syncPool } from "../pool";
import { quoteIdent } from "../pg";
import { runningPid } from "../procs";
import { registerSecret } from "../redact";
import { readTemplate, writeIfChanged } from "../render";
import { generateSecret } from "../secrets";
import { appSupabaseEnvLines, ensureAppSupabase } from "../supabase/app";
import { supabaseUrlFor, writeSupabaseRoutes } from "../supabase/routes";
import { closeMaintenanceDatabase, inputIssues } from "./guards";
import { withAppsLock } from "./lock";
import { connectAdmin, inspectApp, readEnvPassword, readIfExists, requireSecrets, restoreFile } from "./admin";
import { applyNginx, waitNginxRoute } from "./nginx-apply";

export {
  connectAdmin,
  inspectApp,
  readEnvPassword,
  readIfExists,
  requireSecrets,
  restoreFile,
  type AppState,
} from "./admin";
export { applyNginx, waitNginxRoute } from "./nginx-apply";
export { closeMaintenanceDatabase, inputIssues } from "./guards";
import { badInputError, planApp, renderAppNginx, sql, appEnvFile, type AppRequest } from "./plan";
import { scramMatches, scramVerifier } from "../scram";

export type Step =
  | "preflight"
  | "role"
  | "database"
  | "privileges"
  | "supabase"
  | "env-file"
  | "nginx"
  | "registry"
  | "pool";

export interface OnboardOptions {
  rotatePassword?: boolean;
  progress?: (step: Step, message: string) => void;
  /** Called as each step starts. Tests throw here to prove a failure mid-way leaves nothing behind. */
  beforeStep?: (step: Step) => void | Promise<void>;
  /** Ctrl-C: the run stops at the next step boundary and undoes what it changed. */
  signal?: AbortSignal;
}

export interface OnboardResult {
  app: AppEntry;
  /** this run created the app (false: it existed) */
  created: boolean;
  /** what this run changed; empty on a re-run */
  changes: string[];
  /** what was already in place */
  unchanged: string[];
  envFile: string;
  nginxConf: string;
  /** nginx was running and now serves the app's hostname */
  nginxServing: boolean;
  ms: number;
}

interface Undo {
  what: string;
  run: () => Promise<void> | void;
}

export async function onboardApp(cfg: Config, req: AppRequest, opts: OnboardOptions = {}): Promise<OnboardResult> {
  const t0 = Date.now();
  // Every input rule is checked before the lock, the connection or any change.
  const early = await inputIssues(cfg, req, loadApps(cfg));
  if (early.length) throw badInputError(early);
  requireSecrets(cfg);
  return withAppsLock(cfg, async () => {
    const apps = loadApps(cfg); // again, under the lock
    const problems = await inputIssues(cfg, req, apps);
    if (problems.length) throw badInputError(problems);
    const registered = apps.find((a) => a.name === req.name);
    const app = planApp(cfg, req, apps);
    const envPath = appEnvPath(cfg, app.name);
    const nginxPath = appNginxPath(cfg, app.name);
    const progress = opts.progress ?? (() => {});
    const changes: string[] = [];
    const unchanged: string[] = [];
    const undo: Undo[] = [];
    let step: Step = "preflight";
    const enter = async (s: Step) => {
      step = s;
      if (opts.signal?.aborted)
        throw new ToolkitError(
          "INTERRUPTED",
          "interrupted (Ctrl-C)",
          "re-run when ready; nothing of this run was kept",
        );
      await opts.beforeStep?.(s);
    };
    let nginxServing = false;

    const admin = await connectAdmin(cfg);
    try {
      await enter("preflight");
      if (!existsSync(`${cfg.renderedDir}/nginx/nginx.conf`)) {
        throw new ToolkitError(
          "NOT_UP",
          `stack ${cfg.stack} has no rendered nginx.conf`,
          `run \`make dev-up STACK=${cfg.stack}\``,
        );
      }
      const state = await inspectApp(admin, app.role, app.database);
      let password = readEnvPassword(envPath);
      if (!registered && state.roleExists && !(state.dbOwner === app.role && password)) {
        // A role we did not register belongs to someone else: never adopt or re-password it.
        throw new ToolkitError(
          "ROLE_EXISTS",
          `a role named ${app.role} already exists and is not an app registered in ${rel(cfg, registryPath(cfg))}`,
          `pick another name, or clear a half-created app with \`bun scripts/new-app.ts ${app.name} --remove\``,
        );
      }
      if (state.dbOwner !== null && state.dbOwner !== app.role) {
        throw new ToolkitError(
          "DATABASE_EXISTS",
          `database ${app.database} already exists and is owned by ${state.dbOwner}, not ${app.role}`,
          "pick another app name; new-app never takes over a database it did not create",
        );
      }

      // 1. The login role. The server only sees a SCRAM verifier, never the password.
      await enter("role");
      if (!state.roleExists) {
        password = generateSecret(24);
        registerSecret(password);
        await admin.query(sql.createRole(app.role, scramVerifier(password)));
        undo.push({ what: `role ${app.role}`, run: async () => void (await admin.query(sql.dropRole(app.role))) });
        changes.push(`role ${app.role} (LOGIN, scram-sha-256)`);
      } else if (opts.rotatePassword) {
        const old = state.verifier;
        password = generateSecret(24);
        registerSecret(password);
        await admin.query(sql.setPassword(app.role, scramVerifier(password)));
        if (old)
          undo.push({
            what: `password of ${app.role}`,
            run: async () => void (await admin.query(sql.setPassword(app.role, old))),
          });
        changes.push(`new password for role ${app.role}`);
      } else {
        if (!password) {
          throw new ToolkitError(
            "NO_ENV_FILE",
            `role ${app.role} exists but ${rel(cfg, envPath)} (which holds its password) is missing`,
            `re-run with --rotate-password to set a new password and write the file`,
          );
        }
        registerSecret(password);
        if (!state.verifier || !scramMatches(password, state.verifier)) {
          throw new ToolkitError(
            "PASSWORD_MISMATCH",
            `the password in ${rel(cfg, envPath)} does not match role ${app.role}`,
            "re-run with --rotate-password to set a new one",
          );
        }
        unchanged.push(`role ${app.role}`);
      }
      progress("role", app.role);

      // 2. The database, owned by the role.
      await enter("database");
      if (state.dbOwner === null) {
        await admin.query(sql.createDatabase(app.database, app.role));
        undo.push({
          what: `database ${app.database}`,
          run: async () => void (await admin.query(sql.dropDatabase(app.database))),
        });
        changes.push(`database ${app.database} (owner ${app.role})`);
      } else unchanged.push(`database ${app.database}`);
      progress("database", app.database);

      // 3. Isolation: only the owner may connect to the app's database, and app roles never reach `postgres`.
      await enter("privileges");
      const publicConnect = state.dbOwner === null ? true : state.publicCanConnect;
      if (publicConnect) {
        await admin.query(sql.revokePublic(app.database));
        if (state.dbOwner !== null)
          undo.push({
            what: `CONNECT for PUBLIC on ${app.database}`,
            run: async () =>
              void (await admin.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${quoteIdent(app.database)} TO PUBLIC`)),
          });
        changes.push(`CONNECT on ${app.database} revoked from PUBLIC`);
      } else unchanged.push(`${app.database} closed to PUBLIC`);
      const hardened = await closeMaintenanceDatabase(admin);
      if (hardened) changes.push(hardened);
      progress("privileges", `${app.database}: owner only`);

      // 4. Optional: Supabase's database side inside the app's database.
      await enter("supabase");
      if (app.supabase) {
        const done = await ensureAppSupabase(cfg, admin, app);
        if (done.changes.length) {
          changes.push(...done.changes);
          if (state.dbOwner !== null) undo.push({ what: `Supabase schemas in ${app.database}`, run: done.undo });
        } else unchanged.push(`Supabase side of ${app.database}`);
        progress(
          "supabase",
          "schemas auth, storage, extensions, graphql_public, _realtime; grants, default privileges, publication",
        );
      }

      // 5. The env file with DATABASE_URL (0600).
      await enter("env-file");
      const oldEnv = readIfExists(envPath);
      const supabaseLines = app.supabase ? await appSupabaseEnvLines(cfg, app, envPath) : undefined;
      if (writeIfChanged(envPath, appEnvFile(cfg, app, password!, supabaseLines), { mode: 0o600 })) {
        undo.push({ what: rel(cfg, envPath), run: () => restoreFile(envPath, oldEnv, 0o600) });
        changes.push(`${rel(cfg, envPath)} (mode 0600)`);
      } else unchanged.push(rel(cfg, envPath));
      progress("env-file", rel(cfg, envPath));

      // 6. The nginx server block, checked with nginx -t before nginx loads it.
      await enter("nginx");
      const oldConf = readIfExists(nginxPath);
      const conf = renderAppNginx(cfg, readTemplate(cfg.rootDir, "nginx/app.conf.tmpl"), app);
      if (writeIfChanged(nginxPath, conf, { mode: 0o644 })) {
        const revert = async () => {
          restoreFile(nginxPath, oldConf, 0o644);
          await applyNginx(cfg).catch(() => {});
        };
        undo.push({ what: `nginx block ${app.domain}`, run: revert });
        try {
          await applyNginx(cfg);
        } catch (e) {
          undo.pop();
          restoreFile(nginxPath, oldConf, 0o644); // never leave a file that breaks nginx -t
          throw e;
        }
        changes.push(`nginx: ${app.domain} -> ${app.port}`);
      } else unchanged.push(`nginx block ${app.domain}`);
      if (runningPid(procSpecs(cfg).nginx)) nginxServing = await waitNginxRoute(cfg, app.domain, app.name, true);
      progress("nginx", `${app.domain} -> 127.0.0.1:${app.port}`);

      // 7. The registry, last: an app is listed only once everything above exists.
      await enter("registry");
      const next = registered ? apps.map((a) => (a.name === app.name ? app : a)) : [...apps, app];
      if (JSON.stringify(next) !== JSON.stringify(apps)) {
        const oldRegistry = readIfExists(registryPath(cfg));
        saveApps(cfg, next);
        undo.push({ what: rel(cfg, registryPath(cfg)), run: () => restoreFile(registryPath(cfg), oldRegistry, 0o644) });
        changes.push(`${rel(cfg, registryPath(cfg))}: ${registered ? "updated" : "added"} ${app.name}`);
      } else unchanged.push(`registry entry ${app.name}`);
      // Its own API under /<database>/ (scripts/lib/supabase/routes.ts), once the registry lists it.
      if (writeSupabaseRoutes(cfg, next)) {
        undo.push({
          what: "Supabase routes",
          run: async () => void (writeSupabaseRoutes(cfg, apps), await applyNginx(cfg).catch(() => {})),
        });
        await applyNginx(cfg);
        changes.push(`nginx: ${supabaseUrlFor(cfg, app.database)}`);
      }

      // 8. pgbouncer: a pool for the app's database and its role's verifier, then RELOAD (if it runs).
      await enter("pool");
      undo.push({
        what: "pgbouncer pools",
        run: async () => void (await syncPool(cfg, admin, procSpecs(cfg).pool, apps)),
      });
      const pool = await syncPool(cfg, admin, procSpecs(cfg).pool, next);
      if (pool === "reloaded") changes.push(`pgbouncer: pool ${app.database} (reloaded)`);
      else
        unchanged.push(
          `pgbouncer pool ${app.database}${pool === "not running" ? " (pgbouncer not running; written for its next start)" : ""}`,
        );
      progress("pool", `${cfg.pool.address}:${cfg.pool.port}/${app.database}`);

      return {
        app,
        created: !registered && !state.roleExists,
        changes,
        unchanged,
        envFile: envPath,
        nginxConf: nginxPath,
        nginxServing,
        ms: Date.now() - t0,
      };
    } catch (err) {
      const undone: string[] = [];
      const stuck: string[] = [];
      for (const u of undo.reverse()) {
        try {
          await u.run();
          undone.push(u.what);
        } catch (e) {
          stuck.push(`${u.what}: ${(e as Error).message}`);
        }
      }
      const reason = (err as Error).message;
      const rolledBack = undone.length ? `; undone: ${undone.join(", ")}` : "; nothing had been changed";
      throw new ToolkitError(
        err instanceof ToolkitError && err.code !== "COMMAND_FAILED" ? err.code : "ONBOARD_FAILED",
        `${app.name}: step ${step} failed: ${reason}${rolledBack}${stuck.length ? `; COULD NOT UNDO: ${stuck.join("; ")}` : ""}`,
        err instanceof ToolkitError && err.fix
          ? err.fix
          : `fix the cause and re-run; \`make status STACK=${cfg.stack}\` shows the cluster`,
        err instanceof ToolkitError ? err.detail : undefined,
      );
    } finally {
      await admin.end().catch(() => {});
    }
  });
}

const rel = (cfg: Config, path: string) => path.replace(cfg.rootDir + "/", "");
