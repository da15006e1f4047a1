/**
 * An unprivileged local user for attack tests (tests/integration/attack-*.test.ts):
 * created before the attacks, removed after. Commands run as it through
 * runuser, from /, with a clean environment.
 */
import { spawnSync } from "node:child_process";

export interface Attempt {
  code: number;
  stdout: string;
  stderr: string;
}

export function createAttacker(name: string): void {
  spawnSync("userdel", [name], { encoding: "utf8" });
  const r = spawnSync(
    "useradd",
    ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`useradd ${name}: ${r.stderr}`);
}

export function removeAttacker(name: string): void {
  spawnSync("userdel", [name], { encoding: "utf8" });
}

/** Run argv as `user` (runuser -u user --), never through a shell. */
export function runAs(user: string, argv: string[], input?: string): Attempt {
  const r = spawnSync("runuser", ["-u", user, "--", ...argv], {
    cwd: "/",
    encoding: "utf8",
    input,
    timeout: 30_000,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" },
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** Run argv as root (ourselves). */
export function runRoot(argv: string[]): Attempt {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: "/",
    encoding: "utf8",
    timeout: 30_000,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" },
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}
