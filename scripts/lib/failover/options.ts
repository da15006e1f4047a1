/** The failover drill's settings, and their defaults derived from the stack's HA timing. */
import type { Config } from "../config";
import type { LoadOptions } from "./load";

export interface DrillOptions extends LoadOptions {
  /** RTO budget for every scenario; default: derived per scenario from the HA timing (defaultBudgetMs) */
  budgetMs?: number;
  /** load before the fault, to have a baseline */
  warmupMs: number;
  /** how long hang-primary keeps the leader stopped (must exceed ttl) */
  hangMs: number;
  /** how long the etcd scenarios keep members down (must exceed ttl, so a lost lock would show) */
  holdMs: number;
  /** switchover target; default: the sync standby */
  candidate?: string;
  convergeTimeoutMs: number;
  keepData: boolean;
}

export type DrillProgress = (message: string) => void;

/** Default drill settings derived from the HA timing. */
export function defaultDrillOptions(cfg: Config): DrillOptions {
  const ttlMs = cfg.timing.ttl * 1000;
  return {
    writers: 4,
    ratePerWriter: 50,
    writeTimeoutMs: 20_000,
    warmupMs: 2000,
    hangMs: ttlMs + 5000,
    holdMs: ttlMs + 5000,
    convergeTimeoutMs: 120_000,
    keepData: false,
  };
}
