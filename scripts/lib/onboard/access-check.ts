/** Who may reach a new app, checked before anything changes: a bad public hostname, or production data going public. */
import { planAccess } from "../access";
import type { AppEntry } from "../apps";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { planApp, type AppRequest } from "./plan";

export function checkNewAppAccess(cfg: Config, req: AppRequest, apps: AppEntry[]): void {
  const next = [...apps.filter((a) => a.name !== req.name), planApp(cfg, req, apps)];
  const accessPlan = planAccess(cfg, next);
  const mine = accessPlan.apps.find((v) => v.name === req.name)!;
  if (accessPlan.problems.length)
    throw new ToolkitError("BAD_ACCESS", accessPlan.problems.join("; "), "nothing was changed");
  if (mine.publicUrl && mine.productionData) {
    throw new ToolkitError(
      "PUBLIC_PRODUCTION",
      `${req.name} holds production data (database ${mine.database}) and would be public at ${mine.publicUrl}`,
      "use --access private; nothing was changed",
    );
  }
}
