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
    if (this.detail) lines.push(...this.detail.trimEnd().split("\n").map((l) => `  | ${l}`));
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
    const perm = err instanceof ToolkitError ? undefined : (await import("./ownership")).permissionError(err);
    if (err instanceof ToolkitError || perm) {
      process.stderr.write((perm ?? (err as ToolkitError)).format() + "\n");
    } else {
      process.stderr.write(`error [INTERNAL]: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(1);
  }
}
