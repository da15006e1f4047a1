/**
 * An app holding ACCESS EXCLUSIVE on a table (a LOCK TABLE or ALTER TABLE left
 * open in a transaction) used to stall the night's backup without end: pg_dump
 * waited, nothing alerted, and a run killed meanwhile left its manifest
 * `running`. The wait is bounded by BACKUP_LOCK_WAIT_SECONDS and the failure
 * names the session that holds the lock.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { logicalBackup } from "../../scripts/lib/backup/logical";
import { readManifest } from "../../scripts/lib/backup/manifest";
import { ToolkitError } from "../../scripts/lib/errors";
import { connect, memberTarget, quoteIdent } from "../../scripts/lib/pg";
import { testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const DB = cfg.databases[0]!;
const TABLE = "pgp_lock_held";
const created: string[] = [];
const quiet = () => {};

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  const c = await connect(cfg, { database: DB, catalogOnly: true });
  await c.query(
    `CREATE TABLE IF NOT EXISTS public.${quoteIdent(TABLE)} (id int); INSERT INTO public.${quoteIdent(TABLE)} VALUES (1)`,
  );
  await c.end();
}, 60_000);

afterAll(async () => {
  const c = await connect(cfg, { database: DB, catalogOnly: true });
  await c.query(`DROP TABLE IF EXISTS public.${quoteIdent(TABLE)}`).catch(() => {});
  await c.end();
  for (const id of created) rmSync(join(cfg.backup.dir, id), { recursive: true, force: true });
});

describe("a backup meeting a table an app holds locked", () => {
  test("fails after BACKUP_LOCK_WAIT_SECONDS with BACKUP_LOCKED naming the holder's pid, application and table; the manifest says failed", async () => {
    const holder = await connect(cfg, { database: DB, catalogOnly: true });
    try {
      await holder.query("SET application_name = 'pgp-lock-holder'");
      const pid = (await holder.query("SELECT pg_backend_pid() AS p")).rows[0].p as number;
      await holder.query(`BEGIN; LOCK TABLE public.${quoteIdent(TABLE)} IN ACCESS EXCLUSIVE MODE`);
      // The lock is WAL-logged: wait until every replica's startup process holds it too (a dump there waits as well).
      for (const m of cfg.members) {
        const c = await connect(cfg, { target: memberTarget(m), database: DB, catalogOnly: true });
        try {
          for (let i = 0; i < 100; i++) {
            const n = (
              await c
                .query(
                  "SELECT count(*)::int AS n FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND locktype = 'relation' AND relation = $1::regclass",
                  [`public.${TABLE}`],
                )
                .catch(() => ({ rows: [{ n: 0 }] }))
            ).rows[0].n;
            if (n > 0) break;
            await Bun.sleep(100);
          }
        } finally {
          await c.end().catch(() => {});
        }
      }
      const id = `20261130T000000Z-lock${process.pid}`;
      created.push(id);
      const t0 = Date.now();
      const err = await logicalBackup(
        { ...cfg, backup: { ...cfg.backup, lockWaitSeconds: 2 } },
        { databases: [DB], id },
        quiet,
      ).then(
        () => undefined,
        (e) => e,
      );
      const waited = (Date.now() - t0) / 1000;
      expect(err).toBeInstanceOf(ToolkitError);
      expect(err.code).toBe("BACKUP_LOCKED");
      expect(err.message).toContain(
        `backup of ${DB} waited 2 s for a table lock and gave up: pid ${pid} (user postgres, application pgp-lock-holder, transaction since `,
      );
      expect(err.message).toContain(
        `holds public.${TABLE}: BEGIN; LOCK TABLE public."${TABLE}" IN ACCESS EXCLUSIVE MODE`,
      );
      expect(waited).toBeLessThan(30);
      expect(readManifest(join(cfg.backup.dir, id)).status).toBe("failed");
    } finally {
      await holder.query("ROLLBACK").catch(() => {});
      await holder.end().catch(() => {});
    }
  }, 120_000);

  test("once the lock is gone, the same backup runs", async () => {
    const id = `20261130T000001Z-lock${process.pid}`;
    created.push(id);
    const r = await logicalBackup(
      { ...cfg, backup: { ...cfg.backup, lockWaitSeconds: 2 } },
      { databases: [DB], id },
      quiet,
    );
    expect(r.manifest.status).toBe("dumped");
    expect(r.manifest.databases[0]!.tables.find((t) => t.table === TABLE)?.rows).toBe(1);
  }, 120_000);
});
