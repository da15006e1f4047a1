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

/** Run an entry script's main: ToolkitErrors print cleanly, Ctrl-C exits 130. */
export async function runMain(main: () => Promise<number | void>): Promise<never> {
  process.on("SIGINT", () => {
    process.stderr.write("\ninterrupted\n");
    process.exit(130);
  });
  try {
    const code = await main();
    process.exit(code ?? 0);
  } catch (err) {
    if (err instanceof ToolkitError) {
      process.stderr.write(err.format() + "\n");
    } else {
      process.stderr.write(`error [INTERNAL]: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(1);
  }
}
