/**
 * The vocabulary of a failover drill: the scenarios (and what each must do to
 * the leadership), the flag that names them, what the drill records while it
 * runs (write and read attempts, monitor samples, the recording of one run)
 * and what analysis.ts derives from a recording (the metrics and the verdict).
 *
 * All times are epoch milliseconds; derived figures are milliseconds relative
 * to the fault.
 */

export const SCENARIOS = [
  "kill-primary",
  "crash-postgres",
  "hang-primary",
  "switchover",
  "kill-sync-standby",
  "etcd-member-loss",
  "etcd-quorum-loss",
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** What a scenario must do to the leadership for the run to pass. */
export const LEADER_EXPECTATION: Record<Scenario, "change" | "same" | "any"> = {
  "kill-primary": "change",
  "crash-postgres": "any", // Patroni may restart the crashed primary in place (master_start_timeout)
  "hang-primary": "change",
  switchover: "change",
  "kill-sync-standby": "same",
  "etcd-member-loss": "same",
  "etcd-quorum-loss": "same",
};

/** One write attempt. `ok` means the commit was acknowledged to the client. */
export interface WriteRecord {
  id: number;
  writer: number;
  start: number;
  end: number;
  ok: boolean;
  /** the member address that acknowledged it */
  server?: string;
  error?: string;
}

export interface ReadRecord {
  start: number;
  end: number;
  ok: boolean;
  server?: string;
}

/** One poll of the cluster while the drill runs. */
export interface MonitorSample {
  at: number;
  /** members answering 200 on Patroni's /primary (what HAProxy routes writes by) */
  primaries: string[];
  /** the DCS view: role and state per member, as a surviving member reports it */
  members: { name: string; role: string; state: string; timeline?: number }[] | null;
  /** HAProxy read-write backends that are UP */
  rwUp: string[] | null;
}

export interface Recording {
  scenario: Scenario;
  round: number;
  /** the member the fault was aimed at (for etcd scenarios: the Patroni leader, which must survive) */
  target: string;
  leaderBefore: string;
  syncBefore?: string;
  timelineBefore?: number;
  loadStartAt: number;
  faultAt: number;
  /** SIGCONT, etcd restore, restart of the killed member */
  restoreAt?: number;
  loadEndAt: number;
  writes: WriteRecord[];
  reads: ReadRecord[];
  samples: MonitorSample[];
  /** ids found on the final primary, and how often each was found */
  found: Map<number, number> | Record<string, number>;
  /** Patroni's /history entry for the newest timeline, when it changed */
  promotedAt?: number;
  leaderAfter?: string;
  timelineAfter?: number;
  convergence: { ok: boolean; at?: number; problems: string[] };
  /** the old leader's log shows pg_rewind (or a clean rejoin) after the fault */
  rewound?: boolean;
  oldLeaderRole?: string;
}

export interface RunMetrics {
  writesAttempted: number;
  writesAcked: number;
  writesFailed: number;
  writesPerSecond: number;
  /** write-unavailability window: last ack before the fault to the first ack after it */
  rtoMs: number | null;
  gapStartMs: number | null;
  gapEndMs: number | null;
  detectionMs: number | null;
  promotionMs: number | null;
  routedMs: number | null;
  healthyMs: number | null;
  readsAttempted: number;
  readsOk: number;
  readAvailability: number | null;
  longestReadGapMs: number | null;
  lost: number[];
  duplicates: number[];
  maxPrimaries: number;
  p50LatencyMs: number | null;
  p99LatencyMs: number | null;
}

export interface RunResult {
  scenario: Scenario;
  round: number;
  target: string;
  leaderBefore: string;
  leaderAfter?: string;
  timelineBefore?: number;
  timelineAfter?: number;
  faultAt: string;
  metrics: RunMetrics;
  budgetMs: number;
  rewound?: boolean;
  passed: boolean;
  failures: string[];
}

/** `kill-primary`, `all`, or a comma list; unknown names are errors that list the known ones. */
export function parseScenarios(text: string | undefined): Scenario[] | { unknown: string[] } {
  const raw = (text ?? "kill-primary")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (raw.length === 0 || raw.includes("all")) return [...SCENARIOS];
  const unknown = raw.filter((s) => !(SCENARIOS as readonly string[]).includes(s));
  if (unknown.length) return { unknown };
  return [...new Set(raw)] as Scenario[];
}
