#!/usr/bin/env bun
/**
 * make bench-new-app [STACK=dev] [ARGS="--runs 5"]: how long onboarding an app
 * takes end to end (a fresh `bun scripts/new-app.ts <name> --yes` process:
 * role, database, isolation, env file, nginx -t + reload, registry), against
 * the raw reference in the same run: the equivalent psql statements
 * (CREATE ROLE, CREATE DATABASE, REVOKE) through the same HAProxy port.
 * Also the no-op re-run and --remove (with its final pg_dump). Target: <= 2 s.
 * Creates apps named bench_na_<n> and removes them again. Never part of `make test`.
 */
import { spawnSync } from "node:child_process";
import { loadConfig } from "../scripts/lib/config";
import { runMain, ToolkitError } from "../scripts/lib/errors";
import { run } from "../scripts/lib/exec";
import { parseFlags } from "../scripts/lib/flags";
import { removeApp } from "../scripts/lib/onboard/remove";
import { ensureSecrets } from "../scripts/lib/secrets";
import { table } from "../scripts/lib/ui";

const USAGE = "usage: make bench-new-app [STACK=dev] [ARGS='--runs N']   (bun bench/new-app.ts [--runs 5])";
const ROOT = `${import.meta.dir}/..`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

function timedScript(args: string[]): { ms: number; json: any } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ["scripts/new-app.ts", ...args], {
    cwd: ROOT,
    env: process.env,
    encoding: "utf8",
  });
  const ms = performance.now() - t0;
  if (r.status !== 0)
    throw new ToolkitError("BENCH_FAILED", `new-app ${args.join(" ")} exited ${r.status}`, undefined, r.stderr);
  return { ms, json: JSON.parse(r.stdout) };
}

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { runs: "number" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const runs = flags.runs ?? 5;
  let cfg = loadConfig();
  ensureSecrets(cfg.secretsFile); // registers the secrets for redaction
  cfg = loadConfig(cfg.stack);
  const psqlEnv = { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD, PGCONNECT_TIMEOUT: "5" };
  const psql = (...statements: string[]) =>
    run(
      [
        `${cfg.pgBinDir}/psql`,
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        cfg.haproxy.address,
        "-p",
        String(cfg.haproxy.rwPort),
        "-U",
        "postgres",
        "-d",
        "postgres",
        ...statements.flatMap((s) => ["-c", s]),
      ],
      { env: psqlEnv },
    );

  const create: number[] = [];
  const inProcess: number[] = [];
  const noop: number[] = [];
  const remove: number[] = [];
  const raw: number[] = [];
  console.log(`bench new-app: stack ${cfg.stack}, ${runs} runs (HAProxy ${cfg.haproxy.address}:${cfg.haproxy.rwPort})`);
  for (let i = 0; i < runs; i++) {
    const name = `bench_na_${i}`;
    await removeApp(cfg, name).catch(() => {}); // a killed earlier run
    try {
      const c = timedScript([name, "--yes", "--json"]);
      create.push(c.ms);
      inProcess.push(c.json.ms);
      noop.push(timedScript([name, "--yes", "--json"]).ms);
      remove.push(timedScript([name, "--remove", "--yes", "--json"]).ms);
    } finally {
      await removeApp(cfg, name).catch(() => {});
    }

    // The raw reference: the same three statements by hand, one psql process.
    const rawName = `bench_raw_${i}`;
    await psql(`DROP DATABASE IF EXISTS ${rawName}_db`, `DROP ROLE IF EXISTS ${rawName}`);
    const t0 = performance.now();
    await psql(
      `CREATE ROLE ${rawName} LOGIN PASSWORD 'bench-password-not-secret'`,
      `CREATE DATABASE ${rawName}_db OWNER ${rawName}`,
      `REVOKE ALL ON DATABASE ${rawName}_db FROM PUBLIC`,
    );
    raw.push(performance.now() - t0);
    await psql(`DROP DATABASE IF EXISTS ${rawName}_db`, `DROP ROLE IF EXISTS ${rawName}`);
  }

  const row = (what: string, xs: number[]) => [what, fmt(median(xs)), fmt(Math.min(...xs)), fmt(Math.max(...xs))];
  console.log(
    table([
      ["", "median", "min", "max"],
      row("new-app (end to end, new process)", create),
      row("  of which onboardApp() in-process", inProcess),
      row("new-app re-run (no-op)", noop),
      row("new-app --remove (pg_dump + verify + drop)", remove),
      row("raw psql: CREATE ROLE/DATABASE + REVOKE", raw),
    ]),
  );
  const ratio = median(create) / median(raw);
  const target = median(create) <= 2000;
  console.log(
    `\nratio new-app / raw psql: ${ratio.toFixed(1)}x   target <= 2 s end to end: ${target ? "met" : "MISSED"} (${fmt(median(create))})`,
  );
});
