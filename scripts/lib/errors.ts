import { lstatSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Every failure a user can see is a ToolkitError: a stable code, what went
 * wrong, and what to do next. Entry scripts print it and exit 1; library code
 * never prints or exits.
 */
export class ToolkitError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly fix?: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = "ToolkitError";
  }

  format(): string {
    const lines = [`error [${this.code}]: ${this.message}`];
    if (this.detail)
      lines.push(
        ...this.detail
          .trimEnd()
          .split("\n")
          .map((l) => `  | ${l}`),
      );
    if (this.fix) lines.push(`  fix: ${this.fix}`);
    return lines.join("\n");
  }
}

export const fail = (code: string, message: string, fix?: string, detail?: string): never => {
  throw new ToolkitError(code, message, fix, detail);
};

/**
 * The toolkit's own file modes. Directories the postgres user must traverse
 * (member roots, sockets, backup repos) are created by us as root; under a
 * hardened umask such as 077 they would come out 0700 and Patroni could not
 * read its config. Every secret is written with an explicit 0600, so 022 is safe.
 */
export const TOOLKIT_UMASK = 0o022;

/** Run an entry script's main: ToolkitErrors print cleanly, Ctrl-C exits 130. */
export async function runMain(main: () => Promise<number | void>): Promise<never> {
  process.umask(TOOLKIT_UMASK);
  process.on("SIGINT", () => {
    process.stderr.write("\ninterrupted\n");
    process.exit(130);
  });
  try {
    const code = await main();
    process.exit(code ?? 0);
  } catch (err) {
    // A permission problem is the user's to fix, not a bug: say who owns what, never INTERNAL.
    const perm = err instanceof ToolkitError ? undefined : permissionError(err);
    if (err instanceof ToolkitError || perm) {
      process.stderr.write((perm ?? (err as ToolkitError)).format() + "\n");
    } else {
      process.stderr.write(`error [INTERNAL]: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(1);
  }
}

export function userNameOf(uid: number): string {
  try {
    const line = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((l) => l.split(":")[2] === String(uid));
    return line ? line.split(":")[0]! : `uid ${uid}`;
  } catch {
    return `uid ${uid}`;
  }
}

export const uidOf = (p: string): number | undefined => {
  try {
    return lstatSync(p).uid;
  } catch {
    return undefined;
  }
};

/**
 * EACCES/EPERM that still reach an entry point (a file we did not foresee):
 * what was refused, who owns it, and the repair, instead of a stack trace.
 */
export function permissionError(err: unknown): ToolkitError | undefined {
  const e = err as NodeJS.ErrnoException;
  if (!e || (e.code !== "EACCES" && e.code !== "EPERM")) return undefined;
  const me = userNameOf(process.getuid?.() ?? 0);
  const path = e.path ?? /'([^']+)'/.exec(e.message)?.[1];
  if (path) {
    const uid = uidOf(path) ?? uidOf(join(path, ".."));
    const owner = uid !== undefined ? userNameOf(uid) : "another user";
    return new ToolkitError(
      "PERMISSION_DENIED",
      `${e.syscall ?? "access"} ${path}: permission denied (${e.code}); it belongs to ${owner}, you are ${me}`,
      owner === "root" || owner !== me
        ? `sudo chown -R ${me}: ${path}`
        : `check the modes of ${path} and its parent folders`,
    );
  }
  const pid = /kill|pid/i.test(e.message) ? /(\d+)/.exec(e.message)?.[1] : undefined;
  return new ToolkitError(
    "PERMISSION_DENIED",
    `${e.syscall ?? "operation"} not permitted (${e.code}): ${e.message}; you are ${me}`,
    pid
      ? `process ${pid} belongs to another user: stop it as that user (e.g. \`sudo make dev-down\`)`
      : "run the command as the user who set up the stack",
  );
}
