/**
 * Attack on the logs (issue 11, item 8): component logs carry statements,
 * addresses and paths, and were world-readable. A local user must not read
 * any log of the stack: every *.log under the state folder and the member
 * root is tried, as an unprivileged user the test creates.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { createAttacker, removeAttacker, runAs } from "./attacker-etcdsec";
import { testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const ATTACKER = "pgp-etcdsec-attacker";

/** Every *.log file below `dir` (as root sees it). */
function logsBelow(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...logsBelow(p));
    else if (e.isFile() && e.name.endsWith(".log")) out.push(p);
  }
  return out;
}

beforeAll(async () => {
  createAttacker(ATTACKER);
  await waitClusterHealthy(cfg);
});
afterAll(() => removeAttacker(ATTACKER));

describe("logs are readable by root (and the service that writes them) only", () => {
  test("attack: a local user reads every log of the stack", () => {
    const logs = [...new Set([...logsBelow(cfg.stateDir), ...logsBelow(cfg.memberRoot)])];
    // The components' own logs must be among them, or this proves nothing.
    for (const name of ["etcd1", "pg1", "haproxy", "nginx", "nginx-error", "nginx-access"])
      expect(logs).toContain(join(cfg.logsDir, `${name}.log`));
    for (const f of logs) {
      const r = runAs(ATTACKER, ["cat", f]);
      expect({ f, code: r.code, out: r.stdout, denied: /Permission denied/.test(r.stderr) }).toEqual({
        f,
        code: 1,
        out: "",
        denied: true,
      });
    }
  });

  test("the stack's log folder is root's alone (0700) and each component log is 0600", () => {
    const d = statSync(cfg.logsDir);
    expect({ uid: d.uid, mode: d.mode & 0o777 }).toEqual({ uid: 0, mode: 0o700 });
    for (const name of ["etcd1", "etcd2", "etcd3", "pg1", "pg2", "pg3", "haproxy", "nginx"]) {
      expect({ name, mode: statSync(join(cfg.logsDir, `${name}.log`)).mode & 0o777 }).toEqual({ name, mode: 0o600 });
    }
  });
});
