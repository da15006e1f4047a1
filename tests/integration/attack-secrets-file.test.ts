/**
 * The stack's secrets file holds every password and the environments' JWT
 * secrets. A local, unprivileged user (created here, removed after) tries to
 * read it, and to plant a symlink where the next write's temp file goes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { lstatSync, readFileSync } from "node:fs";
import { testConfig } from "./stack";

const cfg = testConfig();
const USER = "pgp-rolesec-attacker";
const asAttacker = (...argv: string[]) => {
  const r = spawnSync("runuser", ["-u", USER, "--", ...argv], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
};

beforeAll(() => {
  spawnSync("userdel", [USER]);
  const r = spawnSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`useradd ${USER}: ${r.stderr}`);
});
afterAll(() => void spawnSync("userdel", [USER]));

describe("a local user cannot read the stack's secrets", () => {
  test("attack: a local user reads envs/.secrets.<stack>.env", () => {
    expect(readFileSync(cfg.secretsFile, "utf8")).toContain("POSTGRES_PASSWORD=");
    expect(asAttacker("cat", cfg.secretsFile)).toEqual({
      code: 1,
      stdout: "",
      stderr: `cat: ${cfg.secretsFile}: Permission denied`,
    });
  });

  test("attack: a local user plants a symlink at the secrets file's temp name", () => {
    const tmp = `${cfg.secretsFile}.tmp-12345`;
    expect(asAttacker("ln", "-s", "/etc/shadow", tmp)).toEqual({
      code: 1,
      stdout: "",
      stderr: `ln: failed to create symbolic link '${tmp}': Permission denied`,
    });
    const planted = (() => {
      try {
        return lstatSync(tmp).isSymbolicLink() ? "symlink" : "file";
      } catch (e) {
        return (e as NodeJS.ErrnoException).code;
      }
    })();
    expect(planted).toBe("ENOENT");
  });
});
