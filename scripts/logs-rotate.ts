/**
 * make logs-rotate [STACK=dev]: one pass of copy-then-truncate over the stack's logs
 * (LOG_MAX_SIZE_KB, LOG_KEEP). With --watch (how dev-up runs it) it repeats every 10 s until stopped.
 */
import { loadConfig } from "./lib/config";
import { parseFlags } from "./lib/flags";
import { ROTATE_CHECK_SECONDS, rotateStackLogs } from "./lib/logrotate";
import { runMain } from "./lib/errors";

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    { stack: "string", watch: "boolean" },
    "usage: make logs-rotate [STACK=dev]",
  );
  if (flags.help) return void console.log("usage: make logs-rotate [STACK=dev]");
  const cfg = loadConfig(flags.stack);
  const pass = () => {
    const done = rotateStackLogs(cfg);
    if (done.length)
      console.log(
        `${new Date().toISOString()} rotated ${done.join(", ")} (cap ${cfg.logs.maxSizeKb} KB, ${cfg.logs.keep} kept)`,
      );
  };
  pass();
  if (!flags.watch) return;
  for (;;) {
    await Bun.sleep(ROTATE_CHECK_SECONDS * 1000);
    pass();
  }
});
