/** Pure comparison of source and target fingerprints: the verdict of a migration. */
import type { ObjectCounts, SequenceState, TableFingerprint } from "./catalog";

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

export interface Verification {
  ok: boolean;
  tables: TableCheck[];
  sequences: SequenceCheck[];
  objects: CountCheck[];
  mismatches: string[];
}

/** A sequence's next value is what matters: last_value, or "not yet called". */
const seqValue = (s: SequenceState | undefined) => (s ? (s.isCalled ? s.lastValue : `${s.lastValue} (not called)`) : null);

export function compareMigration(
  source: { tables: Record<string, TableFingerprint>; sequences: Record<string, SequenceState>; counts: ObjectCounts },
  target: { tables: Record<string, TableFingerprint | undefined>; sequences: Record<string, SequenceState>; counts: ObjectCounts },
): Verification {
  const mismatches: string[] = [];
  const tables = Object.keys(source.tables).sort().map((table) => {
    const s = source.tables[table]!;
    const t = target.tables[table];
    const ok = !!t && t.rows === s.rows && t.checksum === s.checksum;
    if (!t) mismatches.push(`table ${table}: missing on the target`);
    else if (t.rows !== s.rows) mismatches.push(`table ${table}: ${s.rows} rows on the source, ${t.rows} on the target`);
    else if (t.checksum !== s.checksum) mismatches.push(`table ${table}: same row count (${s.rows}) but the rows differ (checksum)`);
    return { table, sourceRows: s.rows, targetRows: t?.rows ?? null, sourceChecksum: s.checksum, targetChecksum: t?.checksum ?? null, ok };
  });
  const sequences = Object.keys(source.sequences).sort().map((sequence) => {
    const s = seqValue(source.sequences[sequence]);
    const t = seqValue(target.sequences[sequence]);
    const ok = s === t;
    if (!ok) mismatches.push(`sequence ${sequence}: ${s} on the source, ${t ?? "missing"} on the target`);
    return { sequence, source: s, target: t, ok };
  });
  const objects = (Object.keys(source.counts) as (keyof ObjectCounts)[]).map((object) => {
    const ok = source.counts[object] === target.counts[object];
    if (!ok) mismatches.push(`${object}: ${source.counts[object]} on the source, ${target.counts[object]} on the target`);
    return { object, source: source.counts[object], target: target.counts[object], ok };
  });
  return { ok: mismatches.length === 0, tables, sequences, objects, mismatches };
}

export { formatBytes } from "../ui";
