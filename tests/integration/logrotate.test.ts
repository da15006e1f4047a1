/**
 * Log rotation on a live stack: the log-rotator dev-up runs keeps every component's log under
 * LOG_MAX_SIZE_KB, and the component goes on writing into the emptied file. Run on a stack with a
 * small cap (e.g. LOG_MAX_SIZE_KB=256) to see a rotation within the test's minute; on the test
 * stack (10 MB) the log is grown past the cap first.
 */
import { describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, readFileSync, statSync } from "node:fs";
import { logRotatorSpec, stackLogs } from "../../scripts/lib/logrotate";
import { procSpecs } from "../../scripts/lib/native/specs";
import { reloadPool } from "../../scripts/lib/pool";
import { runningPid } from "../../scripts/lib/procs";
import { testConfig } from "./stack";

const cfg = testConfig();
const cap = cfg.logs.maxSizeKb * 1024;

describe("log rotation on a live stack", () => {
  test("pgbouncer's log grown past its cap is rotated by the running rotator; pgbouncer's next line lands in the emptied file; no log is over its cap", async () => {
    expect(runningPid(logRotatorSpec(cfg))).toBeGreaterThan(0);
    const log = procSpecs(cfg).pool.logFile;
    const marker = `it-logrotate-${Date.now()}`;
    // grow the live log past the cap, as a chatty component would (same O_APPEND file)
    const line = `${marker} ${"x".repeat(200)}\n`;
    appendFileSync(log, line.repeat(Math.ceil((cap + 1) / line.length)));
    expect(statSync(log).size).toBeGreaterThan(cap);
    const t0 = Date.now();
    while (statSync(log).size > cap && Date.now() - t0 < 30_000) await Bun.sleep(500);
    expect(statSync(log).size).toBeLessThanOrEqual(cap);
    expect(readFileSync(`${log}.1`, "utf8")).toContain(marker);
    expect(existsSync(`${log}.${cfg.logs.keep + 1}`)).toBe(false);
    // pgbouncer itself still writes to the same (truncated) file
    await reloadPool(cfg);
    const t1 = Date.now();
    while (!readFileSync(log, "utf8").includes("RELOAD command issued") && Date.now() - t1 < 10_000)
      await Bun.sleep(200);
    const now = readFileSync(log, "utf8");
    expect(now).toContain("RELOAD command issued");
    expect(now.startsWith("\0")).toBe(false); // no hole of NULs where the old content was
    for (const f of stackLogs(cfg)) expect({ f, over: statSync(f).size > cap }).toEqual({ f, over: false });
  }, 90_000);
});
