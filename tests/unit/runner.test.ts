/**
 * The process runner (scripts/lib/exec.ts, on zx): argv only, typed errors,
 * redaction, and the one place that spawns.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { $, argvOf, quoteArg, run, start, within } from "../../scripts/lib/exec";
import { ToolkitError } from "../../scripts/lib/errors";
import { registerSecret } from "../../scripts/lib/redact";

const ROOT = join(import.meta.dir, "../..");
const tmp = mkdtempSync(join(tmpdir(), "pgp-zx-runner-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const failure = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return err as ToolkitError;
  }
  throw new Error("expected a failure");
};

const tsFiles = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });

test("every spawn in scripts/ goes through scripts/lib/exec.ts", () => {
  const direct = /child_process|Bun\.spawn|spawnSync|execFile|execSync|Bun\.\$/;
  const offenders = tsFiles(join(ROOT, "scripts"))
    .map((f) => relative(ROOT, f))
    .filter((f) => f !== "scripts/lib/exec.ts")
    .flatMap((f) =>
      readFileSync(join(ROOT, f), "utf8")
        .split("\n")
        .flatMap((line, i) => (direct.test(line) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
    );
  expect(offenders).toEqual([]);
});

describe("run(): argv, never a shell", () => {
  test("shell syntax is an argument, not syntax", async () => {
    expect(await run(["echo", "a  b", "$HOME;|", "`id`", ""])).toEqual({
      code: 0,
      stdout: "a  b $HOME;| `id` \n",
      stderr: "",
    });
  });
  test("stdin input, and no input is end of file", async () => {
    expect((await run(["cat"], { input: "line 1\nline 2\n" })).stdout).toBe("line 1\nline 2\n");
    expect((await run(["cat"])).stdout).toBe("");
  });
  test("a child that exits before reading its input is no crash (EPIPE), through run() and $", async () => {
    const big = "x".repeat(4 * 1024 * 1024);
    expect(await run(["true"], { input: big })).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await $({ input: big, nothrow: true })`sh -c ${"exit 3"}`).exitCode).toBe(3);
  });
  test("env and cwd", async () => {
    expect(
      (await run(["sh", "-c", 'printf "%s %s" "$PGP_ZX_VAR" "$(pwd)"'], { env: { PGP_ZX_VAR: "v 1" }, cwd: tmp }))
        .stdout,
    ).toBe(`v 1 ${tmp}`);
  });
  test("a program outside PATH is found in the system bin dirs (a login PATH has no /usr/sbin)", async () => {
    const bin = join(tmp, "sbin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "pgp-zx-probe"), '#!/bin/sh\necho found "$@"\n');
    chmodSync(join(bin, "pgp-zx-probe"), 0o755);
    const saved = process.env.PGPLATFORM_SYSTEM_BIN_DIRS;
    process.env.PGPLATFORM_SYSTEM_BIN_DIRS = bin;
    try {
      expect((await run(["pgp-zx-probe", "x"])).stdout).toBe("found x\n");
    } finally {
      if (saved === undefined) delete process.env.PGPLATFORM_SYSTEM_BIN_DIRS;
      else process.env.PGPLATFORM_SYSTEM_BIN_DIRS = saved;
    }
  });
});

describe("run(): typed errors", () => {
  test("a non-zero exit is COMMAND_FAILED with the redacted stderr tail", async () => {
    registerSecret("Zx-runner-s3cret");
    const err = await failure(
      run(["sh", "-c", "echo 'FATAL: password Zx-runner-s3cret rejected' >&2; exit 3", "Zx-runner-s3cret"]),
    );
    expect(err).toBeInstanceOf(ToolkitError);
    expect(err.code).toBe("COMMAND_FAILED");
    expect(err.message).toBe("exit 3: sh -c 'echo '\\''FATAL: password *** rejected'\\'' >&2; exit 3' ***");
    expect(err.detail).toBe("FATAL: password *** rejected");
  });
  test("nothrow returns the exit code", async () => {
    expect(await run(["sh", "-c", "echo out; exit 4"], { nothrow: true })).toEqual({
      code: 4,
      stdout: "out\n",
      stderr: "",
    });
  });
  test("a missing program is MISSING_BINARY with the fix", async () => {
    const err = await failure(run(["pgp-zx-no-such-program"]));
    expect([err.code, err.fix]).toEqual(["MISSING_BINARY", "run `make setup` to install the OS packages"]);
  });
  test("a timeout kills the command and is TIMEOUT", async () => {
    const t0 = Date.now();
    const err = await failure(run(["sleep", "20"], { timeoutMs: 200 }));
    expect([err.code, err.message]).toEqual(["TIMEOUT", "timed out after 200 ms: sleep 20"]);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe("zx's $ for argv", () => {
  test("interpolated values and arrays stay single arguments; literal text splits on whitespace", async () => {
    expect(argvOf(`psql -X ${quoteArg("a b")} ${["c d", ""].map(quoteArg).join(" ")} --x=${quoteArg("y z")}`)).toEqual([
      "psql",
      "-X",
      "a b",
      "c d",
      "",
      "--x=y z",
    ]);
    const out = await $`printf %s| ${["a b", "; rm -rf /"]}`;
    expect(out.stdout).toBe("a b|; rm -rf /|");
  });
  test("nothrow and within scope options", async () => {
    expect((await $({ nothrow: true })`false`).exitCode).toBe(1);
    const cwd = await within(async () => {
      $.cwd = tmp;
      return (await $`pwd`).stdout.trim();
    });
    expect(cwd).toBe(tmp);
    expect((await $`pwd`).stdout.trim()).toBe(process.cwd());
  });
});

test("start() streams a large output byte for byte without keeping it", async () => {
  const file = join(tmp, "blob");
  writeFileSync(file, Buffer.alloc(24 * 1024 * 1024, "x\n\u00e9\u0000"));
  const p = start(["cat", file]);
  const hash = createHash("sha256");
  for await (const chunk of p.stdout as AsyncIterable<Buffer>) hash.update(chunk);
  const out = await p;
  expect(out.exitCode).toBe(0);
  expect(out.stdout).toBe("");
  expect(hash.digest("hex")).toBe(createHash("sha256").update(readFileSync(file)).digest("hex"));
});
