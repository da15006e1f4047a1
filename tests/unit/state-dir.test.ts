/** Issue 12: the client release stage followed a hard-coded .state, not STATE_DIR. */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stageRoot } from "../../scripts/lib/deploy/releases";
import { localStateBase } from "../../scripts/lib/state-dir";

const DEV = readFileSync(join(import.meta.dir, "../../envs/dev.env"), "utf8");

describe("the operator's state folder follows STATE_DIR", () => {
  let root: string;
  const saved = process.env.STACK;
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
    if (saved === undefined) delete process.env.STACK;
    else process.env.STACK = saved;
  });
  const withStateDir = (stack: string, value: string) => {
    root = mkdtempSync(join(tmpdir(), "state-dir-"));
    mkdirSync(join(root, "envs"));
    writeFileSync(join(root, "envs", `${stack}.env`), DEV.replace(/^STATE_DIR=.*$/m, `STATE_DIR=${value}`));
  };

  test("relative STATE_DIR: below the checkout; absolute: itself; no env file: .state", () => {
    withStateDir("dev", "var/state");
    expect(localStateBase(root, "dev")).toBe(join(root, "var/state"));
    expect(localStateBase(root, "other")).toBe(join(root, ".state"));
    writeFileSync(join(root, "envs/abs.env"), DEV.replace(/^STATE_DIR=.*$/m, "STATE_DIR=/srv/pgp-state"));
    expect(localStateBase(root, "abs")).toBe("/srv/pgp-state");
  });

  test("a client's release stage lives in <STATE_DIR>/clients/<name> of the current stack", () => {
    withStateDir("ops", "/srv/ops-state");
    process.env.STACK = "ops";
    expect(stageRoot("acme", root)).toBe("/srv/ops-state/clients/acme");
    delete process.env.STACK;
    expect(stageRoot("acme", root)).toBe(join(root, ".state/clients/acme"));
  });
});
