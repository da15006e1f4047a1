#!/usr/bin/env bun
/**
 * bench-migrate-saas: on >= 1 GB generated in a scratch Supabase-shaped
 * source, in the same run:
 *   raw   pg_dump -n <same schemas> --no-owner --no-privileges  ->  OS pipe (fifo)  ->  psql
 *   tool  make migrate-saas end to end: pre-checks, roles, schema, data in one
 *         transaction, per-table checksums on both sides, report
 * into two fresh databases of the running cluster (STACK). Prints throughput
 * (on-disk bytes of the migrated tables / wall time) and tool/raw; target >= 0.85.
 * Never part of `make test`. Cleans up: both databases, the roles it created,
 * the scratch server.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { loadConfig } from "../scripts/lib/config";
import { runMain } from "../scripts/lib/errors";
import { run } from "../scripts/lib/exec";
import { parseFlags } from "../scripts/lib/flags";
import { formatBytes } from "../scripts/lib/ui";
import { connect, quoteIdent, rwTarget } from "../scripts/lib/pg";
import { ensureSecrets } from "../scripts/lib/secrets";
import { scratchAddress, startScratchPg, type ScratchPg } from "../tests/integration/scratch-pg";

const USAGE =
  "usage: make bench-migrate-saas [GB=1] [STACK=<stack, must be up>]\n       bun bench/migrate-saas.ts [--gb 1] [--rounds 1]";
const RAW_DB = "bench_migrate_raw";
const TOOL_DB = "bench_migrate_tool";
const CUSTOM_ROLES = ["app_readonly", "billing_owner", "Report Bot"];
const SCHEMAS = ["auth", "billing", "public", "storage"];
const log = (m: string) => console.log(`${new Date().toISOString()} ${m}`);

/** Bulk data on top of the fixture: wide rows (documents) and narrow ones (measurements), with indexes and FKs. */
const generateSql = (gb: number) => {
  const docs = Math.round(560_000 * gb);
  const meas = Math.round(6_000_000 * gb);
  return `
SET synchronous_commit = off;
CREATE TABLE public.documents (
  id bigserial PRIMARY KEY,
  owner uuid NOT NULL REFERENCES auth.users (id),
  title text NOT NULL,
  body text NOT NULL,
  meta jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.documents (owner, title, body, meta, created_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(1 + g % 200), 12, '0'))::uuid, 'document ' || g,
       repeat(md5(g::text), 28), jsonb_build_object('words', g % 1000, 'lang', 'en', 'tags', jsonb_build_array('a', g % 7)),
       timestamptz '2023-01-01' + g * interval '1 second'
FROM generate_series(1, ${docs}) g;
CREATE INDEX documents_owner_idx ON public.documents (owner);
CREATE TABLE public.measurements (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  device integer NOT NULL,
  at timestamptz NOT NULL,
  value double precision,
  ok boolean
);
INSERT INTO public.measurements (device, at, value, ok)
SELECT g % 500, timestamptz '2024-01-01' + g * interval '100 ms', g / 3.0, g % 10 <> 0 FROM generate_series(1, ${meas}) g;
CREATE INDEX measurements_device_at_idx ON public.measurements (device, at);
ANALYZE;`;
};

async function recreateDbs(cfg: ReturnType<typeof loadConfig>, create: boolean) {
  const c = await connect(cfg);
  try {
    for (const db of [RAW_DB, TOOL_DB]) {
      await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
      if (create) await c.query(`CREATE DATABASE ${quoteIdent(db)}`);
    }
    for (const r of CUSTOM_ROLES) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`);
  } finally {
    await c.end();
  }
}

await runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), { gb: "number", rounds: "number" }, USAGE);
  if (flags.help) return void console.log(USAGE);
  const gb = flags.gb ?? 1;
  const rounds = flags.rounds ?? 1;
  let cfg = loadConfig();
  ensureSecrets(cfg.secretsFile);
  cfg = loadConfig(cfg.stack);
  const bin = cfg.pgBinDir;
  let source: ScratchPg | undefined;
  const fifoDir = `/tmp/pgplatform-bench-${process.pid}`;
  try {
    log(`stack ${cfg.stack}: starting a scratch source on ${scratchAddress(cfg)}:5433`);
    source = await startScratchPg({
      host: scratchAddress(cfg),
      port: 5433,
      name: "bench-migrate",
      settings: {
        shared_buffers: "'512MB'",
        max_wal_size: "'8GB'",
        fsync: "off",
        full_page_writes: "off",
        wal_level: "minimal",
        max_wal_senders: "0",
      },
    });
    await source.psql("postgres", join(import.meta.dir, "../tests/fixtures/supabase-source.sql"), { file: true });
    const g0 = Date.now();
    await source.psql("postgres", generateSql(gb));
    const srcClient = new (await import("pg")).default.Client({ connectionString: source.url() });
    await srcClient.connect();
    const size = await srcClient.query(
      `SELECT sum(pg_total_relation_size(c.oid))::bigint AS b, sum(pg_relation_size(c.oid))::bigint AS heap FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = ANY($1)`,
      [SCHEMAS],
    );
    await srcClient.end();
    const bytes = Number(size.rows[0].b);
    log(
      `generated in ${((Date.now() - g0) / 1000).toFixed(0)} s: ${formatBytes(bytes)} in the migrated schemas (tables + indexes; heap ${formatBytes(Number(size.rows[0].heap))})`,
    );
    if (bytes < gb * 1024 ** 3 * 0.95) log(`warning: less than ${gb} GB generated`);

    const results: { raw: number; tool: number; report: any }[] = [];
    await run(["mkdir", "-p", "-m", "0700", fifoDir]);
    for (let i = 0; i < rounds; i++) {
      await recreateDbs(cfg, true);
      // Raw: extensions prepared outside the timing (a raw -n dump does not carry them); the tool does this inside its time.
      const pre = await connect(cfg, { database: RAW_DB });
      await pre.query(
        'CREATE SCHEMA extensions; CREATE EXTENSION pgcrypto WITH SCHEMA extensions; CREATE EXTENSION citext WITH SCHEMA extensions; CREATE EXTENSION "uuid-ossp" WITH SCHEMA extensions;',
      );
      await pre.end();
      // Same starting line for both: a fresh checkpoint (the cluster checkpoints every ~1 GB of WAL).
      const checkpoint = async () => {
        const c = await connect(cfg);
        await c.query("CHECKPOINT");
        await c.end();
      };
      const runRaw = async () => {
        await checkpoint();
        const fifo = join(fifoDir, `raw-${i}.fifo`);
        await run(["mkfifo", "-m", "0600", fifo]);
        const t = rwTarget(cfg);
        const r0 = Date.now();
        const [dumpRes, loadRes] = await Promise.all([
          run(
            [
              join(bin, "pg_dump"),
              "--no-owner",
              "--no-privileges",
              ...SCHEMAS.flatMap((s) => ["-n", s]),
              "-h",
              source!.host,
              "-p",
              String(source!.port),
              "-U",
              "postgres",
              "-d",
              "postgres",
              "-f",
              fifo,
            ],
            { env: { PGPASSWORD: source!.password }, timeoutMs: 3_600_000, nothrow: true },
          ),
          run(
            [
              join(bin, "psql"),
              "-X",
              "-q",
              "-h",
              t.host,
              "-p",
              String(t.port),
              "-U",
              "postgres",
              "-d",
              RAW_DB,
              "-f",
              fifo,
            ],
            { env: { PGPASSWORD: cfg.secrets.POSTGRES_PASSWORD }, timeoutMs: 3_600_000, nothrow: true },
          ),
        ]);
        const raw = (Date.now() - r0) / 1000;
        const rawErrors = loadRes.stderr.split("\n").filter((l) => /ERROR/.test(l));
        log(
          `round ${i + 1} raw pg_dump | psql: ${raw.toFixed(1)} s, ${formatBytes(bytes / raw)}/s (pg_dump exit ${dumpRes.code}, psql errors ${rawErrors.length}${rawErrors.length ? `: ${rawErrors[0]}` : ""})`,
        );
        return raw;
      };
      const runTool = async () => {
        await checkpoint();
        const m0 = Date.now();
        const r = spawnSync(process.execPath, ["scripts/migrate-saas.ts", "--target-db", TOOL_DB, "--json"], {
          cwd: join(import.meta.dir, ".."),
          env: { ...process.env, STACK: cfg.stack, SOURCE_DB_URL: source!.url(), SOURCE_TLS_INSECURE: "1" }, // a local scratch source without TLS
          encoding: "utf8",
          maxBuffer: 256 * 1024 * 1024,
          timeout: 3_600_000,
        });
        const tool = (Date.now() - m0) / 1000;
        if (r.status !== 0)
          throw new Error(`migrate-saas failed (exit ${r.status}):\n${(r.stderr ?? "").slice(-3000)}`);
        const report = JSON.parse(r.stdout);
        log(
          `round ${i + 1} make migrate-saas: ${tool.toFixed(1)} s, ${formatBytes(bytes / tool)}/s, verified ${report.ok} (${report.verification.tables.length} tables); phases ${JSON.stringify(report.timings)}`,
        );
        return { tool, report };
      };
      // Alternate the order so neither side always runs second (after the other's WAL and checkpoints).
      let raw: number;
      let toolRun: { tool: number; report: any };
      if (i % 2 === 0) {
        raw = await runRaw();
        toolRun = await runTool();
      } else {
        toolRun = await runTool();
        raw = await runRaw();
      }
      const { tool, report } = toolRun;
      log(`round ${i + 1}: ${(raw / tool).toFixed(2)}x raw`);
      results.push({ raw, tool, report });
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const raw = med(results.map((x) => x.raw));
    const tool = med(results.map((x) => x.tool));
    // Median of the per-round ratios: raw and tool of one round ran back to back under the same machine load.
    const ratio = med(results.map((x) => x.raw / x.tool));
    const last = results[results.length - 1]!.report;
    console.log(`
migrate-saas benchmark (stack ${cfg.stack}, ${gb} GB requested, ${rounds} round(s), median)
  data                      ${formatBytes(bytes)} on disk (tables + indexes), ${formatBytes(last.bytesStreamed)} COPY stream
  raw pg_dump | psql        ${raw.toFixed(1)} s   ${formatBytes(bytes / raw)}/s   (no roles, no single transaction, no verification)
  make migrate-saas         ${tool.toFixed(1)} s   ${formatBytes(bytes / tool)}/s   (incl. pre-checks, one transaction, checksums of every row on both sides)
    phases (ms)             ${JSON.stringify(last.timings)}
  throughput ratio          ${ratio.toFixed(2)}x raw, median of rounds ${results.map((x) => (x.raw / x.tool).toFixed(2)).join(", ")}   (target >= 0.85x: ${ratio >= 0.85 ? "met" : "NOT met"})`);
    return 0;
  } finally {
    await recreateDbs(cfg, false).catch((e) => log(`cleanup: ${e.message}`));
    await source?.stop();
    await run(["rm", "-rf", fifoDir], { nothrow: true });
  }
});
