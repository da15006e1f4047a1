import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readHolder, tryPidLock } from "../../scripts/lib/pidlock";

const fresh = () => join(mkdtempSync(join(tmpdir(), "pidlock-")), "x.lock");

describe("tryPidLock", () => {
  test("a held lock excludes a second taker, also inside the same process; release frees it", () => {
    const path = fresh();
    const a = tryPidLock(path, "first");
    expect("release" in a).toBe(true);
    const b = tryPidLock(path, "second");
    expect("holder" in b && b.holder).toMatchObject({ pid: process.pid, what: "first" });
    if ("release" in a) a.release();
    expect(existsSync(path)).toBe(false);
    const c = tryPidLock(path, "third");
    expect("release" in c).toBe(true);
    if ("release" in c) c.release();
    rmSync(join(path, ".."), { recursive: true, force: true });
  });

  test("a lock whose holder died is taken over", () => {
    const path = fresh();
    writeFileSync(path, JSON.stringify({ pid: 999_999_999, what: "ghost", since: "then", token: "t" }));
    const l = tryPidLock(path, "me");
    expect("release" in l).toBe(true);
    expect(readHolder(path)?.what).toBe("me");
    if ("release" in l) l.release();
  });

  test("a stale lock naming our own (recycled) pid but another token is taken over", () => {
    const path = fresh();
    writeFileSync(path, JSON.stringify({ pid: process.pid, what: "before a crash", token: "not-ours" }));
    const l = tryPidLock(path, "me");
    expect("release" in l).toBe(true);
    if ("release" in l) l.release();
  });

  test("a bare pid file counts as held while that pid lives", () => {
    const path = fresh();
    writeFileSync(path, `${process.pid}\n`);
    const l = tryPidLock(path, "me");
    expect("holder" in l && l.holder.pid).toBe(process.pid);
    expect(existsSync(path)).toBe(true); // not ours to remove
  });

  test("release never removes a lock someone else took over", () => {
    const path = fresh();
    const a = tryPidLock(path, "a");
    writeFileSync(path, JSON.stringify({ pid: 1, what: "other", token: "theirs" }));
    if ("release" in a) a.release();
    expect(readHolder(path)?.what).toBe("other");
  });
});
