/**
 * What the stack exposes (issue 11, items 11 and 15): etcd and HAProxy run as
 * their own users, never root; etcd's files are not readable by other local
 * users; every port the stack opens, the plain-HTTP nginx included, is on
 * loopback.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { osUserIds } from "../../scripts/lib/exec";
import { etcdConfigPath, postmasterPid, procSpecs } from "../../scripts/lib/native/specs";
import { runningPid } from "../../scripts/lib/procs";
import { etcdHome } from "../../scripts/lib/stack-files";
import { createAttacker, removeAttacker, runAs, runRoot } from "./attacker-etcdsec";
import { testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const ATTACKER = "pgp-etcdsec-attacker";
const specs = procSpecs(cfg);

/** Real and effective uid of a process, from /proc. */
const uidsOf = (pid: number) =>
  readFileSync(`/proc/${pid}/status`, "utf8")
    .match(/^Uid:\s+(\d+)\s+(\d+)/m)!
    .slice(1, 3)
    .map(Number);

beforeAll(async () => {
  createAttacker(ATTACKER);
  await waitClusterHealthy(cfg);
});
afterAll(() => removeAttacker(ATTACKER));

describe("service users and exposure", () => {
  test("etcd runs as the etcd user and HAProxy as haproxy: neither is root", () => {
    const etcd = osUserIds("etcd")!.uid;
    const haproxy = osUserIds("haproxy")!.uid;
    for (const s of specs.etcd)
      expect({ name: s.name, uids: uidsOf(runningPid(s)!) }).toEqual({ name: s.name, uids: [etcd, etcd] });
    expect(uidsOf(runningPid(specs.haproxy)!)).toEqual([haproxy, haproxy]);
  });

  test("attack: a local user reads etcd's config and lists its data", () => {
    for (const m of cfg.members) {
      const conf = runAs(ATTACKER, ["cat", etcdConfigPath(cfg, m)]);
      expect({
        conf: etcdConfigPath(cfg, m),
        code: conf.code,
        out: conf.stdout,
        denied: /Permission denied/.test(conf.stderr),
      }).toEqual({ conf: etcdConfigPath(cfg, m), code: 1, out: "", denied: true });
      const data = runAs(ATTACKER, ["ls", join(etcdHome(cfg), m.etcdName)]);
      expect({ code: data.code, out: data.stdout, denied: /Permission denied/.test(data.stderr) }).toEqual({
        code: 2,
        out: "",
        denied: true,
      });
    }
  });

  test("every port the stack listens on is a loopback address (the plain-HTTP nginx included)", () => {
    const pids = new Set<number>(
      [...specs.etcd, ...specs.patroni, specs.haproxy, specs.nginx]
        .map((s) => runningPid(s)!)
        .concat(cfg.members.map((m) => postmasterPid(m)!)),
    );
    const ss = runRoot(["ss", "-Hltnp"]).stdout.split("\n").filter(Boolean);
    const ours = ss.filter((l) => [...l.matchAll(/pid=(\d+)/g)].some((p) => pids.has(Number(p[1]))));
    const local = ours.map((l) => l.trim().split(/\s+/)[3]!);
    // etcd x3 (2 ports), Postgres x3, Patroni REST x3, HAProxy x3, nginx x1.
    expect(local.length).toBeGreaterThanOrEqual(3 * 2 + 3 + 3 + 3 + 1);
    for (const a of local) expect({ a, loopback: /^127\./.test(a) }).toEqual({ a, loopback: true });
    expect(local).toContain(`${cfg.api.address}:${cfg.api.port}`);
  });
});
