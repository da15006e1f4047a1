/**
 * A process started as another user goes through setpriv, which then execs the real program.
 * While the kernel swaps the image, /proc/<pid>/cmdline reads empty for a moment: runningPid()
 * must not call that process dead (pgbouncer's "silent exit at start-up" was this: dev-up saw
 * an empty command line, called it dead and started a second one).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runningPid, startProc, stopProc, type ProcSpec } from "../../scripts/lib/procs";

const dir = mkdtempSync(join(tmpdir(), "pgp-procs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Decided without the code under test, so a broken exec.ts cannot turn this test into a skip.
const canRun = process.getuid?.() === 0 && spawnSync("id", ["-u", "postgres"]).status === 0;

describe("runningPid across setpriv's exec", () => {
  test.skipIf(!canRun)(
    "never reports a process started through setpriv as gone while it runs",
    async () => {
      const marker = `${process.pid}.4711`;
      const spec: ProcSpec = {
        name: "sleeper",
        cmd: ["sleep", marker],
        marker,
        pidFile: join(dir, "s.pid"),
        logFile: join(dir, "s.log"),
        asUser: "postgres",
      };
      const misses = new Set<number>();
      try {
        for (let i = 0; i < 25; i++) {
          const pid = startProc(spec);
          expect(pid).toBeGreaterThan(0);
          for (const t0 = Date.now(); Date.now() - t0 < 150; ) if (runningPid(spec) !== pid) misses.add(i);
          await stopProc(spec, 5000);
          expect(runningPid(spec)).toBeUndefined();
        }
      } finally {
        await stopProc(spec, 5000);
      }
      expect([...misses]).toEqual([]);
    },
    60_000,
  );
});
