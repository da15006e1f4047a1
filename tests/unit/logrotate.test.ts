/** Copy-then-truncate rotation of the stack's logs (scripts/lib/logrotate.ts). */
import { afterAll, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../scripts/lib/config";
import { logRotatorSpec, rotateFile, rotateStackLogs, stackLogs } from "../../scripts/lib/logrotate";
import { SECRET_KEYS } from "../../scripts/lib/secrets";

const root = `${import.meta.dir}/../..`;
const dir = mkdtempSync(join(tmpdir(), "pgp-logrotate-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}-0123456789`]));
const testEnv = readFileSync(`${root}/envs/test.env`, "utf8");
const load = (extra: string) =>
  parseConfig(testEnv + extra, { file: "envs/test.env", stack: "test", rootDir: root, isRoot: false, secrets });

describe("rotateFile", () => {
  test("under the cap nothing happens; over it: copied to .1 with its mode, truncated, older copies shifted, the oldest dropped", () => {
    const f = join(dir, "pg1.log");
    writeFileSync(f, "a".repeat(100), { mode: 0o600 });
    expect(rotateFile(f, 100, 2)).toBe(false);
    appendFileSync(f, "first\n");
    expect(rotateFile(f, 100, 2)).toBe(true);
    expect([readFileSync(f, "utf8"), readFileSync(`${f}.1`, "utf8"), statSync(`${f}.1`).mode & 0o777]).toEqual([
      "",
      "a".repeat(100) + "first\n",
      0o600,
    ]);
    writeFileSync(f, "b".repeat(101));
    expect(rotateFile(f, 100, 2)).toBe(true);
    writeFileSync(f, "c".repeat(101));
    expect(rotateFile(f, 100, 2)).toBe(true);
    expect([readFileSync(`${f}.1`, "utf8"), readFileSync(`${f}.2`, "utf8"), existsSync(`${f}.3`)]).toEqual([
      "c".repeat(101),
      "b".repeat(101),
      false,
    ]);
  });

  test("a writer holding the file open with O_APPEND goes on at the start of the emptied file (no hole)", () => {
    const f = join(dir, "etcd1.log");
    const fd = openSync(f, "a", 0o600);
    try {
      writeSync(fd, "x".repeat(500));
      expect(rotateFile(f, 100, 1)).toBe(true);
      writeSync(fd, "after\n");
      expect(readFileSync(f, "utf8")).toBe("after\n");
    } finally {
      closeSync(fd);
    }
  });
});

describe("the stack's logs", () => {
  test("every *.log in the log folder, never the rotated copies; each capped at LOG_MAX_SIZE_KB", () => {
    const cfg = load(`\nSTATE_DIR=${dir}/state\nLOG_MAX_SIZE_KB=64\nLOG_KEEP=3\n`);
    mkdirSync(cfg.logsDir, { recursive: true });
    writeFileSync(join(cfg.logsDir, "haproxy.log"), "h".repeat(64 * 1024 + 1));
    writeFileSync(join(cfg.logsDir, "nginx-error.log"), "n".repeat(64 * 1024));
    writeFileSync(join(cfg.logsDir, "pg2.log.1"), "old");
    expect(stackLogs(cfg).map((f) => f.slice(cfg.logsDir.length + 1))).toEqual(["haproxy.log", "nginx-error.log"]);
    expect(rotateStackLogs(cfg)).toEqual([join(cfg.logsDir, "haproxy.log")]);
    for (const f of stackLogs(cfg)) expect(statSync(f).size).toBeLessThanOrEqual(64 * 1024);
  });

  test("settings: defaults 10 MB and 2 copies; bounds named", () => {
    expect(load("").logs).toEqual({ maxSizeKb: 10240, keep: 2 });
    expect(() => load("\nLOG_MAX_SIZE_KB=10\n")).toThrow("LOG_MAX_SIZE_KB: must be at least 64");
    expect(() => load("\nLOG_KEEP=0\n")).toThrow("LOG_KEEP: must be at least 1");
  });

  test("the rotator runs beside the stack from the checkout, marked by its stack", () => {
    const cfg = load("");
    const s = logRotatorSpec(cfg);
    expect([s.cmd.slice(1), s.marker]).toEqual([
      [`${root}/scripts/logs-rotate.ts`.replace(/\/tests\/unit\/\.\.\/\.\./, ""), "--stack", "test", "--watch"],
      "logs-rotate.ts --stack test --watch",
    ]);
  });
});
