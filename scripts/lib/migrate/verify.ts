/** Pure comparison of source and target fingerprints: the verdict of a migration. */
import type { ObjectCounts, SequenceState, TableFingerprint } from "./fingerprint";

export interface TableCheck {
  table: string;
  sourceRows: number;
  targetRows: number | null;
  sourceChecksum: string;
  targetChecksum: string | null;
  ok: boolean;
}

export interface SequenceCheck {
  sequence: string;
  source: string | null;
  target: string | null;
  ok: boolean;
}

export interface CountCheck {
  object: keyof ObjectCounts;
  source: number;
  target: number;
  ok: boolean;
}

/** One definition (function body, view, policy, trigger, constraint, index, default, enum), publication membership or large object. */
export interface DefinitionCheck {
  object: string;
  source: string | null;
  target: string | null;
  ok: boolean;
}

export interface Verification {
  ok: boolean;
  tables: TableCheck[];
  sequences: SequenceCheck[];
  objects: CountCheck[];
  /** definitions, publication membership and large objects, compared one by one */
  definitions: DefinitionCheck[];
  mismatches: string[];
}

/** What the source has and the target need not: objects left out on purpose (PLAN named them, the run accepted it). */
export interface Expected {
  /** keys (pg_describe_object text) of definitions left out */
  leftOut?: Set<string>;
  /** how many objects of each counted kind were left out */
  leftOutCounts?: Partial<ObjectCounts>;
}

/** Extra comparisons beyond rows: each side's map of key -> fingerprint text. */
export interface Extras {
  definitions?: Record<string, string>;
  publications?: Record<string, string>;
  largeObjects?: Record<string, string>;
}

/** A sequence's next value is what matters: last_value, or "not yet called". */
const seqValue = (s: SequenceState | undefined) =>
  s ? (s.isCalled ? s.lastValue : `${s.lastValue} (not called)`) : null;

export function compareMigration(
  source: {
    tables: Record<string, TableFingerprint>;
    sequences: Record<string, SequenceState>;
    counts: ObjectCounts;
  } & Extras,
  target: {
    tables: Record<string, TableFingerprint | undefined>;
    sequences: Record<string, SequenceState>;
    counts: ObjectCounts;
  } & Extras,
  expected: Expected = {},
): Verification {
  const mismatches: string[] = [];
  const tables = Object.keys(source.tables)
    .sort()
    .map((table) => {
      const s = source.tables[table]!;
      const t = target.tables[table];
      const ok = !!t && t.rows === s.rows && t.checksum === s.checksum;
      if (!t) mismatches.push(`table ${table}: missing on the target`);
      else if (t.rows !== s.rows)
        mismatches.push(`table ${table}: ${s.rows} rows on the source, ${t.rows} on the target`);
      else if (t.checksum !== s.checksum)
        mismatches.push(`table ${table}: same row count (${s.rows}) but the rows differ (checksum)`);
      return {
        table,
        sourceRows: s.rows,
        targetRows: t?.rows ?? null,
        sourceChecksum: s.checksum,
        targetChecksum: t?.checksum ?? null,
        ok,
      };
    });
  const sequences = Object.keys(source.sequences)
    .sort()
    .map((sequence) => {
      const s = seqValue(source.sequences[sequence]);
      const t = seqValue(target.sequences[sequence]);
      const ok = s === t;
      if (!ok) mismatches.push(`sequence ${sequence}: ${s} on the source, ${t ?? "missing"} on the target`);
      return { sequence, source: s, target: t, ok };
    });
  const objects = (Object.keys(source.counts) as (keyof ObjectCounts)[]).map((object) => {
    const want = source.counts[object] - (expected.leftOutCounts?.[object] ?? 0);
    const ok = want === target.counts[object];
    if (!ok)
      mismatches.push(
        `${object}: ${source.counts[object]} on the source${want !== source.counts[object] ? ` (${want} expected: the rest was left out)` : ""}, ${target.counts[object]} on the target`,
      );
    return { object, source: source.counts[object], target: target.counts[object], ok };
  });
  const definitions: DefinitionCheck[] = [];
  const leftOut = expected.leftOut ?? new Set<string>();
  for (const [s, t] of [
    [source.definitions, target.definitions],
    [source.publications, target.publications],
    [source.largeObjects, target.largeObjects],
  ] as const) {
    if (!s) continue;
    const tt = t ?? {};
    for (const object of Object.keys(s).sort()) {
      if (leftOut.has(object)) continue;
      const ok = tt[object] === s[object];
      if (!(object in tt)) mismatches.push(`${object}: missing on the target`);
      else if (!ok) mismatches.push(`${object}: differs (source ${s[object]}; target ${tt[object]})`);
      definitions.push({ object, source: s[object]!, target: tt[object] ?? null, ok });
    }
    for (const object of Object.keys(tt).sort()) {
      if (object in s) continue;
      mismatches.push(`${object}: on the target but not on the source`);
      definitions.push({ object, source: null, target: tt[object]!, ok: false });
    }
  }
  return { ok: mismatches.length === 0, tables, sequences, objects, definitions, mismatches };
}
