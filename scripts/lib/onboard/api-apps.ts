/** The app verbs of scripts/api.ts: onboard (with new-app's checks, in its order), list, remove. */
import { applyAccess } from "../access";
import { loadApps, type AccessLevel } from "../apps";
import { loadConfig, stackName, type Config } from "../config";
import { checkNewAppAccess } from "./access-check";
import { badInputError } from "./plan";
import { inputIssues, onboardApp } from "./onboard";
import { removeApp as removeOnboarded } from "./remove";

export interface NewAppOptions {
  stack?: string;
  port?: number;
  domain?: string;
  supabase?: boolean;
  access?: AccessLevel;
  rotatePassword?: boolean;
}

/** `make new-app NAME=…`: database, role, env file, nginx block, registry entry and access configs; idempotent. */
export async function newApp(name: string, o: NewAppOptions = {}) {
  const cfg = loadConfig(o.stack ?? stackName());
  const req = { name, port: o.port, domain: o.domain, supabase: o.supabase, access: o.access };
  const apps = loadApps(cfg);
  const problems = await inputIssues(cfg, req, apps);
  if (problems.length) throw badInputError(problems);
  checkNewAppAccess(cfg, req, apps);
  const result = await onboardApp(cfg, req, { rotatePassword: o.rotatePassword });
  return { ...result, access: await applyAccess(cfg, { allowPublicProduction: true }) };
}

/** The registered apps of the stack (envs/apps.yaml or the stack's registry). */
export const listApps = (o: { stack?: string } = {}) => loadApps(loadConfig(o.stack ?? stackName()));

/** `make new-app NAME=… REMOVE=1`: a final backup, then drop the app; the access configs follow. */
export async function removeApp(cfg: Config, name: string) {
  const result = await removeOnboarded(cfg, name);
  return { ...result, access: await applyAccess(cfg, { allowPublicProduction: true }) };
}
