/**
 * The guards onboarding runs around its steps (onboard.ts), kept apart from
 * the step sequence: the input rules, plan.ts's request rules plus a live
 * probe of an explicitly asked port, checked before the lock and again under
 * it (new-app and the API check them too, before asking anything); and the
 * maintenance databases closed to app roles, so an app's role reaches its own
 * database and nothing else. Moved out of onboard.ts, which re-exports both.
 */
import type pg from "pg";
import type { AppEntry } from "../apps";
import type { Config } from "../config";
import { portFree, portHolder } from "../ports";
import { MAINTENANCE_DB_ROLES, restrictConnect } from "../supabase-db";
import { appUpstream, portHeldIssue, requestIssues, type AppRequest, type RequestIssue } from "./plan";

/**
 * Every input problem, each with its own fix, plus a listener already holding
 * an explicitly asked port of a new app (a registered app's own port is its
 * own, running app's). Checked before the lock and again under it.
 */
export async function inputIssues(cfg: Config, req: AppRequest, apps: AppEntry[]): Promise<RequestIssue[]> {
  const issues = requestIssues(cfg, req, apps);
  if (issues.length === 0 && req.port !== undefined && !apps.some((a) => a.name === req.name)) {
    const host = appUpstream({ port: req.port } as AppEntry).split(":")[0]!;
    if (!(await portFree(host, req.port))) issues.push(portHeldIssue(req.port, await portHolder(host, req.port)));
  }
  return issues;
}

/**
 * PUBLIC may CONNECT to `postgres` by default, which would let every app role
 * in. Close it once per cluster, keeping the platform roles that need it.
 * Superusers (Patroni, backups) are not affected.
 */
export async function closeMaintenanceDatabase(admin: pg.Client): Promise<string | undefined> {
  // dev-up does this too; kept here so a cluster set up before that still gets it on first onboarding.
  const maintenance = await restrictConnect(admin, "postgres", MAINTENANCE_DB_ROLES);
  // template1 as well: from it an app's role could close its own database to every connection (backups included).
  const template = await restrictConnect(admin, "template1", []);
  return [maintenance, template].filter(Boolean).join("; ") || undefined;
}
