/**
 * The drill's arithmetic at its edges (found by make mutation): ties and
 * boundaries of the write gap, detection of a lost sync standby, HAProxy's
 * route, the read gap, each failure message, and the leader rules per scenario.
 * Recordings here are small and written out by hand, so each figure is exact.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  analyze,
  checkIds,
  defaultBudgetMs,
  detectionAt,
  LEADER_EXPECTATION,
  parsePatroniTime,
  parseScenarios,
  quantile,
  routedAt,
  SCENARIOS,
  summarize,
  writeGap,
  type MonitorSample,
  type Recording,
  type RunResult,
} from "../../scripts/lib/failover/analysis";

const F = 1_800_000_000_000; // the fault
const member = (name: string, role: string, state = "running") => ({ name, role, state });
const sample = (at: number, over: Partial<MonitorSample> = {}): MonitorSample => ({
  at,
  primaries: ["pg1"],
  members: [member("pg1", "leader")],
  rwUp: ["pg1"],
  ...over,
});

/** A small kill-primary: acks at F-100 and F+1000 (ids 1, 2), one failed write, load F-1000 .. F+2000. */
function rec(over: Partial<Recording> = {}): Recording {
  return {
    scenario: "kill-primary",
    round: 1,
    target: "pg1",
    leaderBefore: "pg1",
    syncBefore: "pg2",
    timelineBefore: 1,
    loadStartAt: F - 1000,
    faultAt: F,
    loadEndAt: F + 2000,
    writes: [
      { id: 1, writer: 1, start: F - 130, end: F - 100, ok: true },
      { id: 3, writer: 2, start: F - 50, end: F + 500, ok: false, error: "terminated" },
      { id: 2, writer: 1, start: F + 990, end: F + 1000, ok: true },
    ],
    reads: [],
    samples: [],
    found: new Map([
      [1, 1],
      [2, 1],
    ]),
    promotedAt: F + 800,
    leaderAfter: "pg2",
    timelineAfter: 2,
    convergence: { ok: true, at: F + 1500, problems: [] },
    oldLeaderRole: "replica",
    ...over,
  };
}

describe("budget and scenarios", () => {
  test("each scenario's leader rule", () => {
    expect(LEADER_EXPECTATION).toEqual({
      "kill-primary": "change",
      "crash-postgres": "any",
      "hang-primary": "change",
      switchover: "change",
      "kill-sync-standby": "same",
      "etcd-member-loss": "same",
      "etcd-quorum-loss": "same",
    });
  });

  test("the default budget waits for the slower of HAProxy's rise and fall", () => {
    const c = { timing: { ttl: 10, loopWait: 1 }, haproxy: { interMs: 1000, rise: 3, fall: 2 } } as Parameters<
      typeof defaultBudgetMs
    >[0];
    expect(defaultBudgetMs(c)).toBe(10_000 + 1000 + 3000 + 2000);
    expect(defaultBudgetMs(c, "hang-primary", 0)).toBe(10_000 + 1000 + 3000 + 2000);
    expect(
      defaultBudgetMs({ ...c, haproxy: { interMs: 500, rise: 1, fall: 4 } } as typeof c, "kill-primary", 100),
    ).toBe(10_000 + 1000 + 2000 + 100);
  });

  test("scenario lists: trimmed, deduplicated; empty or `all` is every scenario", () => {
    expect(parseScenarios(" switchover , kill-primary,switchover ")).toEqual(["switchover", "kill-primary"]);
    expect(parseScenarios(" , ")).toEqual([...SCENARIOS]);
    expect(parseScenarios("kill-primary,all")).toEqual([...SCENARIOS]);
    expect(parseScenarios(undefined)).toEqual(["kill-primary"]);
  });
});

describe("write gap edges", () => {
  test("acks given in any order", () => {
    expect(writeGap([F + 300, F - 10, F + 100, F - 500], F, F + 300)).toEqual({
      start: F + 100,
      end: F + 300,
      ms: 200,
    });
  });
  test("acks before the fault never make a gap of their own", () => {
    expect(writeGap([F - 5000, F - 10, F + 100], F, F + 100)).toEqual({ start: F - 10, end: F + 100, ms: 110 });
  });
  test("a 1 ms gap is still a gap that ends", () => {
    expect(writeGap([F, F + 1], F, F + 1)).toEqual({ start: F, end: F + 1, ms: 1 });
  });
  test("of two equal gaps the first counts; a tail as long as the gap does not replace it", () => {
    expect(writeGap([F - 10, F + 90, F + 190], F, F + 190)).toEqual({ start: F - 10, end: F + 90, ms: 100 });
    expect(writeGap([F - 10, F + 90], F, F + 190)).toEqual({ start: F - 10, end: F + 90, ms: 100 });
  });
  test("no ack after the fault (one exactly at it is before): the gap never ends", () => {
    expect(writeGap([F - 10], F, F + 5000)).toEqual({ start: F - 10, end: null, ms: 5010 });
    expect(writeGap([F - 10, F], F, F + 1000)).toEqual({ start: F, end: null, ms: 1000 });
    expect(writeGap([], F, F + 1000)).toEqual({ start: F, end: null, ms: 1000 });
  });
});

describe("ids, quantiles and Patroni's timestamps", () => {
  test("lost and duplicate ids come back sorted", () => {
    expect(
      checkIds(
        [9, 3, 5, 1],
        new Map([
          [1, 1],
          [7, 2],
          [4, 3],
        ]),
      ),
    ).toEqual({ lost: [3, 5, 9], duplicates: [4, 7] });
  });
  test("a quantile past the end is the largest value", () => {
    expect(quantile([3, 1, 2], 2)).toBe(3);
    expect(quantile([3, 1, 2], 0)).toBe(1);
  });

  const savedTz = process.env.TZ;
  afterEach(() => {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });
  test("UTC when no offset is given or Z, whatever the machine's zone; anchored at both ends; a space for the T", () => {
    process.env.TZ = "America/New_York";
    const t = Date.UTC(2026, 10, 21, 21, 50, 1, 500);
    expect(parsePatroniTime("2026-11-21T21:50:01.5Z")).toBe(t);
    expect(parsePatroniTime("2026-11-21T21:50:01.5")).toBe(t);
    expect(parsePatroniTime(" 2026-11-21 21:50:01.500+00 ".replace("+00", "+0000"))).toBe(t);
    expect(parsePatroniTime("2026-11-21T22:50:01.123456+01:00")).toBe(t - 500 + 123);
    expect(parsePatroniTime("x2026-11-21T21:50:01Z")).toBeUndefined();
    expect(parsePatroniTime("2026-11-21T21:50:01Zjunk")).toBeUndefined();
    expect(parsePatroniTime("2026-11-21T21:50:01+01")).toBeUndefined();
  });
});

describe("detection", () => {
  const sync = (state: string, role = "sync_standby") => [member("pg1", "leader"), member("pg2", role, state)];
  const standbyLoss = (samples: MonitorSample[]) =>
    detectionAt({
      scenario: "kill-sync-standby",
      target: "pg2",
      leaderBefore: "pg1",
      syncBefore: "pg2",
      faultAt: F,
      samples,
    });

  test("a sync standby is healthy while it is sync_standby and running or streaming; the first other view detects", () => {
    expect(
      standbyLoss([
        sample(F + 100, { members: sync("running") }),
        sample(F + 200, { members: sync("streaming") }),
        sample(F + 300, { members: sync("stopped") }),
      ]),
    ).toBe(F + 300);
    expect(standbyLoss([sample(F + 100, { members: sync("streaming", "replica") })])).toBe(F + 100);
    expect(standbyLoss([sample(F + 100, { members: [member("pg1", "leader")] })])).toBe(F + 100);
    expect(
      standbyLoss([sample(F + 100, { members: [member("pg2", "sync_standby"), member("pg1", "leader", "stopped")] })]),
    ).toBeUndefined();
  });

  test("samples at the fault or without a member list do not count", () => {
    expect(
      standbyLoss([
        sample(F, { members: sync("stopped") }),
        sample(F + 100, { members: null }),
        sample(F + 200, { members: sync("running") }),
      ]),
    ).toBeUndefined();
  });

  test("a leader is healthy only as leader and running or streaming", () => {
    const leaderLoss = (members: MonitorSample["members"]) =>
      detectionAt({
        scenario: "kill-primary",
        target: "pg1",
        leaderBefore: "pg1",
        syncBefore: "pg2",
        faultAt: F,
        samples: [sample(F + 100, { members })],
      });
    expect(leaderLoss([member("pg1", "leader", "streaming")])).toBeUndefined();
    expect(leaderLoss([member("pg1", "replica", "running")])).toBe(F + 100);
    expect(leaderLoss([member("pg1", "leader", "starting")])).toBe(F + 100);
  });
});

describe("HAProxy's route", () => {
  test("routed again only after a disturbance, and only with the new leader alone UP", () => {
    expect(routedAt([sample(F + 100, { rwUp: ["pg2"] })], F, "pg2")).toBeUndefined();
    expect(routedAt([sample(F + 100, { rwUp: ["pg2"] })], F, undefined)).toBeUndefined();
    const s = [
      sample(F, { rwUp: [] }), // at the fault: ignored
      sample(F + 100, { rwUp: ["pg2"] }),
      sample(F + 200, { rwUp: null }), // no answer from HAProxy: ignored
      sample(F + 300, { rwUp: ["pg1"] }),
      sample(F + 400, { rwUp: ["pg2", "pg1"] }), // the new leader UP, but not alone
      sample(F + 500, { rwUp: ["pg2"] }),
    ];
    expect(routedAt(s, F, "pg2")).toBe(F + 500);
    // After a disturbance, the old leader alone UP is not "routed" either.
    expect(
      routedAt(
        [sample(F + 100, { rwUp: [] }), sample(F + 200, { rwUp: ["pg1"] }), sample(F + 300, { rwUp: ["pg2"] })],
        F,
        "pg2",
      ),
    ).toBe(F + 300);
  });
});

describe("analyze: figures", () => {
  test("every metric of a small recording", () => {
    const r = analyze(
      rec({
        reads: [
          { start: F - 10, end: F - 5, ok: true }, // before the fault: not counted
          { start: F + 1150, end: F + 1300, ok: true }, // recorded out of order: the gaps are between answers in time
          { start: F, end: F + 100, ok: true },
          { start: F + 200, end: F + 1100, ok: true },
          { start: F + 1400, end: F + 1450, ok: false },
          { start: F + 1900, end: F + 2600, ok: true }, // answered after the load ended: not a gap closer
        ],
      }),
      5000,
    );
    expect(r.metrics).toEqual({
      writesAttempted: 3,
      writesAcked: 2,
      writesFailed: 1,
      writesPerSecond: 1, // 2 acks in 3 s
      rtoMs: 1100,
      gapStartMs: -100,
      gapEndMs: 1000,
      detectionMs: null,
      promotionMs: 800,
      routedMs: null,
      healthyMs: 1500,
      readsAttempted: 5,
      readsOk: 4,
      readAvailability: 0.8,
      longestReadGapMs: 1000, // F+100 .. F+1100
      lost: [],
      duplicates: [],
      maxPrimaries: 0,
      p50LatencyMs: 10,
      p99LatencyMs: 30,
    });
    expect(r.passed).toBe(true);
    expect(r.faultAt).toBe(new Date(F).toISOString());
  });

  test("promotion counts only with both a time and a new timeline; no gap end, no end figure", () => {
    expect(analyze(rec({ timelineAfter: 1 }), 5000).metrics.promotionMs).toBeNull();
    expect(analyze(rec({ promotedAt: undefined }), 5000).metrics.promotionMs).toBeNull();
    const never = analyze(
      rec({ writes: [{ id: 1, writer: 1, start: F - 130, end: F - 100, ok: true }] }),
      5000,
    ).metrics;
    expect([never.rtoMs, never.gapEndMs, never.gapStartMs]).toEqual([null, null, -100]);
  });
});

describe("analyze: failures, word for word", () => {
  test("lost and duplicate ids name the first five", () => {
    const writes = Array.from({ length: 7 }, (_, i) => ({
      id: i + 1,
      writer: 1,
      start: F + 100 * i - 300,
      end: F + 100 * i - 290,
      ok: true,
    }));
    const r = analyze(
      rec({
        writes,
        found: new Map([
          [1, 1],
          [8, 2],
          [9, 2],
          [10, 2],
          [11, 2],
          [12, 2],
          [13, 2],
        ]),
      }),
      5000,
    );
    expect(r.failures.slice(0, 2)).toEqual([
      "6 acknowledged write(s) lost (RPO > 0), e.g. id 2, 3, 4, 5, 6",
      "6 id(s) present more than once, e.g. 8, 9, 10, 11, 12",
    ]);
  });

  test("no acknowledged write at all, and none after the fault", () => {
    expect(analyze(rec({ writes: [], found: new Map() }), 5000).failures).toEqual([
      "no write was acknowledged at all: the load never ran",
      "no write acknowledged after the fault (2.0 s without one)",
    ]);
  });

  test("an RTO equal to the budget passes; 1 ms more fails", () => {
    expect(analyze(rec(), 1100).failures).toEqual([]);
    expect(analyze(rec(), 1099).failures).toEqual(["RTO 1.1 s exceeds the budget of 1.1 s"]);
  });

  test("split brain and a cluster that did not converge, with or without a reason", () => {
    const two = [sample(F + 100, { primaries: ["pg1", "pg2"] })];
    expect(
      analyze(rec({ samples: two, convergence: { ok: false, problems: ["pg3 stopped", "no sync standby"] } }), 5000)
        .failures,
    ).toEqual([
      "2 members answered as primary at the same time (split brain)",
      "cluster did not converge: pg3 stopped, no sync standby",
    ]);
    expect(analyze(rec({ convergence: { ok: false, problems: [] } }), 5000).failures).toEqual([
      "cluster did not converge: unknown",
    ]);
  });

  test("leader rules: change, same, any; an unknown leader after is not judged", () => {
    expect(analyze(rec({ leaderAfter: "pg1" }), 5000).failures).toEqual(["leader is still pg1: no failover happened"]);
    expect(analyze(rec({ scenario: "etcd-member-loss", leaderAfter: "pg1" }), 5000).failures).toEqual([]);
    expect(analyze(rec({ scenario: "etcd-member-loss", leaderAfter: "pg2" }), 5000).failures).toEqual([
      "leader moved pg1 -> pg2: etcd-member-loss must not fail over",
    ]);
    expect(analyze(rec({ scenario: "etcd-member-loss", leaderAfter: undefined }), 5000).failures).toEqual([]);
    expect(analyze(rec({ scenario: "crash-postgres", leaderAfter: "pg1" }), 5000).failures).toEqual([]);
  });

  test("after a change the old primary must be back as a replica or sync standby, once the cluster converged", () => {
    expect(analyze(rec({ oldLeaderRole: "sync_standby" }), 5000).failures).toEqual([]);
    expect(analyze(rec({ oldLeaderRole: undefined }), 5000).failures).toEqual([]);
    expect(analyze(rec({ oldLeaderRole: "stopped" }), 5000).failures).toEqual([
      "old primary pg1 did not rejoin as a replica (role stopped)",
    ]);
    expect(
      analyze(rec({ oldLeaderRole: "stopped", convergence: { ok: false, problems: ["x"] } }), 5000).failures,
    ).toEqual(["cluster did not converge: x"]);
    expect(
      analyze(rec({ scenario: "etcd-member-loss", leaderAfter: "pg1", oldLeaderRole: "stopped" }), 5000).failures,
    ).toEqual([]);
  });
});

describe("summaries over rounds", () => {
  const run = (scenario: RunResult["scenario"], rtoMs: number | null, passed: boolean, lost: number[] = []) =>
    ({ scenario, passed, metrics: { rtoMs, lost } }) as unknown as RunResult;
  test("rounds, passes, median and max RTO without the runs that never recovered, lost writes in total", () => {
    expect(
      summarize([
        run("kill-primary", 9000, true),
        run("switchover", 2000, true),
        run("kill-primary", null, false, [4, 5]),
        run("kill-primary", 12_000, false, [7]),
        run("kill-primary", 10_000, true),
      ]),
    ).toEqual([
      { scenario: "kill-primary", rounds: 4, passed: 2, medianRtoMs: 10_000, maxRtoMs: 12_000, lostTotal: 3 },
      { scenario: "switchover", rounds: 1, passed: 1, medianRtoMs: 2000, maxRtoMs: 2000, lostTotal: 0 },
    ]);
    expect(summarize([run("kill-primary", null, false)])).toEqual([
      { scenario: "kill-primary", rounds: 1, passed: 0, medianRtoMs: null, maxRtoMs: null, lostTotal: 0 },
    ]);
  });
});
