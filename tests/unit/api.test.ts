/** scripts/api.ts: the verbs as functions for scripts of your own (examples/nightly.ts). */
import { expect, test } from "bun:test";
import * as api from "../../scripts/api";

test("the verbs, the runner and the error type are exported as functions", () => {
  const names = [
    "devUp",
    "devDown",
    "status",
    "backup",
    "restore",
    "switchover",
    "migrationPlan",
    "newApp",
    "removeApp",
    "listApps",
    "$",
    "run",
    "start",
    "within",
    "ToolkitError",
  ] as const;
  const kinds = new Map(Object.entries(api).map(([k, v]) => [k, typeof v]));
  expect(names.filter((n) => kinds.get(n) !== "function")).toEqual([]);
});

test("a verb on a stack without settings is the toolkit's own error, not a crash", async () => {
  let err: unknown;
  try {
    await api.status({ stack: "no-such-stack-zx" });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(api.ToolkitError);
  expect((err as api.ToolkitError).code).toBe("NO_ENV_FILE");
  expect((err as api.ToolkitError).message).toBe("envs/no-such-stack-zx.env does not exist");
});
