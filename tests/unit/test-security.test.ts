/** make test-security / make test: the attack count comes from the tests named `attack: ...`; an attack that succeeded is a failed test. */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { summarise } from "../../scripts/test-summary";

const root = join(import.meta.dir, "../..");
const tmp = mkdtempSync(join(tmpdir(), "pgp-rolesec-summary-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const LOG = [
  "tests/integration/attack-roles.test.ts:",
  "(pass) roles > attack: authenticator grants itself pg_execute_server_program [75.83ms]",
  "(pass) roles > attack: supabase_auth_admin creates a superuser role [22.55ms]",
  "(pass) roles > attributes: login, noinherit, nothing else [51.61ms]",
  "error: expect(received).toEqual(expected)",
  "(fail) jwt > attack: an app role reads pg_db_role_setting [17.65ms]",
  " 3 pass",
  " 1 fail",
  "(fail) jwt > attack: an app role reads pg_db_role_setting [17.65ms]",
].join("\n");
const PASSING = LOG.replace(/\(fail\)/g, "(pass)").replace(" 3 pass\n 1 fail", " 4 pass\n 0 fail");

describe("attack count", () => {
  test("tried = distinct tests named `attack: ...`, succeeded = those that failed (bun's recap counted once)", () => {
    expect(summarise(LOG).attacks).toEqual({
      tried: 3,
      succeeded: ["jwt > attack: an app role reads pg_db_role_setting"],
    });
    expect(summarise(PASSING).attacks).toEqual({ tried: 3, succeeded: [] });
  });

  const run = (log: string, ...args: string[]) => {
    const f = join(tmp, `log-${Math.random().toString(36).slice(2)}`);
    writeFileSync(f, log);
    const r = spawnSync(process.execPath, ["scripts/test-summary.ts", f, ...args], { cwd: root, encoding: "utf8" });
    return { code: r.status, lines: r.stdout.trimEnd().split("\n") };
  };
  test("--attacks prints `N attacks tried, 0 succeeded` and exits 0 only when none succeeded", () => {
    expect(run(PASSING, "--attacks")).toEqual({ code: 0, lines: ["3 attacks tried, 0 succeeded"] });
    expect(run(LOG, "--attacks")).toEqual({
      code: 1,
      lines: [
        "  ✗ attack succeeded: jwt > attack: an app role reads pg_db_role_setting",
        "3 attacks tried, 1 succeeded",
      ],
    });
    // An attack file that never ran to the end is not "0 succeeded".
    expect(run(PASSING + "\nintegration: FAILED: tests/integration/attack-jwt.test.ts", "--attacks").code).toBe(1);
    expect(run("no tests at all", "--attacks")).toEqual({ code: 1, lines: ["0 attacks tried, 0 succeeded"] });
  });
  test("make test's summary ends with the attack line", () => {
    const r = run(PASSING);
    expect(r.lines.slice(-2)).toEqual(["tests: 4 passed, 0 failed", "3 attacks tried, 0 succeeded"]);
  });
});

test("make test-integration runs the attack files after every other file, the Postgres-log grep last", () => {
  const r = spawnSync("make", ["-n", "test-integration"], { cwd: root, encoding: "utf8" });
  const files = /for f in (.*?); do/.exec(r.stdout)?.[1]?.split(" ") ?? [];
  const firstAttack = files.findIndex((f) => f.includes("/attack-"));
  expect(files.length).toBeGreaterThan(4);
  expect(files.slice(firstAttack).every((f) => f.startsWith("tests/integration/attack-"))).toBe(true);
  expect(files.slice(0, firstAttack).some((f) => f.includes("/attack-"))).toBe(false);
  expect(files.at(-1)).toBe("tests/integration/attack-password-log.test.ts");
});
