/**
 * migrate-saas against hostile inputs: every case of /work/shared/cases (the
 * copies under tests/fixtures/cases) plus tests/fixtures/migrate-hostile.sql,
 * in one scratch source cluster that speaks TLS with a certificate from a test
 * CA (so the default, verified TLS is what runs). Each assertion is the exact
 * value on the target (rows, prosrc md5s, definitions, publication
 * membership, large-object bytes), or the up-front refusal naming what cannot
 * be carried. Three source databases: the cases that migrate together, case
 * 08 (a blocker on its own) and case 10 (a non-superuser login).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { isRoot, osUserIds, run } from "../../scripts/lib/exec";
import { connect, quoteIdent, rwTarget } from "../../scripts/lib/pg";
import { generateSecret } from "../../scripts/lib/secrets";
import { registerSecret } from "../../scripts/lib/redact";
import { runScript, testConfig } from "./stack";
import { scratchAddress, startScratchPg, type ScratchPg } from "./scratch-pg";

const cfg = testConfig();
const CASES = join(import.meta.dir, "../fixtures/cases");
const HOSTILE = join(import.meta.dir, "../fixtures/migrate-hostile.sql");
// The hostile fixture's generated column public.tags.norm calls public.norm(), a SQL function with a text body.
const NORM_CODE = {
  object: "table public.tags",
  runs: "public.norm(text)",
  why: "public.norm(text) is a SQL function whose body is text (opaque: it can run any statement)",
};
const NORM_LINE = `${NORM_CODE.object} would run ${NORM_CODE.runs} as the target's superuser during the load: ${NORM_CODE.why}`;
const HOST = scratchAddress(cfg).replace(/\.50$/, ".52");
const T_MAIN = "it_mig_cases";
const T_GEN = "it_mig_gen";
const T_NONSUPER = "it_mig_nonsuper";
const OTHER_APP = "pgp_migrate_otherapp";
const OTHER_PW = generateSecret(20);
registerSecret(OTHER_PW);
const CARRIED_ROLES = ["project_owner", "pgp_mig_lo_owner", "pgp mig writer"];
const certDir = `/var/tmp/pgplatform-it-${process.pid}-migrate-certs`;
let source: ScratchPg;
let ownerPw = "";

const onSource = async <T>(
  db: string,
  fn: (c: pg.Client) => Promise<T>,
  user = "postgres",
  password?: string,
): Promise<T> => {
  const c = new pg.Client({
    host: source.host,
    port: source.port,
    user,
    password: password ?? source.password,
    database: db,
    ssl: { ca: readFileSync(join(certDir, "ca.crt"), "utf8") },
  });
  await c.connect();
  try {
    await c.query("SET TimeZone = 'UTC'; SET DateStyle = ISO; SET IntervalStyle = postgres");
    return await fn(c);
  } finally {
    await c.end();
  }
};

const onTarget = async <T>(db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> => {
  const c = await connect(cfg, { database: db });
  try {
    await c.query("SET TimeZone = 'UTC'; SET DateStyle = ISO; SET IntervalStyle = postgres");
    return await fn(c);
  } finally {
    await c.end();
  }
};

const both = async (srcDb: string, tgtDb: string, sql: string, params: unknown[] = []) => ({
  source: (await onSource(srcDb, (c) => c.query(sql, params))).rows,
  target: (await onTarget(tgtDb, (c) => c.query(sql, params))).rows,
});

/** The env file a user would write: SOURCE_DB_URL in a 0600 file. */
function envFile(name: string, url: string, mode = 0o600): string {
  const f = join(certDir, `${name}.env`);
  writeFileSync(f, `SOURCE_DB_URL=${url}\n`, { mode });
  chmodSync(f, mode);
  return f;
}

function migrate(args: string[], env: Record<string, string>) {
  return runScript("migrate-saas.ts", args, { SOURCE_DB_URL: "", SOURCE_SSLROOTCERT: join(certDir, "ca.crt"), ...env });
}

async function makeCerts() {
  rmSync(certDir, { recursive: true, force: true });
  mkdirSync(certDir, { recursive: true, mode: 0o700 });
  const ossl = (args: string[]) => run(["openssl", ...args], { timeoutMs: 60_000 });
  await ossl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    join(certDir, "ca.key"),
    "-out",
    join(certDir, "ca.crt"),
    "-days",
    "2",
    "-subj",
    "/CN=pgplatform migrate test CA",
  ]);
  await ossl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    join(certDir, "server.key"),
    "-out",
    join(certDir, "server.csr"),
    "-subj",
    `/CN=${HOST}`,
  ]);
  writeFileSync(join(certDir, "san.ext"), `subjectAltName=IP:${HOST}\n`);
  await ossl([
    "x509",
    "-req",
    "-in",
    join(certDir, "server.csr"),
    "-CA",
    join(certDir, "ca.crt"),
    "-CAkey",
    join(certDir, "ca.key"),
    "-CAcreateserial",
    "-out",
    join(certDir, "server.crt"),
    "-days",
    "2",
    "-extfile",
    join(certDir, "san.ext"),
  ]);
  chmodSync(certDir, 0o755);
  chmodSync(join(certDir, "server.key"), 0o600);
  const ids = isRoot() ? osUserIds("postgres") : undefined;
  if (ids) for (const f of ["server.key", "server.crt"]) chownSync(join(certDir, f), ids.uid, ids.gid);
}

async function dropOurs() {
  const c = await connect(cfg);
  try {
    for (const db of [T_MAIN, T_GEN, T_NONSUPER])
      await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
    for (const r of [...CARRIED_ROLES, OTHER_APP]) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  await dropOurs();
  await makeCerts();
  source = await startScratchPg({
    host: HOST,
    name: "migrate-cases",
    settings: {
      ssl: "on",
      ssl_cert_file: `'${join(certDir, "server.crt")}'`,
      ssl_key_file: `'${join(certDir, "server.key")}'`,
    },
  });
  await source.psql("postgres", join(CASES, "00-source-roles.sql"), { file: true });
  for (const db of ["cases", "cases_gen", "cases_nonsuper"]) {
    await source.psql("postgres", `CREATE DATABASE ${db}`);
    await source.psql(db, join(CASES, "00-source-base.sql"), { file: true });
  }
  for (const c of [
    "01-webhook-trigger",
    "03-hash-partition-enum",
    "04-function-body-lines",
    "05-enum-checksum",
    "06-large-objects",
    "07-unlogged-table",
    "09-realtime-publication",
    "11-inheritance",
    "15-plain-matview",
  ])
    await source.psql("cases", join(CASES, `${c}.sql`), { file: true });
  await source.psql("cases", HOSTILE, { file: true });
  // The source's sessions print dates day-first and intervals SQL-style: the copy must not depend on it.
  await source.psql(
    "postgres",
    "ALTER DATABASE cases SET DateStyle = 'SQL, DMY'; ALTER DATABASE cases SET IntervalStyle = 'sql_standard'",
  );
  await source.psql("cases_gen", join(CASES, "08-generated-search-path.sql"), { file: true });
  await source.psql("cases_nonsuper", join(CASES, "10-nonsuperuser-source.sql"), { file: true });
  ownerPw = generateSecret(20);
  registerSecret(ownerPw);
  await source.psql("postgres", `ALTER ROLE project_owner PASSWORD '${ownerPw}'`);
  // Targets: empty databases; the main one confined like an environment database, next to another app's role.
  const c = await connect(cfg);
  try {
    for (const db of [T_MAIN, T_GEN, T_NONSUPER]) await c.query(`CREATE DATABASE ${quoteIdent(db)}`);
    await c.query(`REVOKE CONNECT ON DATABASE ${quoteIdent(T_MAIN)} FROM PUBLIC`);
    await c.query(`ALTER DATABASE ${quoteIdent(T_MAIN)} SET statement_timeout = '42s'`);
    await c.query(`COMMENT ON DATABASE ${quoteIdent(T_MAIN)} IS 'environment database'`);
    await c.query(`CREATE ROLE ${quoteIdent(OTHER_APP)} LOGIN PASSWORD '${OTHER_PW}'`);
  } finally {
    await c.end();
  }
}, 180_000);

afterAll(async () => {
  await dropOurs().catch(() => {});
  await source?.stop();
  rmSync(certDir, { recursive: true, force: true });
}, 120_000);

const mainUrl = () => source.url("cases");
const targetEmpty = async (db: string) =>
  onTarget(db, async (c) =>
    Number(
      (
        await c.query(
          "SELECT count(*) AS n FROM pg_class WHERE relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) AND relnamespace::regnamespace::text NOT LIKE 'pg_toast%'",
        )
      ).rows[0].n,
    ),
  );

describe("migrate-saas: the source connection", () => {
  test("TLS is verified by default: a certificate from a CA the machine does not trust is refused, nothing changes", async () => {
    const r = migrate(["--target-db", T_MAIN], { SOURCE_ENV: envFile("main", mainUrl()), SOURCE_SSLROOTCERT: "" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("SOURCE_TLS_FAILED");
    expect(r.stderr).toContain(`${HOST}:5432`);
    expect(r.out).not.toContain(source.password);
    expect(await targetEmpty(T_MAIN)).toBe(0);
  });

  test("a URL asking for unverified TLS is refused unless the run opts out", () => {
    const r = migrate(["--target-db", T_MAIN, "--plan"], {
      SOURCE_ENV: envFile("weak", `${mainUrl()}?sslmode=require`),
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("SOURCE_TLS_UNVERIFIED");
  });

  test("an env file others can read is refused (it holds the password)", () => {
    const r = migrate(["--target-db", T_MAIN, "--plan"], { SOURCE_ENV: envFile("open", mainUrl(), 0o644) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ENV_FILE_OPEN");
    expect(r.stderr).toContain("chmod 600");
  });
});

describe("migrate-saas: what cannot be carried is refused up front", () => {
  test("01: PLAN names the Database Webhook trigger; the run refuses before touching the target", async () => {
    const env = { SOURCE_ENV: envFile("main", mainUrl()) };
    const p = migrate(["--target-db", T_MAIN, "--json"], { ...env, PLAN: "1" });
    expect(p.code).toBe(1);
    const { plan } = JSON.parse(p.stdout);
    expect(plan.sourceTls).toStartWith("verified (sslmode=verify-full");
    expect(plan.leftOut).toEqual([
      {
        object: "trigger notify-fulfilment on table public.orders",
        reason: "needs function supabase_functions.http_request(), which is not migrated",
      },
    ]);
    // The fixture's generated column calls a SQL function whose body is text: code the load runs as the superuser, named too.
    expect(plan.sourceCode).toEqual([NORM_CODE]);
    expect(plan.blockers).toEqual([
      // case 10's login, shaped like Supabase's postgres: CREATEROLE, which here would reach pg_execute_server_program
      "role project_owner has CREATEROLE on the source: on the cluster it could grant itself pg_execute_server_program (a shell as postgres); grant it on the cluster by hand if you mean it, or pass --accept-left-out (ACCEPT_LEFT_OUT=1) to migrate without it",
      "trigger notify-fulfilment on table public.orders: needs function supabase_functions.http_request(), which is not migrated; make it migratable on the source, or pass --accept-left-out (ACCEPT_LEFT_OUT=1) to migrate without it",
      `${NORM_LINE}; read that code on the source, then pass --trust-source-code (TRUST_SOURCE_CODE=1) to run it, or change it on the source (an IMMUTABLE SQL function with a parsed body, BEGIN ATOMIC or RETURN, calling only built-in functions, is trusted)`,
    ]);
    const r = migrate(["--target-db", T_MAIN], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("MIGRATE_BLOCKED");
    expect(r.stderr).toContain("trigger notify-fulfilment on table public.orders");
    expect(await targetEmpty(T_MAIN)).toBe(0);
  }, 60_000);

  test("08: a generated column through an unqualified inner call is named by PLAN, not a mid-restore failure", async () => {
    const r = migrate(["--target-db", T_GEN], {
      SOURCE_ENV: envFile("gen", source.url("cases_gen")),
      ACCEPT_LEFT_OUT: "1",
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("MIGRATE_BLOCKED");
    expect(r.stderr).toContain(
      "default value for column slug of table public.articles calls public.slugify(text), whose body calls squash_ws without a schema",
    );
    expect(r.stderr).toContain("ALTER FUNCTION public.slugify(text) SET search_path = public");
    expect(await targetEmpty(T_GEN)).toBe(0);
  }, 60_000);
});

describe("migrate-saas: the cases and the hostile fixture, migrated and compared value by value", () => {
  let report: any;
  let datBefore: unknown;

  test("the migration runs over verified TLS and verifies (left-out trigger accepted)", async () => {
    datBefore = await onTarget(
      "postgres",
      async (c) =>
        (await c.query("SELECT datacl::text, datconnlimit FROM pg_database WHERE datname = $1", [T_MAIN])).rows[0],
    );
    const r = migrate(["--target-db", T_MAIN, "--json"], {
      SOURCE_ENV: envFile("main", mainUrl()),
      ACCEPT_LEFT_OUT: "1",
      TRUST_SOURCE_CODE: "1",
    });
    if (r.code !== 0) console.error(r.out);
    expect(r.code).toBe(0);
    report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.plan.sourceCode).toEqual([NORM_CODE]);
    expect(report.plan.warnings).toContain(`trusted (--trust-source-code): ${NORM_LINE}`);
    expect(
      await onTarget(
        "postgres",
        async (c) =>
          (
            await c.query(
              "SELECT rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = 'project_owner'",
            )
          ).rows,
      ),
    ).toEqual([{ rolcreaterole: false, rolcreatedb: true, rolbypassrls: true }]);
    expect(report.verification.mismatches).toEqual([]);
    expect(report.plan.sourceTls).toStartWith("verified");
    expect(report.reassigned).toEqual(
      expect.arrayContaining([
        { role: "supabase_admin", owned: 2, grants: 0 },
        { role: "dashboard_user", owned: 0, grants: 1 },
      ]),
    );
    expect(r.out).not.toContain(source.password);
  }, 240_000);

  test("every table's rows are identical (text of every row, sorted), partitioned and inheritance trees included", async () => {
    const tables = report.verification.tables.map((t: { table: string }) => t.table);
    expect(tables).toEqual(
      expect.arrayContaining([
        "public.feelings",
        "public.usage_events",
        "public.readings",
        "public.readings_2024",
        "public.readings_2025",
        "public.session_cache",
        "public.documents",
        "public.palette",
        "public.events",
        "public.tags",
        "public.sales_by_region",
        "public.top_region",
        "public.raw_json",
        "public.no_columns",
        "public.durations",
        'Odd Schema.line\nbreak "quoted" GRANT ALL ON x TO supabase_admin;',
      ]),
    );
    for (const t of report.verification.tables as { table: string }[]) {
      const [schema, ...rest] = t.table.split(".");
      const rel = `${quoteIdent(schema!)}.${quoteIdent(rest.join("."))}`;
      const kind = (
        await onSource("cases", (c) => c.query("SELECT relkind FROM pg_class WHERE oid = $1::regclass", [rel]))
      ).rows[0].relkind;
      const sql = `SELECT count(*)::int AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text COLLATE "C"), '')) AS h FROM ${kind === "p" ? "" : "ONLY "}${rel} x`;
      const r = await both("cases", T_MAIN, sql);
      expect({ table: t.table, ...r.target[0] }).toEqual({ table: t.table, ...r.source[0] });
    }
  }, 120_000);

  test("03/11: partition and inheritance counts: 200 rows through the enum-hashed root; ONLY 2/40/30", async () => {
    const r = await both(
      "cases",
      T_MAIN,
      `SELECT (SELECT count(*) FROM public.usage_events)::int AS ue, (SELECT count(*) FROM ONLY public.readings)::int AS r,
      (SELECT count(*) FROM ONLY public.readings_2024)::int AS r24, (SELECT count(*) FROM ONLY public.readings_2025)::int AS r25, (SELECT count(*) FROM public.events)::int AS ev`,
    );
    expect(r.target[0]).toEqual({ ue: 200, r: 2, r24: 40, r25: 30, ev: 90 });
    expect(r.source[0]).toEqual(r.target[0]);
  });

  test("04 and the fixture: function bodies byte-identical (md5 of prosrc), banner() returns the same 4 lines", async () => {
    const sql = `SELECT p.oid::regprocedure::text AS f, md5(p.prosrc) AS m FROM pg_proc p WHERE p.pronamespace IN ('public'::regnamespace, '"Odd Schema"'::regnamespace, 'auth'::regnamespace) ORDER BY 1`;
    const r = await both("cases", T_MAIN, sql);
    expect(r.target).toEqual(r.source);
    expect(r.target.map((x) => x.f)).toEqual(
      expect.arrayContaining(["setup_reporting()", "banner()", '"Odd Schema".weird_body()']),
    );
    const banner = await onTarget(
      T_MAIN,
      async (c) => (await c.query('SELECT public.banner() AS b, "Odd Schema".weird_body() AS w')).rows[0],
    );
    expect(banner.b).toBe(
      "first line\nSET transaction_timeout = 0;\nGRANT ALL ON TABLE x TO supabase_admin;\nlast line",
    );
    expect(banner.w).toBe(
      "x\nCOPY public.notes FROM stdin;\n\\.\n$$ not the end $$\n\nALTER TABLE public.notes OWNER TO supabase_admin;\nCREATE EXTENSION hack;\nSET transaction_timeout = 0;\n",
    );
    expect(
      report.verification.definitions.find((d: { object: string }) => d.object === "function public.banner()"),
    ).toMatchObject({ ok: true });
  });

  test("views, materialized views, policies, triggers: definitions equal; the left-out trigger is absent", async () => {
    const r = await both(
      "cases",
      T_MAIN,
      `SELECT c.oid::regclass::text AS v, pg_get_viewdef(c.oid) AS d FROM pg_class c WHERE c.relkind IN ('v','m') AND c.relnamespace = 'public'::regnamespace ORDER BY 1`,
    );
    expect(r.target).toEqual(r.source);
    const pol = await both(
      "cases",
      T_MAIN,
      "SELECT schemaname, tablename, policyname, roles::text, cmd, qual FROM pg_policies ORDER BY 1, 2, 3",
    );
    expect(pol.target).toEqual(pol.source);
    expect(pol.target.map((x) => x.policyname)).toContain("own notes\nGRANT ALL ON TABLE x TO dashboard_user;");
    const trg = await both("cases", T_MAIN, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1");
    expect(trg.source.map((x) => x.tgname)).toEqual(["notify-fulfilment"]);
    expect(trg.target).toEqual([]);
  });

  test("06 and the fixture: every large object opens with the same bytes, owner and grant", async () => {
    const sql = `SELECT m.oid::bigint::text AS oid, pg_get_userbyid(m.lomowner) AS owner, m.lomacl::text AS acl, encode(lo_get(m.oid), 'hex') AS bytes FROM pg_largeobject_metadata m ORDER BY m.oid`;
    const r = await both("cases", T_MAIN, sql);
    expect(r.target).toHaveLength(10);
    expect(r.target).toEqual(r.source); // same OIDs (the rows' references hold), owners, grants, bytes
    expect(r.target.find((x) => x.oid === "424242")).toMatchObject({ owner: "pgp_mig_lo_owner", bytes: "00ff00fe" });
    expect(r.target.find((x) => x.oid === "424242")!.acl).toContain("authenticated=r/pgp_mig_lo_owner");
    expect(r.target.find((x) => x.oid === "424243")!.bytes.length).toBe(1_400_000 * 2); // more than one 1 MB chunk
    const docs = await onTarget(
      T_MAIN,
      async (c) =>
        (
          await c.query(
            "SELECT convert_from(lo_get(content), 'UTF8') AS t FROM public.documents WHERE filename = 'doc-3.txt'",
          )
        ).rows[0].t,
    );
    expect(docs).toBe("page 3 ".repeat(50));
  });

  test("09 and the fixture: publication membership carried, row filter and column list included", async () => {
    const r = await both(
      "cases",
      T_MAIN,
      "SELECT pubname, schemaname, tablename, attnames::text, rowfilter FROM pg_publication_tables ORDER BY 1, 2, 3",
    );
    expect(r.target).toEqual(r.source);
    expect(r.target.map((x) => `${x.pubname}:${x.tablename}`)).toEqual([
      "audit_feed:notes",
      "supabase_realtime:chat_messages",
      "supabase_realtime:presence",
    ]);
    const opts = await both(
      "cases",
      T_MAIN,
      "SELECT pubname, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot FROM pg_publication ORDER BY 1",
    );
    expect(opts.target).toEqual(opts.source);
  });

  test("15 and the fixture: materialized views arrive populated with the source's rows; a never-populated one stays so", async () => {
    const r = await both(
      "cases",
      T_MAIN,
      "SELECT relname, relispopulated FROM pg_class WHERE relkind = 'm' ORDER BY 1",
    );
    expect(r.target).toEqual([
      { relname: "never_filled", relispopulated: false },
      { relname: "sales_by_region", relispopulated: true },
      { relname: "top_region", relispopulated: true },
    ]);
    const rows = await both("cases", T_MAIN, "SELECT region, total::text, n FROM public.sales_by_region ORDER BY 1");
    expect(rows.target).toEqual(rows.source);
    expect(rows.target).toHaveLength(3);
  });

  test("07: the unlogged table stays unlogged with its 30 rows; enums, domains, reg* and generated values as on the source", async () => {
    const r = await both(
      "cases",
      T_MAIN,
      `SELECT (SELECT relpersistence FROM pg_class WHERE oid = 'public.session_cache'::regclass) AS p, (SELECT count(*)::int FROM public.session_cache) AS n,
      (SELECT string_agg(format('%s|%s|%s|%s|%s|%s', cs, d, p, rel, typ, r), ';' ORDER BY id) FROM public.palette) AS palette,
      (SELECT string_agg(norm, ',' ORDER BY id) FROM public.tags) AS tags`,
    );
    expect(r.target).toEqual(r.source);
    expect(r.target[0].p).toBe("u");
    expect(r.target[0].n).toBe(30);
    expect(r.target[0].tags.split(",")[0]).toBe("tag 1 x");
  });

  test("ownership: objects of Supabase roles the cluster lacks belong to the migrating superuser; custom roles keep theirs; no placeholder survives", async () => {
    const owners = await onTarget(
      T_MAIN,
      async (c) =>
        (await c.query("SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'sales'")).rows[0]
          .tableowner,
    );
    expect(owners).toBe("postgres");
    const roles = await onTarget("postgres", async (c) =>
      (await c.query("SELECT rolname FROM pg_roles")).rows.map((x) => x.rolname as string),
    );
    for (const r of ["supabase_admin", "dashboard_user", "supabase_functions_admin"]) expect(roles).not.toContain(r);
    for (const r of ["pgp_mig_lo_owner", "pgp mig writer"]) expect(roles).toContain(r);
  });

  test("the database comes back as it was: owner, settings, comment; confined: the migrated login may connect, another app's role may not", async () => {
    const st = await onTarget(
      "postgres",
      async (c) =>
        (
          await c.query(
            `SELECT pg_get_userbyid(datdba) AS owner, shobj_description(oid, 'pg_database') AS comment, datconnlimit,
              (SELECT setconfig::text FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0) AS settings,
              has_database_privilege('public', datname, 'CONNECT') AS public_connect FROM pg_database d WHERE datname = $1`,
            [T_MAIN],
          )
        ).rows[0],
    );
    expect(st).toEqual({
      owner: "postgres",
      comment: "environment database",
      datconnlimit: -1,
      settings: "{statement_timeout=42s}",
      public_connect: false,
    });
    expect(datBefore).toMatchObject({ datconnlimit: -1 });
    const other = new pg.Client({ ...rwTarget(cfg), user: OTHER_APP, password: OTHER_PW, database: T_MAIN });
    other.on("error", () => {});
    const err = await other.connect().then(
      () => null,
      (e: Error) => e.message,
    );
    await other.end().catch(() => {});
    expect(err).toBe(`permission denied for database "${T_MAIN}"`);
    const pw = readFileSync(report.rolePasswordsFile, "utf8").match(/^pgp mig writer=(.+)$/m)![1]!;
    const writer = new pg.Client({ ...rwTarget(cfg), user: "pgp mig writer", password: pw, database: T_MAIN });
    await writer.connect();
    // Its grant came along; row-level security (a policy for authenticated only) hides every row from it, as on the source.
    expect(
      (
        await writer.query(
          "SELECT has_table_privilege('public.notes', 'SELECT') AS g, (SELECT count(*)::int FROM public.notes) AS n",
        )
      ).rows[0],
    ).toEqual({ g: true, n: 0 });
    await writer.end();
  });
});

// Last: roles are cluster-wide, so this migration (from the same source cluster) would otherwise create the main case's roles first.
describe("migrate-saas: a non-superuser source login", () => {
  test("10: a non-superuser login that cannot read storage.migrations: named by PLAN; accepted, the rest migrates and the report says so", async () => {
    const env = { SOURCE_ENV: envFile("nonsuper", source.url("cases_nonsuper", "project_owner", ownerPw)) };
    const p = migrate(["--target-db", T_NONSUPER, "--json"], { ...env, PLAN: "1" });
    expect(p.code).toBe(1);
    const { plan } = JSON.parse(p.stdout);
    expect(plan.leftOut).toEqual([
      { object: "table storage.migrations", reason: "the source login project_owner has no SELECT on it" },
    ]);
    expect(await targetEmpty(T_NONSUPER)).toBe(0);
    const r = migrate(["--target-db", T_NONSUPER, "--json"], { ...env, ACCEPT_LEFT_OUT: "1" });
    if (r.code !== 0) console.error(r.out);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.plan.leftOut.map((l: { object: string }) => l.object)).toEqual(["table storage.migrations"]);
    const rows = await both("cases_nonsuper", T_NONSUPER, "SELECT id::text, handle FROM public.profiles ORDER BY id");
    expect(rows.target).toEqual(rows.source);
    expect(rows.target).toHaveLength(5);
    expect(
      await onTarget(
        T_NONSUPER,
        async (c) => (await c.query("SELECT to_regclass('storage.migrations') IS NULL AS gone")).rows[0].gone,
      ),
    ).toBe(true);
  }, 120_000);
});
