import { describe, expect, test } from "bun:test";
import {
  analyze,
  checkIds,
  defaultBudgetMs,
  detectionAt,
  median,
  parsePatroniTime,
  parseScenarios,
  routedAt,
  SCENARIOS,
  summarize,
  writeGap,
  type MonitorSample,
  type Recording,
  type WriteRecord,
} from "../../scripts/lib/failover/analysis";
import { binSeries, resultRows, timelineSvg } from "../../scripts/lib/failover/report";

const T0 = 1_800_000_000_000; // load start
const FAULT = T0 + 2000;

/** A recorded kill-primary: 4 writers acknowledging every 20 ms, a 11.5 s hole after the fault, pg1 -> pg2. */
function recording(over: Partial<Recording> = {}, gapMs = 11_500): Recording {
  const writes: WriteRecord[] = [];
  let id = 1;
  for (let t = T0; t < T0 + 20_000; t += 20) {
    if (t > FAULT - 5 && t < FAULT + gapMs) continue;
    for (let w = 1; w <= 4; w++)
      writes.push({
        id: id++,
        writer: w,
        start: t,
        end: t + 3,
        ok: true,
        server: t < FAULT ? "127.0.3.11" : "127.0.3.12",
      });
  }
  // writes in flight at the fault: they fail and are never counted
  for (let w = 1; w <= 4; w++)
    writes.push({ id: id++, writer: w, start: FAULT, end: FAULT + 5000, ok: false, error: "Connection terminated" });
  const found = new Map<number, number>();
  for (const w of writes) if (w.ok) found.set(w.id, 1);
  const samples: MonitorSample[] = [];
  for (let t = T0; t < T0 + 20_000; t += 200) {
    const el = t - FAULT;
    const leader = el < 10_000 ? "pg1" : el < 10_400 ? undefined : "pg2";
    samples.push({
      at: t,
      primaries: leader && el < 0 ? ["pg1"] : el >= 10_400 ? ["pg2"] : [],
      members:
        el < 10_000
          ? [
              { name: "pg1", role: "leader", state: "running" },
              { name: "pg2", role: "sync_standby", state: "running" },
              { name: "pg3", role: "replica", state: "running" },
            ]
          : [
              { name: "pg2", role: leader === "pg2" ? "leader" : "replica", state: "running" },
              { name: "pg3", role: "replica", state: "running" },
            ],
      rwUp: el < 1500 ? ["pg1"] : el < 12_000 ? [] : ["pg2"],
    });
  }
  return {
    scenario: "kill-primary",
    round: 1,
    target: "pg1",
    leaderBefore: "pg1",
    syncBefore: "pg2",
    timelineBefore: 1,
    loadStartAt: T0,
    faultAt: FAULT,
    restoreAt: FAULT + 12_000,
    loadEndAt: T0 + 20_000,
    writes,
    reads: [
      { start: FAULT + 100, end: FAULT + 110, ok: true },
      { start: FAULT + 200, end: FAULT + 1200, ok: false },
      { start: FAULT + 1300, end: FAULT + 1310, ok: true },
    ],
    samples,
    found,
    promotedAt: FAULT + 10_300,
    leaderAfter: "pg2",
    timelineAfter: 2,
    convergence: { ok: true, at: FAULT + 18_000, problems: [] },
    rewound: true,
    oldLeaderRole: "replica",
    ...over,
  };
}

describe("RTO arithmetic", () => {
  test("the write gap runs from the last ack before the fault to the first ack after it", () => {
    const g = writeGap([100, 200, 300, 5300, 5400], 350, 6000);
    expect(g).toEqual({ start: 300, end: 5300, ms: 5000 });
  });

  test("a gap that never closes is open-ended up to the end of the load", () => {
    const g = writeGap([100, 200, 300], 350, 6000);
    expect(g.end).toBeNull();
    expect(g.ms).toBe(5700);
  });

  test("the short stretch between the last ack and the end of the load is not 'writes never came back'", () => {
    // an etcd loss: writes barely notice, the load stops 150 ms after its last ack
    const acks = Array.from({ length: 100 }, (_, i) => 1000 + i * 20);
    const g = writeGap(acks, 1500, 1000 + 99 * 20 + 150);
    expect(g.end).not.toBeNull();
    expect(g.ms).toBe(150);
  });

  test("writes that stall again after coming back count up to the end of the load", () => {
    const g = writeGap([100, 200, 3000, 3010], 250, 9000);
    expect(g).toEqual({ start: 3010, end: 9000, ms: 5990 });
  });

  test("acks that land just after the fault do not hide the hole that follows", () => {
    // in-flight commits acknowledged 10 ms after the fault, then nothing for 9 s
    const g = writeGap([990, 1000, 1010, 10_010], 1000, 12_000);
    expect(g.ms).toBe(9000);
    expect(g.start).toBe(1010);
  });

  test("a recorded kill-primary: RTO, detection, promotion, routing, health", () => {
    const r = analyze(recording(), 15_000);
    expect(r.passed).toBe(true);
    expect(r.failures).toEqual([]);
    // last ack at FAULT-20+3, first after at the first 20 ms slot >= FAULT+11500 (+3)
    expect(r.metrics.rtoMs).toBe(11_500 + 20);
    expect(r.metrics.detectionMs).toBe(10_000);
    expect(r.metrics.promotionMs).toBe(10_300);
    expect(r.metrics.routedMs).toBe(12_000);
    expect(r.metrics.healthyMs).toBe(18_000);
    expect(r.metrics.lost).toEqual([]);
    expect(r.metrics.writesFailed).toBe(4);
    expect(r.metrics.readAvailability).toBeCloseTo(2 / 3, 5);
    expect(r.metrics.maxPrimaries).toBe(1);
  });

  test("default budget: ttl + loop_wait + HAProxy detection + 2 s margin", () => {
    const cfg = { timing: { ttl: 10, loopWait: 1 }, haproxy: { interMs: 1000, fall: 2, rise: 2 } } as Parameters<
      typeof defaultBudgetMs
    >[0];
    expect(defaultBudgetMs(cfg)).toBe(15_000);
    expect(defaultBudgetMs(cfg, "hang-primary")).toBe(17_000);
    expect(
      defaultBudgetMs({ ...cfg, timing: { ...cfg.timing, ttl: 30, loopWait: 10 } } as typeof cfg, "kill-primary", 5000),
    ).toBe(47_000);
  });

  test("RTO above the budget fails the run", () => {
    const r = analyze(recording({}, 16_000), 15_000);
    expect(r.passed).toBe(false);
    expect(r.failures.join()).toMatch(/RTO 16\.0 s exceeds the budget of 15\.0 s/);
  });

  test("no acknowledged write after the fault fails the run", () => {
    const rec = recording();
    rec.writes = rec.writes.filter((w) => w.end < FAULT);
    const r = analyze(rec, 15_000);
    expect(r.passed).toBe(false);
    expect(r.metrics.rtoMs).toBeNull();
    expect(r.failures.join()).toMatch(/no write acknowledged after the fault/);
  });
});

describe("RPO arithmetic", () => {
  test("a timeline with one lost acknowledged write fails the drill", () => {
    const rec = recording();
    const found = rec.found as Map<number, number>;
    const victim = rec.writes.find((w) => w.ok && w.end > FAULT)!.id;
    found.delete(victim);
    const r = analyze(rec, 15_000);
    expect(r.passed).toBe(false);
    expect(r.metrics.lost).toEqual([victim]);
    expect(r.failures[0]).toMatch(/1 acknowledged write\(s\) lost \(RPO > 0\)/);
  });

  test("an unacknowledged write may be missing or present: neither is a loss", () => {
    const rec = recording();
    const failed = rec.writes.filter((w) => !w.ok);
    (rec.found as Map<number, number>).set(failed[0]!.id, 1); // committed, but the ack never arrived
    expect(analyze(rec, 15_000).passed).toBe(true);
  });

  test("an id present twice fails the drill", () => {
    const rec = recording();
    (rec.found as Map<number, number>).set(7, 2);
    const r = analyze(rec, 15_000);
    expect(r.passed).toBe(false);
    expect(r.metrics.duplicates).toEqual([7]);
  });

  test("checkIds works on plain maps", () => {
    expect(
      checkIds(
        [1, 2, 3],
        new Map([
          [1, 1],
          [3, 2],
        ]),
      ),
    ).toEqual({ lost: [2], duplicates: [3] });
  });

  test("a report read back from JSON (ids as object keys) gives the same answer", () => {
    const rec = recording();
    const obj = Object.fromEntries([...(rec.found as Map<number, number>)].map(([k, v]) => [String(k), v]));
    expect(analyze({ ...rec, found: obj }, 15_000).metrics.lost).toEqual([]);
  });
});

describe("scenario expectations", () => {
  test("two members answering as primary at once is split brain", () => {
    const rec = recording();
    rec.samples[60] = { ...rec.samples[60]!, primaries: ["pg1", "pg2"] };
    const r = analyze({ ...rec, scenario: "hang-primary" }, 15_000);
    expect(r.passed).toBe(false);
    expect(r.failures.join()).toMatch(/split brain/);
  });

  test("kill-primary without a new leader fails; an etcd loss with a new leader fails", () => {
    expect(analyze(recording({ leaderAfter: "pg1", oldLeaderRole: "leader" }), 15_000).failures.join()).toMatch(
      /no failover happened/,
    );
    expect(analyze(recording({ scenario: "etcd-quorum-loss" }), 15_000).failures.join()).toMatch(/must not fail over/);
  });

  test("the old primary must come back as a replica", () => {
    expect(analyze(recording({ oldLeaderRole: "stopped" }), 15_000).failures.join()).toMatch(
      /did not rejoin as a replica/,
    );
  });

  test("a cluster that did not converge fails", () => {
    const r = analyze(recording({ convergence: { ok: false, problems: ["2/3 members running"] } }), 15_000);
    expect(r.failures.join()).toMatch(/did not converge: 2\/3 members running/);
    expect(r.metrics.healthyMs).toBeNull();
  });

  test("detection and routing read the monitor samples", () => {
    const rec = recording();
    expect(detectionAt(rec)).toBe(FAULT + 10_000);
    expect(routedAt(rec.samples, FAULT, "pg2")).toBe(FAULT + 12_000);
    expect(routedAt(rec.samples, FAULT, undefined)).toBeUndefined();
    expect(detectionAt({ ...rec, scenario: "etcd-member-loss" })).toBeUndefined();
  });
});

describe("inputs and helpers", () => {
  test("scenario names", () => {
    expect(parseScenarios(undefined)).toEqual(["kill-primary"]);
    expect(parseScenarios("all")).toEqual([...SCENARIOS]);
    expect(parseScenarios("switchover, crash-postgres,switchover")).toEqual(["switchover", "crash-postgres"]);
    expect(parseScenarios("kill-primary,explode")).toEqual({ unknown: ["explode"] });
  });

  test("Patroni history timestamps (microseconds, offsets)", () => {
    expect(parsePatroniTime("2026-11-21T21:50:01.123456+00:00")).toBe(Date.UTC(2026, 10, 21, 21, 50, 1, 123));
    expect(parsePatroniTime("2026-11-21T22:50:01+01:00")).toBe(Date.UTC(2026, 10, 21, 21, 50, 1));
    expect(parsePatroniTime("2026-11-21 21:50:01.5+0000")).toBe(Date.UTC(2026, 10, 21, 21, 50, 1, 500));
    expect(parsePatroniTime("yesterday")).toBeUndefined();
    expect(parsePatroniTime(undefined)).toBeUndefined();
  });

  test("median and summary over rounds", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([])).toBeNull();
    const a = analyze(recording(), 15_000);
    const b = analyze(recording({ round: 2 }, 9_000), 15_000);
    const s = summarize([a, b]);
    expect(s).toHaveLength(1);
    expect(s[0]!.rounds).toBe(2);
    expect(s[0]!.maxRtoMs).toBe(11_520);
    expect(s[0]!.lostTotal).toBe(0);
  });
});

describe("report", () => {
  test("the timeline picture marks the fault, the promotion and the hole", () => {
    const rec = recording();
    const r = analyze(rec, 15_000);
    const svg = timelineSvg(r, binSeries(rec), { restoreMs: 12_000 });
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trim().endsWith("</svg>")).toBe(true);
    for (const label of [
      "fault 0.0 s",
      "detected 10.0 s",
      "promoted 10.3 s",
      "HAProxy routes 12.0 s",
      "healthy 18.0 s",
      "no acknowledged write: 11.5 s",
      "kill-primary round 1: PASS",
    ]) {
      expect(svg).toContain(label);
    }
    expect(svg).not.toContain("NaN");
  });

  test("bins count every write once", () => {
    const rec = recording();
    const s = binSeries({ ...rec, connectFailures: [FAULT + 1000] });
    expect(s.acked.reduce((a, b) => a + b, 0)).toBe(rec.writes.filter((w) => w.ok).length);
    expect(s.failed.reduce((a, b) => a + b, 0)).toBe(5);
  });

  test("the table shows a lost write as FAIL", () => {
    const rec = recording();
    (rec.found as Map<number, number>).delete(1);
    const rows = resultRows([analyze(rec, 15_000)]);
    expect(rows[1]![rows[0]!.indexOf("lost")]).toBe("1");
    expect(rows[1]![rows[1]!.length - 1]).toBe("FAIL");
  });
});

describe("drill SQL is built as data", () => {
  test("one table per run, no unique key (a duplicate must show, not be rejected), identifiers quoted", async () => {
    const { createTableSql, insertSql } = await import("../../scripts/lib/failover/load");
    expect(createTableSql("w_kill_primary_r1_1")).toEqual([
      'CREATE SCHEMA IF NOT EXISTS "pgplatform_drill"',
      'CREATE TABLE "pgplatform_drill"."w_kill_primary_r1_1" (id bigint NOT NULL, writer int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())',
      'CREATE INDEX ON "pgplatform_drill"."w_kill_primary_r1_1" (id)',
    ]);
    expect(insertSql("w")).toBe(
      'INSERT INTO "pgplatform_drill"."w" (id, writer) VALUES ($1, $2) RETURNING inet_server_addr()::text AS s',
    );
    expect(createTableSql('x"y')[1]).toContain('"x""y"');
  });
});
