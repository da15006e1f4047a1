/**
 * Attacks on root's file handling (issue 11, item 2): the postgres user owns
 * the member dirs and the pgBackRest home, so it can put a symlink where
 * `make dev-up` (as root) expects a folder. Before the fix, dev-up chowned and
 * chmodded through it, handing a root-owned folder to postgres. Each test
 * plants the symlink as postgres, runs dev-up, and passes when dev-up refuses
 * with an error naming the path and the target is untouched.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { osUserIds } from "../../scripts/lib/exec";
import { runAs } from "./attacker-etcdsec";
import { runScript, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const TARGET = "/etc/pgp-etcdsec-target";
const PG_UID = osUserIds("postgres")!.uid;

beforeAll(async () => {
  rmSync(TARGET, { recursive: true, force: true });
  mkdirSync(TARGET, { mode: 0o755 });
  writeFileSync(join(TARGET, "file"), "root's own\n", { mode: 0o644 });
  await waitClusterHealthy(cfg);
});
afterAll(() => rmSync(TARGET, { recursive: true, force: true }));

function targetState() {
  const d = statSync(TARGET);
  const f = statSync(join(TARGET, "file"));
  return {
    dir: { uid: d.uid, gid: d.gid, mode: d.mode & 0o7777 },
    file: { uid: f.uid, gid: f.gid, mode: f.mode & 0o7777, content: readFileSync(join(TARGET, "file"), "utf8") },
  };
}
const UNTOUCHED = {
  dir: { uid: 0, gid: 0, mode: 0o755 },
  file: { uid: 0, gid: 0, mode: 0o644, content: "root's own\n" },
};

/** As postgres: move `path` aside and put a symlink to TARGET in its place; undo() puts it back. */
function plantSymlink(path: string) {
  const aside = `${path}.pgp-etcdsec-aside`;
  const mv = runAs("postgres", ["mv", path, aside]);
  if (mv.code !== 0) throw new Error(`mv as postgres: ${mv.stderr}`);
  const ln = runAs("postgres", ["ln", "-s", TARGET, path]);
  if (ln.code !== 0) throw new Error(`ln as postgres: ${ln.stderr}`);
  return () => {
    if (lstatSync(path).isSymbolicLink()) runAs("postgres", ["rm", path]);
    runAs("postgres", ["mv", aside, path]);
  };
}

describe("root never follows a postgres-planted symlink", () => {
  // Sockets live in the runtime folder (/run/pgplatform/<stack> as root): its levels are root's, so postgres
  // cannot swap a member's socket folder for a symlink at all; the folder itself stays postgres's, 0700.
  test("attack: postgres tries to replace a member's socket folder with a symlink to a root-owned folder", async () => {
    const m = cfg.members[1]!;
    expect(m.socketDir.startsWith(cfg.runtimeDir + "/")).toBe(true);
    const mv = runAs("postgres", ["mv", m.socketDir, `${m.socketDir}.pgp-etcdsec-aside`]);
    expect(mv.code).not.toBe(0);
    expect(mv.stderr).toContain("Permission denied");
    const ln = runAs("postgres", ["ln", "-s", TARGET, `${cfg.runtimeDir}/pgp-etcdsec-planted`]);
    expect(ln.code).not.toBe(0);
    expect(ln.stderr).toContain("Permission denied");
    const st = lstatSync(m.socketDir);
    expect({ dir: st.isDirectory(), uid: st.uid, mode: st.mode & 0o7777 }).toEqual({
      dir: true,
      uid: PG_UID,
      mode: 0o700,
    });
    expect(targetState()).toEqual(UNTOUCHED);
  });

  test("attack: postgres points a pgBackRest folder at a root-owned folder before dev-up", async () => {
    const spool = join(cfg.backup.pgbackrestHome, "spool");
    const undo = plantSymlink(spool);
    let r;
    try {
      r = runScript("dev-up.ts", ["--json", "--no-install"]);
    } finally {
      undo();
    }
    expect(targetState()).toEqual(UNTOUCHED);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${spool}: is a symlink owned by uid ${PG_UID}; refusing to change it as root`);
    await waitClusterHealthy(cfg);
  });

  test("attack: postgres replaces Patroni's etcd client key with a symlink to a root-owned file", async () => {
    const key = join(cfg.members[2]!.dir, "etcd-client.key");
    const aside = `${key}.pgp-etcdsec-aside`;
    runAs("postgres", ["mv", key, aside]);
    runAs("postgres", ["ln", "-s", join(TARGET, "file"), key]);
    let r;
    try {
      r = runScript("dev-up.ts", ["--json", "--no-install"]);
    } finally {
      runAs("postgres", ["rm", key]);
      runAs("postgres", ["mv", aside, key]);
    }
    expect(targetState()).toEqual(UNTOUCHED);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${key}: is a symlink owned by uid ${PG_UID}; refusing to change it as root`);
  });

  test("after the symlinks are gone, dev-up is a no-op again", () => {
    const r = runScript("dev-up.ts", ["--json", "--no-install"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).changes).toEqual([]);
  });
});
