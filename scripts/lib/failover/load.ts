/**
 * The drill's load: concurrent writers through HAProxy's read-write port,
 * each write a fresh id recorded as acknowledged only once its commit
 * returned, and one reader on the read-only port. A write that errors or
 * times out is never retried under the same id (its outcome is unknown, so
 * it may or may not be present; it must not count against RPO).
 */
import type pg from "pg";
import type { Config } from "../config";
import { connect, quoteIdent, roTarget, rwTarget } from "../pg";
import type { ReadRecord, WriteRecord } from "./analysis";

export interface LoadOptions {
  writers: number;
  /** writes per second per writer (a throttle: two cores also run 3 Postgres, Patroni and etcd) */
  ratePerWriter: number;
  /** a write that has not returned after this long is abandoned (its connection dropped) */
  writeTimeoutMs: number;
}

export const DRILL_SCHEMA = "pgplatform_drill";
export const tableRef = (table: string) => `${quoteIdent(DRILL_SCHEMA)}.${quoteIdent(table)}`;

/** No unique key on purpose: a duplicate id must be visible, not rejected. */
export const createTableSql = (table: string) => [
  `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(DRILL_SCHEMA)}`,
  `CREATE TABLE ${tableRef(table)} (id bigint NOT NULL, writer int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  `CREATE INDEX ON ${tableRef(table)} (id)`,
];
export const insertSql = (table: string) =>
  `INSERT INTO ${tableRef(table)} (id, writer) VALUES ($1, $2) RETURNING inet_server_addr()::text AS s`;

function dropConnection(c: pg.Client) {
  // end() waits for the server; a hung primary never answers, so cut the socket.
  (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  c.end().catch(() => {});
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer after ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}

const short = (e: unknown) => String((e as Error)?.message ?? e).slice(0, 120);

export class Load {
  readonly writes: WriteRecord[] = [];
  readonly reads: ReadRecord[] = [];
  /** failed connection attempts (time), for the picture */
  readonly connectFailures: number[] = [];
  private stopping = false;
  /** when stop() was asked: the end of the load (in-flight writes may still land after it) */
  stoppedAt?: number;
  private nextId = 1;
  private loops: Promise<void>[] = [];

  constructor(
    private cfg: Config,
    private table: string,
    private opts: LoadOptions,
  ) {}

  start(): void {
    for (let i = 0; i < this.opts.writers; i++) this.loops.push(this.writer(i + 1));
    this.loops.push(this.reader());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stoppedAt = Date.now();
    await Promise.all(this.loops);
  }

  private async writer(n: number): Promise<void> {
    const sql = insertSql(this.table);
    const pause = Math.max(0, Math.round(1000 / this.opts.ratePerWriter));
    let c: pg.Client | undefined;
    while (!this.stopping) {
      if (!c) {
        try {
          c = await connect(this.cfg, { target: rwTarget(this.cfg), timeoutMs: 1000 });
        } catch {
          this.connectFailures.push(Date.now());
          await Bun.sleep(50);
          continue;
        }
      }
      const id = this.nextId++;
      const start = Date.now();
      try {
        const r = await withTimeout(c.query(sql, [id, n]), this.opts.writeTimeoutMs);
        this.writes.push({
          id,
          writer: n,
          start,
          end: Date.now(),
          ok: true,
          server: String(r.rows[0]?.s ?? "").replace(/\/32$/, ""),
        });
      } catch (e) {
        this.writes.push({ id, writer: n, start, end: Date.now(), ok: false, error: short(e) });
        dropConnection(c);
        c = undefined;
      }
      if (pause) await Bun.sleep(pause);
    }
    if (c) await c.end().catch(() => {});
  }

  private async reader(): Promise<void> {
    let c: pg.Client | undefined;
    while (!this.stopping) {
      const start = Date.now();
      try {
        if (!c) c = await connect(this.cfg, { target: roTarget(this.cfg), timeoutMs: 1000 });
        const r = await withTimeout(c.query("SELECT inet_server_addr()::text AS s, pg_is_in_recovery() AS rec"), 2000);
        this.reads.push({ start, end: Date.now(), ok: true, server: String(r.rows[0]?.s ?? "").replace(/\/32$/, "") });
      } catch {
        this.reads.push({ start, end: Date.now(), ok: false });
        if (c) dropConnection(c);
        c = undefined;
      }
      await Bun.sleep(50);
    }
    if (c) await c.end().catch(() => {});
  }
}
