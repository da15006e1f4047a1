/**
 * Issue 19 item 2: a checkout deep in a home directory. A scratch Postgres
 * (what backup verification and restore-pitr start) must come up whatever the
 * checkout's depth: its socket lives under the short runtime folder, not in
 * <checkout>/.state/<stack>/members/scratch/<name>/run (past sun_path's 107
 * bytes). And when a scratch instance does fail to start, Postgres' own log
 * line is in the error and the log is kept. Needs no cluster: only initdb/pg_ctl.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseConfig, ROOT_DIR } from "../../scripts/lib/config";
import { osUserIds } from "../../scripts/lib/exec";
import {
  initScratch,
  removeScratch,
  scratchClient,
  scratchFor,
  startScratch,
  writeScratchConf,
} from "../../scripts/lib/backup/scratch";
import { generateSecret } from "../../scripts/lib/secrets";
import { registerSecret } from "../../scripts/lib/redact";

const DEEP_BASE = "/tmp/pgp-user-deep-checkout";
const DEEP = join(
  DEEP_BASE,
  "a-developer-home",
  "src",
  "github.com",
  "an-organisation-name",
  "a-project-with-a-long-name",
  "worktrees",
  "feature-x",
);
const STACK = `deep-${process.pid}`;
const password = generateSecret(24);
registerSecret(password);
const cfg = parseConfig(readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8"), {
  file: "envs/test.env",
  stack: STACK,
  rootDir: DEEP,
  secrets: { POSTGRES_PASSWORD: password },
});

afterAll(() => {
  rmSync(DEEP_BASE, { recursive: true, force: true });
  rmSync(cfg.runtimeDir, { recursive: true, force: true });
});

describe("a checkout more than 120 characters deep", () => {
  test("the path really is deep, and the old socket location would not fit", () => {
    expect(DEEP.length).toBeGreaterThan(120);
    const old = join(cfg.memberRoot, "scratch", "verify-20261130T163652Z-20261130T163652Z", "run", ".s.PGSQL.5432");
    expect(Buffer.byteLength(old)).toBeGreaterThan(107);
  });

  test("a verification scratch instance starts, listening on a socket in the runtime folder", async () => {
    mkdirSync(DEEP, { recursive: true, mode: 0o755 });
    const s = scratchFor(cfg, "verify-20261130T163652Z-20261130T163652Z");
    expect(s.dir.startsWith(DEEP)).toBe(true);
    try {
      await initScratch(cfg, s);
      writeScratchConf(cfg, s, {}, { fast: true });
      await startScratch(cfg, s, 60);
      const c = await scratchClient(cfg, s);
      try {
        const r = await c.query("SELECT current_setting('unix_socket_directories') AS d");
        expect(r.rows[0].d).toBe(s.socketDir);
      } finally {
        await c.end();
      }
      expect(existsSync(join(s.socketDir, `.s.PGSQL.${s.port}`))).toBe(true);
      const st = statSync(s.socketDir);
      expect(st.mode & 0o777).toBe(0o700);
      expect(st.uid).toBe(cfg.pgOsUser ? osUserIds(cfg.pgOsUser)!.uid : process.getuid!());
    } finally {
      await removeScratch(cfg, s);
    }
    expect(existsSync(s.socketDir)).toBe(false);
    expect(existsSync(s.dir)).toBe(false);
  }, 180_000);

  test("a scratch start failure names Postgres' own log line and keeps the log", async () => {
    const s = scratchFor(cfg, "verify-20261130T170000Z-broken");
    try {
      await initScratch(cfg, s);
      writeScratchConf(cfg, s, { shared_buffers: "lots" });
      const err = await startScratch(cfg, s, 30).then(
        () => undefined,
        (e) => e,
      );
      expect(err?.code).toBe("SCRATCH_START_FAILED");
      expect(err.message).toContain(`scratch instance ${s.name} did not start: `);
      expect(err.message).toContain('invalid value for parameter "shared_buffers": "lots"');
      const kept = join(cfg.logsDir, `scratch-${s.name}.log`);
      expect(err.fix).toBe(`see ${kept} (kept)`);
      await removeScratch(cfg, s);
      expect(readFileSync(kept, "utf8")).toContain('invalid value for parameter "shared_buffers": "lots"');
    } finally {
      await removeScratch(cfg, s).catch(() => {});
    }
  }, 180_000);
});
