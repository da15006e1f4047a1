/**
 * The migrate-saas session: both connections a run or a plan works inside.
 * withSession() checks the target name and the secrets, opens the source
 * inside one exported REPEATABLE READ snapshot (schema, data and checksums
 * all see that instant), connects to the target database with errors that
 * name what is missing, takes the one-migration-per-target advisory lock,
 * and always closes both; a pg error escaping the work is redacted (the
 * source URL carries a password).
 */
import type pg from "pg";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { connect, rwTarget } from "../pg";
import { redact } from "../redact";
import { CHECKSUM_SETTINGS } from "./fingerprint";
import { connectSource, parseSourceUrl, protectSource, sourceError, type SourceConn } from "./source";
import type { MigrateOptions } from "./types";

const FORBIDDEN_TARGETS = new Set(["postgres", "template0", "template1"]);

export interface Session {
  src: SourceConn;
  source: pg.Client;
  target: pg.Client;
  snapshot: string;
}

async function openSource(
  url: string,
  opts: MigrateOptions,
): Promise<{ src: SourceConn; source: pg.Client; snapshot: string }> {
  const src = parseSourceUrl(url, { insecureTls: opts.insecureTls, caFile: opts.caFile });
  protectSource(src, url);
  const source = await connectSource(src);
  try {
    for (const s of CHECKSUM_SETTINGS) await source.query(s);
    await source.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const snapshot = (await source.query("SELECT pg_export_snapshot() AS s")).rows[0].s as string;
    return { src, source, snapshot };
  } catch (err) {
    await source.end().catch(() => {});
    throw err instanceof ToolkitError ? err : sourceError(src, err);
  }
}

async function openTarget(cfg: Config, database: string): Promise<pg.Client> {
  const t = rwTarget(cfg);
  try {
    return await connect(cfg, { database });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code === "3D000") {
      throw new ToolkitError(
        "TARGET_MISSING",
        `target database ${database} does not exist on the cluster`,
        `use one of the environment databases (${cfg.databases.join(", ")}) or create it first (make new-app / make dev-up)`,
      );
    }
    throw new ToolkitError(
      "CLUSTER_UNREACHABLE",
      `cannot reach the cluster at ${t.host}:${t.port}: ${redact(e.message ?? String(err))}`,
      "run `make dev-up` (or `make status` to see what is down)",
    );
  }
}

export async function withSession<T>(cfg: Config, opts: MigrateOptions, fn: (s: Session) => Promise<T>): Promise<T> {
  if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(opts.targetDb) || FORBIDDEN_TARGETS.has(opts.targetDb)) {
    throw new ToolkitError(
      "BAD_TARGET_DB",
      `TARGET_DB=${JSON.stringify(opts.targetDb)} cannot be a migration target`,
      `use one of the environment databases: ${cfg.databases.join(", ")}`,
    );
  }
  if (!cfg.secrets.POSTGRES_PASSWORD)
    throw new ToolkitError("NO_SECRETS", `${cfg.secretsFile} does not exist yet`, "run `make dev-up` first");
  const { src, source, snapshot } = await openSource(opts.sourceUrl, opts);
  let target: pg.Client | undefined;
  try {
    target = await openTarget(cfg, opts.targetDb);
    // One migration per target at a time; the lock lives as long as this session.
    const locked = (
      await target.query(
        "SELECT pg_try_advisory_lock(hashtext('pgplatform:migrate-saas:' || current_database())) AS ok",
      )
    ).rows[0].ok;
    if (!locked)
      throw new ToolkitError(
        "MIGRATE_LOCKED",
        `another migrate-saas into ${opts.targetDb} is running`,
        "wait for it to finish (a failed run leaves nothing behind), then run again",
      );
    return await fn({ src, source, target, snapshot });
  } catch (err) {
    if (err instanceof ToolkitError) throw err;
    // A pg error from the source (we only query it inside fn) must not leak the password.
    throw new ToolkitError(
      "MIGRATE_FAILED",
      redact((err as Error).message ?? String(err)),
      "see the message above; nothing was committed to the target",
    );
  } finally {
    await source.end().catch(() => {});
    await target?.end().catch(() => {});
  }
}
