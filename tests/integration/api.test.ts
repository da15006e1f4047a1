/**
 * A script of your own on the API (examples/nightly.ts): its cheap part
 * against the test stack agrees with `make status --json`.
 */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { status } from "../../scripts/api";
import { BUN, runScript, TEST_STACK } from "./stack";

test("nightly.ts --status-only: stack, health, leader, read-write endpoint as status --json says", async () => {
  const viaScript = JSON.parse(runScript("status.ts", ["--json"]).stdout);
  const r = spawnSync(BUN, ["examples/nightly.ts", "--status-only"], {
    cwd: join(import.meta.dir, "../.."),
    env: { ...process.env, STACK: TEST_STACK },
    encoding: "utf8",
    timeout: 120_000,
  });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  const leader = viaScript.members.find((m: { role: string }) => m.role === "leader").name;
  expect(JSON.parse(r.stdout)).toEqual({
    stack: TEST_STACK,
    healthy: true,
    leader,
    readWrite: viaScript.endpoints.readWrite,
  });
  // The same data through the API in this process.
  const s = await status({ stack: TEST_STACK });
  expect([s.stack, s.health.ok, s.members.find((m) => m.role === "leader")?.name]).toEqual([TEST_STACK, true, leader]);
});
