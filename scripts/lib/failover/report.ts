/**
 * What a person reads after a drill: a terminal table, a JSON report per run
 * of the command, and a self-contained SVG timeline per scenario round
 * (gathered into one HTML page). Pure: returns strings; the caller writes.
 */
import type { Config } from "../config";
import type { Recording, RunResult } from "./analysis";
import { summarize } from "./analysis";

const s1 = (ms: number | null | undefined) => (ms === null || ms === undefined ? "-" : (ms / 1000).toFixed(1));
const pct = (x: number | null) => (x === null ? "-" : `${(x * 100).toFixed(1)}%`);

export function resultRows(results: RunResult[]): string[][] {
  const rows = [
    [
      "scenario",
      "round",
      "RTO s",
      "detect s",
      "promote s",
      "route s",
      "healthy s",
      "reads ok",
      "acked",
      "lost",
      "dup",
      "leader",
      "rejoin",
      "result",
    ],
  ];
  for (const r of results) {
    const m = r.metrics;
    rows.push([
      r.scenario,
      String(r.round),
      s1(m.rtoMs),
      s1(m.detectionMs),
      s1(m.promotionMs),
      s1(m.routedMs),
      s1(m.healthyMs),
      pct(m.readAvailability),
      String(m.writesAcked),
      String(m.lost.length),
      String(m.duplicates.length),
      r.leaderAfter && r.leaderAfter !== r.leaderBefore ? `${r.leaderBefore}->${r.leaderAfter}` : r.leaderBefore,
      // how the old leader came back: pg_rewind, or it could simply follow (nothing to undo)
      r.rewound === undefined ? "-" : r.rewound ? "pg_rewind" : "follow",
      r.passed ? "PASS" : "FAIL",
    ]);
  }
  return rows;
}

export function summaryRows(results: RunResult[]): string[][] {
  const rows = [["scenario", "rounds", "passed", "median RTO s", "max RTO s", "lost writes"]];
  for (const s of summarize(results))
    rows.push([s.scenario, String(s.rounds), String(s.passed), s1(s.medianRtoMs), s1(s.maxRtoMs), String(s.lostTotal)]);
  return rows;
}

/** Write latency, throughput, errors and reads in fixed bins relative to the fault: small enough for the JSON. */
export interface Series {
  binMs: number;
  fromMs: number;
  /** per bin: acknowledged writes, failed writes (incl. failed connects), max and median ack latency, reads ok / failed */
  acked: number[];
  failed: number[];
  maxLatencyMs: (number | null)[];
  reads: number[];
  readsFailed: number[];
}

export function binSeries(rec: Recording & { connectFailures?: number[] }, binMs = 100): Series {
  const from = rec.loadStartAt - rec.faultAt;
  const n = Math.max(1, Math.ceil((rec.loadEndAt - rec.loadStartAt) / binMs));
  const idx = (t: number) => Math.min(n - 1, Math.max(0, Math.floor((t - rec.loadStartAt) / binMs)));
  const s: Series = {
    binMs,
    fromMs: from,
    acked: Array(n).fill(0),
    failed: Array(n).fill(0),
    maxLatencyMs: Array(n).fill(null),
    reads: Array(n).fill(0),
    readsFailed: Array(n).fill(0),
  };
  for (const w of rec.writes) {
    const i = idx(w.end);
    if (w.ok) {
      s.acked[i]!++;
      s.maxLatencyMs[i] = Math.max(s.maxLatencyMs[i] ?? 0, w.end - w.start);
    } else s.failed[i]!++;
  }
  for (const t of rec.connectFailures ?? []) s.failed[idx(t)]!++;
  for (const r of rec.reads) (r.ok ? s.reads : s.readsFailed)[idx(r.end)]!++;
  return s;
}

const esc = (t: string) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** One scenario round as a self-contained SVG. */
export function timelineSvg(result: RunResult, series: Series, marks: { restoreMs?: number | null } = {}): string {
  const W = 960,
    H = 312,
    L = 60,
    R = 20,
    T = 34;
  const latH = 140,
    thrY = T + latH + 10,
    thrH = 40,
    errY = thrY + thrH + 8,
    errH = 14,
    rdY = errY + errH + 6,
    rdH = 14;
  const n = series.acked.length;
  const t0 = series.fromMs,
    t1 = series.fromMs + n * series.binMs;
  const x = (ms: number) => L + ((ms - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const lat = (ms: number) => {
    const v = Math.log10(Math.min(30_000, Math.max(1, ms)));
    return T + latH - (v / Math.log10(30_000)) * latH;
  };
  const m = result.metrics;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui,sans-serif" font-size="11">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  const verdict = result.passed ? "PASS" : "FAIL";
  out.push(
    `<text x="${L}" y="16" font-size="14" font-weight="bold">${esc(`${result.scenario} round ${result.round}: ${verdict}`)} <tspan font-weight="normal" fill="#444">${esc(`RTO ${s1(m.rtoMs)} s (budget ${s1(result.budgetMs)} s), ${m.lost.length} acknowledged writes lost, leader ${result.leaderBefore}${result.leaderAfter && result.leaderAfter !== result.leaderBefore ? ` -> ${result.leaderAfter}` : ""}`)}</tspan></text>`,
  );
  // write-unavailability window
  if (m.gapStartMs !== null) {
    const gx0 = x(m.gapStartMs),
      gx1 = x(m.gapEndMs ?? t1);
    out.push(
      `<rect x="${gx0.toFixed(1)}" y="${T}" width="${Math.max(1, gx1 - gx0).toFixed(1)}" height="${rdY + rdH - T}" fill="#fde2e2"/>`,
    );
    out.push(
      `<text x="${((gx0 + gx1) / 2).toFixed(1)}" y="${T + 12}" text-anchor="middle" fill="#b00">${esc(`no acknowledged write: ${s1(m.rtoMs ?? (m.gapEndMs === null ? t1 - m.gapStartMs : null))} s`)}</text>`,
    );
  }
  // latency axis
  for (const v of [1, 10, 100, 1000, 10_000]) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${lat(v).toFixed(1)}" y2="${lat(v).toFixed(1)}" stroke="#eee"/>`);
    out.push(
      `<text x="${L - 4}" y="${(lat(v) + 4).toFixed(1)}" text-anchor="end" fill="#666">${v >= 1000 ? `${v / 1000}s` : `${v}ms`}</text>`,
    );
  }
  out.push(`<text x="${L - 4}" y="${T - 4}" text-anchor="end" fill="#666">latency</text>`);
  const pts: string[] = [];
  series.maxLatencyMs.forEach((v, i) => {
    if (v !== null)
      pts.push(
        `<circle cx="${x(t0 + (i + 0.5) * series.binMs).toFixed(1)}" cy="${lat(v).toFixed(1)}" r="1.6" fill="#2563eb"/>`,
      );
  });
  out.push(...pts);
  // throughput
  const maxAck = Math.max(1, ...series.acked);
  out.push(`<text x="${L - 4}" y="${thrY + 10}" text-anchor="end" fill="#666">acks</text>`);
  series.acked.forEach((v, i) => {
    if (!v) return;
    const h = (v / maxAck) * thrH;
    out.push(
      `<rect x="${x(t0 + i * series.binMs).toFixed(1)}" y="${(thrY + thrH - h).toFixed(1)}" width="${Math.max(0.6, x(t0 + series.binMs) - x(t0) - 0.3).toFixed(2)}" height="${h.toFixed(1)}" fill="#93c5fd"/>`,
    );
  });
  // errors
  out.push(`<text x="${L - 4}" y="${errY + 11}" text-anchor="end" fill="#666">errors</text>`);
  series.failed.forEach((v, i) => {
    if (v)
      out.push(
        `<rect x="${x(t0 + i * series.binMs).toFixed(1)}" y="${errY}" width="2" height="${errH}" fill="#dc2626"/>`,
      );
  });
  // reads
  out.push(`<text x="${L - 4}" y="${rdY + 11}" text-anchor="end" fill="#666">reads</text>`);
  series.reads.forEach((v, i) => {
    const bad = series.readsFailed[i]!;
    if (v || bad)
      out.push(
        `<rect x="${x(t0 + i * series.binMs).toFixed(1)}" y="${rdY}" width="${Math.max(0.6, x(t0 + series.binMs) - x(t0)).toFixed(2)}" height="${rdH}" fill="${bad ? "#f87171" : "#86efac"}"/>`,
      );
  });
  // events
  const events: [string, number | null | undefined, string][] = [
    ["fault", 0, "#dc2626"],
    ["detected", m.detectionMs, "#ea580c"],
    ["promoted", m.promotionMs, "#16a34a"],
    ["HAProxy routes", m.routedMs, "#2563eb"],
    ["restored", marks.restoreMs, "#7c3aed"],
    ["healthy", m.healthyMs, "#374151"],
  ];
  // Lines in the plot, names in a legend row below (events a few hundred ms apart would overprint).
  let lx = L;
  for (const [name, ms, color] of events) {
    if (ms === null || ms === undefined || ms < t0 || ms > t1) continue;
    const ex = x(ms).toFixed(1);
    const dash = name === "restored" ? ' stroke-dasharray="4 3"' : "";
    out.push(`<line x1="${ex}" x2="${ex}" y1="${T}" y2="${rdY + rdH}" stroke="${color}" stroke-width="1.5"${dash}/>`);
    const label = `${name} ${s1(ms)} s`;
    out.push(
      `<line x1="${lx}" x2="${lx + 14}" y1="${H - 12}" y2="${H - 12}" stroke="${color}" stroke-width="2"${dash}/>`,
    );
    out.push(`<text x="${lx + 18}" y="${H - 8}" fill="${color}">${esc(label)}</text>`);
    lx += 30 + label.length * 6.2;
  }
  // time axis
  for (let s = Math.ceil(t0 / 5000) * 5; s * 1000 <= t1; s += 5) {
    out.push(`<text x="${x(s * 1000).toFixed(1)}" y="${rdY + rdH + 12}" text-anchor="middle" fill="#666">${s}s</text>`);
  }
  out.push("</svg>");
  return out.join("\n");
}

export function reportHtml(title: string, results: RunResult[], svgs: string[], jsonName: string): string {
  const table = (rows: string[][]) =>
    `<table><thead><tr>${rows[0]!.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>${rows
      .slice(1)
      .map(
        (r) =>
          `<tr class="${r[r.length - 1] === "FAIL" ? "fail" : ""}">${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`,
      )
      .join("")}</tbody></table>`;
  const fails = results
    .filter((r) => !r.passed)
    .map((r) => `<li><b>${esc(`${r.scenario} round ${r.round}`)}</b>: ${esc(r.failures.join("; "))}</li>`);
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font-family:system-ui,sans-serif;margin:24px;color:#111}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f3f4f6}td:first-child,th:first-child{text-align:left}tr.fail td{background:#fee2e2}figure{margin:18px 0}</style></head><body>
<h1>${esc(title)}</h1>
<p>RTO is the longest stretch without an acknowledged write after the fault. Times are seconds after the fault. Raw figures: <a href="${esc(jsonName)}">${esc(jsonName)}</a>.</p>
${table(summaryRows(results))}
${table(resultRows(results))}
${fails.length ? `<h2>Failures</h2><ul>${fails.join("")}</ul>` : "<p><b>Every run passed.</b></p>"}
${svgs.map((s) => `<figure>${s}</figure>`).join("\n")}
</body></html>
`;
}

export interface DrillReport {
  stack: string;
  startedAt: string;
  finishedAt: string;
  timing: Config["timing"];
  haproxyCheck: { interMs: number; fall: number; rise: number };
  /** null: each scenario's default, derived from the HA timing (see each result's budgetMs) */
  budgetMs: number | null;
  options: Record<string, unknown>;
  summary: ReturnType<typeof summarize>;
  passed: boolean;
  results: (RunResult & { series: Series; restoreMs: number | null })[];
}
