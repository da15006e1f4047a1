#!/usr/bin/env bun
/**
 * make rotate-jwt DB=<database>: replace one environment database's JWT secret
 * and re-issue its anon/service_role API keys. Keys signed with the old secret
 * stop verifying at once; the other environments' secrets are untouched.
 */
import { existsSync } from "node:fs";
import * as p from "@clack/prompts";
import { loadConfig } from "./lib/config";
import { dockerRenderedDir, writeDockerFiles } from "./lib/docker";
import { runMain, ToolkitError } from "./lib/errors";
import { envFlag, parseFlags } from "./lib/flags";
import { rotateJwtSecret } from "./lib/secrets";
import { isInteractive, logLine } from "./lib/ui";

const USAGE =
  "usage: make rotate-jwt DB=<environment database> [YES=1]   (bun scripts/rotate-jwt.ts <database> [--yes])\nReplaces that database's JWT secret in envs/.secrets.<stack>.env and re-signs its API keys; old keys are refused.";
await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { yes: "boolean" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const cfg = loadConfig();
  const db = flags._[0] ?? process.env.DB;
  if (!db)
    throw new ToolkitError(
      "MISSING_DB",
      "which environment's JWT secret? DB= is required",
      `e.g. make rotate-jwt DB=${cfg.databases[0]}`,
    );
  if (!cfg.databases.includes(db))
    throw new ToolkitError(
      "UNKNOWN_DB",
      `DB=${JSON.stringify(db)} is not an environment database of stack ${cfg.stack} (${cfg.databases.join(", ")})`,
      "pick one of DATABASES in " + cfg.file,
    );
  if (!(flags.yes || envFlag("YES"))) {
    if (!isInteractive())
      throw new ToolkitError(
        "NEEDS_CONFIRMATION",
        `rotating ${db}'s JWT secret invalidates every key and session token signed with it`,
        "re-run with YES=1 (make) or --yes (script)",
      );
    const ok = await p.confirm({
      message: `Rotate ${db}'s JWT secret? Every key signed with it stops working.`,
      initialValue: false,
    });
    if (p.isCancel(ok) || !ok) return void logLine("cancelled: nothing rotated");
  }
  const { key } = rotateJwtSecret(cfg.secretsFile, db);
  logLine(`${db}: ${key} rotated in ${cfg.secretsFile.replace(cfg.rootDir + "/", "")} (0600)`);
  const rendered = dockerRenderedDir(cfg);
  if (existsSync(rendered) && db === cfg.databases[0]) {
    // The docker runtime's services serve the first database: re-sign their keys now.
    await writeDockerFiles(loadConfig(cfg.stack, cfg.rootDir));
    logLine(
      `${db}: anon and service_role keys re-issued into ${rendered}/compose.env; run \`make dev-up\` to restart the services with them`,
    );
  } else {
    logLine(
      `${db}: anon and service_role keys are signed from the new secret whenever they are issued (make dev-up); keys signed before are refused`,
    );
  }
});
