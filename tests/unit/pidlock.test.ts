import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readHolder, tryPidLock } from "../../scripts/lib/pidlock";

const made: string[] = [];
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), "pidlock-"));
  made.push(dir);
  return join(dir, "x.lock");
};
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});
/** The lock, which must have been taken: no test may skip its checks because acquisition failed. */
function taken(l: ReturnType<typeof tryPidLock>): { release: () => void } {
  if (!("release" in l)) throw new Error(`the lock was not taken: held by ${JSON.stringify(l.holder)}`);
  return l;
}

describe("tryPidLock", () => {
  test("a held lock excludes a second taker, also inside the same process; release frees it", () => {
    const path = fresh();
    const a = taken(tryPidLock(path, "first"));
    const b = tryPidLock(path, "second");
    expect("holder" in b && b.holder).toMatchObject({ pid: process.pid, what: "first" });
    a.release();
    expect(existsSync(path)).toBe(false);
    const c = taken(tryPidLock(path, "third"));
    expect(readHolder(path)).toMatchObject({ pid: process.pid, what: "third" });
    c.release();
    expect(existsSync(path)).toBe(false);
  });

  test("a lock whose holder died is taken over", () => {
    const path = fresh();
    writeFileSync(path, JSON.stringify({ pid: 999_999_999, what: "ghost", since: "then", token: "t" }));
    const l = taken(tryPidLock(path, "me"));
    expect(readHolder(path)).toMatchObject({ pid: process.pid, what: "me" });
    l.release();
  });

  test("a stale lock naming our own (recycled) pid but another token is taken over", () => {
    const path = fresh();
    writeFileSync(path, JSON.stringify({ pid: process.pid, what: "before a crash", token: "not-ours" }));
    const l = taken(tryPidLock(path, "me"));
    expect(readHolder(path)).toMatchObject({ pid: process.pid, what: "me" });
    l.release();
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
    // Taken for real first (the old form, `if ("release" in a) a.release()`, passed when it was not).
    const a = taken(tryPidLock(path, "a"));
    expect(readHolder(path)).toMatchObject({ pid: process.pid, what: "a" });
    writeFileSync(path, JSON.stringify({ pid: 1, what: "other", token: "theirs" }));
    a.release();
    expect(readHolder(path)).toEqual({ pid: 1, what: "other", token: "theirs" });
  });
});

describe("tryPidLock across processes", () => {
  test("six processes racing for one lock never overlap", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pidlock-race-"));
    const path = join(dir, "race.lock");
    const journal = join(dir, "journal");
    const worker = join(dir, "worker.ts");
    writeFileSync(
      worker,
      `import { appendFileSync } from "node:fs";
       import { tryPidLock } from ${JSON.stringify(`${import.meta.dir}/../../scripts/lib/pidlock.ts`)};
       for (let i = 0; i < 5; i++) {
         let l = tryPidLock(${JSON.stringify(path)}, "race");
         while (!("release" in l)) { await Bun.sleep(1); l = tryPidLock(${JSON.stringify(path)}, "race"); }
         appendFileSync(${JSON.stringify(journal)}, "in " + process.pid + "\\n");
         await Bun.sleep(5);
         appendFileSync(${JSON.stringify(journal)}, "out " + process.pid + "\\n");
         l.release();
       }`,
    );
    const procs = Array.from({ length: 6 }, () =>
      Bun.spawn([process.execPath, worker], { stdout: "ignore", stderr: "pipe" }),
    );
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0, 0, 0, 0]);
    const lines = (await Bun.file(journal).text()).trim().split("\n");
    expect(lines.length).toBe(60);
    // Strictly alternating in/out by the same pid: nobody entered while another held the lock.
    for (let i = 0; i < lines.length; i += 2) {
      const [a, pa] = lines[i]!.split(" ");
      const [b, pb] = lines[i + 1]!.split(" ");
      expect([a, b, pa]).toEqual(["in", "out", pb]);
    }
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});
