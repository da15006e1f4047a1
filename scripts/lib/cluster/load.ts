/**
 * A write load through a cluster's VIP (the drill's and the lab test's):
 * one connection, one row per unique id, an id recorded only once its
 * COMMIT was acknowledged; a write that errors is never retried under the
 * same id. Measures the longest gap between two acknowledged writes.
 */
import pg from "pg";

export interface WriteLoadTarget {
  host: string;
  port: number;
  password: string;
  table: string;
  firstId: number;
}

/** A pause between two acknowledged writes longer than GAP_MS: when it ended (epoch ms) and how long. */
export interface Gap {
  endedAt: number;
  ms: number;
}
export const GAP_MS = 500;

export interface WriteLoad {
  acked: number[];
  /** resolves with the load's figures once the loop has ended */
  stop(): Promise<{ acked: number[]; errors: number; maxGapMs: number; gaps: Gap[] }>;
}

/** The table the load writes to (an identifier chosen by the toolkit, never a user's). Pure. */
export const loadTableSql = (table: string) => `CREATE TABLE IF NOT EXISTS ${table} (id bigint PRIMARY KEY)`;

/** A connected client as postgres through the VIP (errors after connecting are the caller's to see, not the process's). */
async function pgClient(t: Pick<WriteLoadTarget, "host" | "port" | "password">, connectMs: number, queryMs?: number) {
  const c = new pg.Client({
    host: t.host,
    port: t.port,
    user: "postgres",
    password: t.password,
    database: "postgres",
    connectionTimeoutMillis: connectMs,
    query_timeout: queryMs,
  });
  c.on("error", () => {});
  await c.connect();
  return c;
}

export function startWriteLoad(t: WriteLoadTarget, onAck: (id: number) => void = () => {}): WriteLoad {
  const acked: number[] = [];
  let stopping = false;
  let errors = 0;
  let maxGap = 0;
  const gaps: Gap[] = [];
  let last = Date.now();
  let client: pg.Client | undefined;
  const loop = (async () => {
    for (let id = t.firstId; !stopping; id++) {
      try {
        client ??= await pgClient(t, 1000, 2000);
        await client.query(`INSERT INTO ${t.table} (id) VALUES ($1)`, [id]);
        acked.push(id);
        onAck(id);
        const now = Date.now();
        maxGap = Math.max(maxGap, now - last);
        if (now - last > GAP_MS) gaps.push({ endedAt: now, ms: now - last });
        last = now;
        await Bun.sleep(20);
      } catch {
        errors++;
        await client?.end().catch(() => {});
        client = undefined;
        await Bun.sleep(100);
      }
    }
    await client?.end().catch(() => {});
  })();
  return {
    acked,
    stop: async () => {
      stopping = true;
      await loop;
      return { acked, errors, maxGapMs: maxGap, gaps };
    },
  };
}

/** The acknowledged ids missing from the table (read through the VIP once the cluster is whole again). */
export async function lostWrites(t: Omit<WriteLoadTarget, "firstId">, acked: number[]): Promise<number[]> {
  if (!acked.length) return [];
  const c = await pgClient(t, 5000);
  try {
    const r = await c.query(`SELECT id FROM ${t.table} WHERE id BETWEEN $1 AND $2`, [
      acked[0],
      acked[acked.length - 1],
    ]);
    const stored = new Set(r.rows.map((x: { id: string }) => Number(x.id)));
    return acked.filter((id) => !stored.has(id));
  } finally {
    await c.end().catch(() => {});
  }
}
