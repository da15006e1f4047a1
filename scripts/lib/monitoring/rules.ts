/** make alerts / make status: the rules and their state from the running Prometheus. */
import type { Config } from "../config";
import { ToolkitError } from "../errors";

export interface RuleState {
  group: string;
  alert: string;
  /** inactive, pending or firing (Prometheus's words) */
  state: string;
  /** the labels of each pending or firing instance, e.g. member=pg2 */
  active: { state: string; labels: Record<string, string>; since: string }[];
  runbook: string;
}

const COMMON_LABELS = new Set(["alertname", "severity", "cluster", "job", "instance"]);

/** Pure: Prometheus's /api/v1/rules answer as one row per alert rule. */
export function ruleStates(body: unknown): RuleState[] {
  type Api = {
    data: {
      groups: {
        name: string;
        rules: {
          type: string;
          name: string;
          state: string;
          annotations?: Record<string, string>;
          alerts?: { state: string; labels: Record<string, string>; activeAt: string }[];
        }[];
      }[];
    };
  };
  const out: RuleState[] = [];
  for (const g of (body as Api).data.groups) {
    for (const r of g.rules) {
      if (r.type !== "alerting") continue;
      out.push({
        group: g.name,
        alert: r.name,
        state: r.state,
        active: (r.alerts ?? []).map((a) => ({
          state: a.state,
          labels: Object.fromEntries(Object.entries(a.labels).filter(([k]) => !COMMON_LABELS.has(k))),
          since: a.activeAt,
        })),
        runbook: r.annotations?.runbook ?? "",
      });
    }
  }
  return out;
}

export const prometheusUrl = (cfg: Config) => `http://${cfg.monitoring.address}:${cfg.monitoring.prometheusPort}`;

/** Every rule and its state from the running Prometheus; a clear error when monitoring is off or down. */
export async function fetchRuleStates(cfg: Config): Promise<RuleState[]> {
  if (!cfg.monitoring.enabled)
    throw new ToolkitError(
      "MONITORING_OFF",
      `MONITORING=false in ${cfg.file}`,
      `set MONITORING=true in ${cfg.file} and run \`make dev-up\``,
    );
  let res: Response;
  try {
    res = await fetch(`${prometheusUrl(cfg)}/api/v1/rules`, { signal: AbortSignal.timeout(3000) });
  } catch (e) {
    throw new ToolkitError(
      "PROMETHEUS_DOWN",
      `Prometheus at ${prometheusUrl(cfg)} does not answer (${(e as Error).message})`,
      "run `make dev-up` (it starts Prometheus when MONITORING=true), then `make logs SVC=prometheus`",
    );
  }
  if (!res.ok)
    throw new ToolkitError(
      "PROMETHEUS_ERROR",
      `Prometheus answered ${res.status} on /api/v1/rules`,
      "see `make logs SVC=prometheus`",
    );
  return ruleStates(await res.json());
}

/** For make status: the firing alerts (name and distinguishing labels), or null when monitoring is off or unreachable. */
export async function firingAlerts(cfg: Config): Promise<string[] | null> {
  if (!cfg.monitoring.enabled) return null;
  try {
    const rules = await fetchRuleStates(cfg);
    return rules.flatMap((r) =>
      r.active
        .filter((a) => a.state === "firing")
        .map(
          (a) =>
            `${r.alert}${
              Object.keys(a.labels).length
                ? ` (${Object.entries(a.labels)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(", ")})`
                : ""
            }`,
        ),
    );
  } catch {
    return null;
  }
}
