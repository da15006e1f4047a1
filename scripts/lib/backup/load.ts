/**
 * Loading a pg_dump archive (-Fd) without running an app's code as the superuser.
 *
 * A plain `pg_restore` loads every table's rows in the superuser's session, so
 * a CHECK constraint, a domain's CHECK or a generated column of an app's table
 * that calls a function the app wrote runs that function as the superuser
 * (`COPY ... TO PROGRAM`: a shell as the postgres OS user). The load is split
 * in pg_dump's own sections (pg_dump's docs, "--section"):
 *
 *   1. pre-data (schemas, types, tables, functions; no rows, so no app code runs) as the superuser;
 *   2. data: each table's rows in a session whose session user is a throwaway
 *      login role that is only a member of the table's owner, with
 *      `pg_restore --role=<owner>` (SET ROLE): the app's functions run as the
 *      owner, and `RESET ROLE` inside them lands on the throwaway role, never
 *      on a superuser. Tables a superuser owns, sequence positions and large
 *      objects (no app code runs for them) load as the superuser;
 *   3. post-data (indexes, constraints, triggers, materialized view refresh)
 *      as the superuser: Postgres runs index expressions, foreign-key checks
 *      and REFRESH MATERIALIZED VIEW as the table's owner in a
 *      security-restricted operation (PostgreSQL 15 docs, "CREATE INDEX",
 *      "REFRESH MATERIALIZED VIEW"; ri_triggers.c RI_Initial_Check).
 *
 * The throwaway role's password is random, reaches the server only as a SCRAM
 * verifier and the tool only through its environment; the role is dropped
 * (with its grants) whatever happens.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { parseToc, type TocEntry } from "../migrate/toc";
import { scramVerifier } from "../scram";
import { quoteIdent } from "../pg";
import { LOAD_PGOPTIONS, pgBin, serverErrorLines } from "./common";

export interface LoadTarget {
  /** where the tools connect: an address or a socket folder */
  host: string;
  port: number;
  /** the superuser's password (tools get it through PGPASSWORD, never argv) */
  superPassword: string;
  /** a superuser session in `database`, resolving names in pg_catalog only */
  superClient: (database: string) => Promise<pg.Client>;
}

/** A table's rows and who loads them: `owner` undefined = the superuser. */
export interface DataPlan {
  byOwner: Map<string, TocEntry[]>;
  asSuperuser: TocEntry[];
}

/** The `<schema> <name>` part of a TOC line as pg_restore prints it (newlines in names become spaces). */
const tocText = (s: string) => s.replace(/\n/g, " ");

/**
 * Pure: which role loads each data entry. A TABLE DATA line ends
 * `TABLE DATA <schema> <name> <owner>`, and names may hold spaces, so the
 * split is taken from the restored catalog: the one (table, owner) pair whose
 * printed form is exactly the line's tail. No match, or more than one, is
 * refused (never guessed: a wrong guess could load as a superuser).
 *
 * tables: every table of the target after pre-data, as `{label: "<schema> <name>", owner, ownerIsSuper}`.
 */
export function planData(
  entries: TocEntry[],
  tables: { label: string; owner: string; ownerIsSuper: boolean }[],
): DataPlan {
  const byOwner = new Map<string, TocEntry[]>();
  const asSuperuser: TocEntry[] = [];
  const printed = new Map<string, { owner: string; ownerIsSuper: boolean }[]>();
  for (const t of tables) {
    const key = `${tocText(t.label)} ${tocText(t.owner)}`;
    printed.set(key, [...(printed.get(key) ?? []), t]);
  }
  for (const e of entries) {
    if (e.desc !== "TABLE DATA") {
      // SEQUENCE SET (setval), large objects: no code of the app runs.
      if (["SEQUENCE SET", "BLOBS", "BLOB DATA", "LARGE OBJECTS"].includes(e.desc)) asSuperuser.push(e);
      continue;
    }
    const tail = e.line.slice(e.line.indexOf("TABLE DATA ") + "TABLE DATA ".length);
    const hits = printed.get(tail) ?? [];
    if (hits.length !== 1) {
      throw new ToolkitError(
        "LOAD_OWNER_UNKNOWN",
        `cannot tell which role owns the rows of "${tail}" (${hits.length} tables match its name and owner)`,
        "rename the table or role so its name has no newline or doubled space, take a new backup, and restore that",
      );
    }
    const h = hits[0]!;
    if (h.ownerIsSuper) asSuperuser.push(e);
    else byOwner.set(h.owner, [...(byOwner.get(h.owner) ?? []), e]);
  }
  return { byOwner, asSuperuser };
}

/** A pg_restore step failed; `detail` holds the server's own lines (serverErrorLines). */
export class LoadFailed extends ToolkitError {
  constructor(
    readonly step: string,
    stderr: string,
  ) {
    super(
      "LOAD_FAILED",
      `pg_restore failed loading ${step}`,
      "nothing was replaced; the server's error and the object are above",
      serverErrorLines(stderr).join("\n"),
    );
  }
}

async function pgRestore(
  cfg: Config,
  t: LoadTarget,
  user: string,
  password: string,
  step: string,
  args: string[],
  archive: string,
): Promise<void> {
  const conn = ["-h", t.host, "-p", String(t.port), "-U", user, "--no-password"];
  const r = await run([pgBin(cfg, "pg_restore"), ...conn, "--exit-on-error", ...args, archive], {
    env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: "10", ...LOAD_PGOPTIONS },
    nothrow: true,
    timeoutMs: 12 * 3_600_000,
  });
  if (r.code !== 0) throw new LoadFailed(step, r.stderr);
}

const TABLES_SQL = `
  SELECT n.nspname || ' ' || c.relname AS label, r.rolname AS owner, r.rolsuper AS "ownerIsSuper"
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
   WHERE c.relkind IN ('r', 'p')`;

/**
 * Load `archive` into `database` in three steps (see the top of this file).
 * create: the archive creates the database itself (`--create`, connecting to
 * `postgres` first); otherwise `database` exists and is empty.
 * Throws LOAD_FAILED with the server's error lines, LOAD_OWNER_UNKNOWN.
 */
export async function loadArchive(
  cfg: Config,
  t: LoadTarget,
  archive: string,
  database: string,
  opts: { create?: boolean; jobs: number },
): Promise<void> {
  const listed = await run([pgBin(cfg, "pg_restore"), "-l", archive], { timeoutMs: 120_000, nothrow: true });
  if (listed.code !== 0) throw new LoadFailed("its table of contents", listed.stderr);
  const toc = parseToc(listed.stdout);
  const su = "postgres";
  const jobs = ["-j", String(opts.jobs)];
  await pgRestore(
    cfg,
    t,
    su,
    t.superPassword,
    "schema",
    [...(opts.create ? ["-d", "postgres", "--create"] : ["-d", database]), "--section=pre-data"],
    archive,
  );

  const c = await t.superClient(database);
  try {
    const plan = planData(toc, (await c.query(TABLES_SQL)).rows);
    const dir = mkdtempSync(join(tmpdir(), "pgp-load-"));
    try {
      const list = (name: string, entries: TocEntry[]) => {
        const f = join(dir, name);
        writeFileSync(f, `${entries.map((e) => e.line).join("\n")}\n`, { mode: 0o600 });
        return f;
      };
      if (plan.asSuperuser.length)
        await pgRestore(
          cfg,
          t,
          su,
          t.superPassword,
          "rows owned by a superuser",
          ["-d", database, ...jobs, "-L", list("super.list", plan.asSuperuser)],
          archive,
        );
      let i = 0;
      for (const [owner, entries] of plan.byOwner) {
        await loadAsOwner(cfg, t, c, archive, database, owner, list(`owner-${i++}.list`, entries), jobs);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await c.end().catch(() => {});
  }
  await pgRestore(
    cfg,
    t,
    su,
    t.superPassword,
    "indexes and constraints",
    ["-d", database, ...jobs, "--section=post-data"],
    archive,
  );
}

/** One owner's rows, through a throwaway login that can only become that owner. */
async function loadAsOwner(
  cfg: Config,
  t: LoadTarget,
  c: pg.Client,
  archive: string,
  database: string,
  owner: string,
  listFile: string,
  jobs: string[],
): Promise<void> {
  const loader = `pgp_load_${randomBytes(6).toString("hex")}`;
  const password = randomBytes(24).toString("base64url");
  await c.query(
    `CREATE ROLE ${quoteIdent(loader)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${scramVerifier(password)}' IN ROLE ${quoteIdent(owner)}`,
  );
  try {
    await c.query(`GRANT CONNECT ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(loader)}`);
    await pgRestore(
      cfg,
      t,
      loader,
      password,
      `rows owned by ${owner}`,
      ["-d", database, `--role=${owner}`, ...jobs, "-L", listFile],
      archive,
    );
  } finally {
    await c.query(`DROP OWNED BY ${quoteIdent(loader)}`).catch(() => {});
    await c.query(`DROP ROLE IF EXISTS ${quoteIdent(loader)}`).catch(() => {});
  }
}
