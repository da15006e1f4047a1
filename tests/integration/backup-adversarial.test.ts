/**
 * Hostile inputs for backup, backup-verify, restore (in place and TO=) and
 * restore-pitr, loaded ONCE into one registered database and backed up once:
 * odd identifiers (quotes, a newline, unicode), enums, domains, arrays,
 * jsonb, bytea, reg* values, function bodies that look like statements, a
 * generated column, hash partitions on an enum, inheritance with a column
 * order pg_dump cannot keep, an unlogged table, a matview, large objects,
 * and the database's own owner, ACL, settings, connection limit and comment.
 * Every check compares exact values against the source. Then the guards:
 * an edited manifest, content changed behind consistent sha256 sums, and a
 * flipped byte must each stop verification and restore (before the target is
 * touched); a restore step that fails must show the server's error line.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { connect, quoteIdent, quoteLiteral } from "../../scripts/lib/pg";
import { runScript, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const DB = "orchestrator_ai_dev";
const FAILDB = "orchestrator_ai_production";
const COPY = "it_adv_copy";
const S = 'it adv "q"\nnl ✓'; // schema name: a quote, a newline, unicode
const QS = quoteIdent(S);
const APP = "pgp-backup-app";
const OTHER = "pgp-backup-otherapp";
const APP_PW = randomBytes(12).toString("hex");
const OTHER_PW = randomBytes(12).toString("hex");
const created: string[] = [];
const jsonOf = (out: string) => JSON.parse(out.slice(out.indexOf("{")));

async function sql<T = any>(query: string, params: unknown[] = [], database = DB): Promise<T[]> {
  const c = await connect(cfg, { database });
  try {
    return (await c.query(query, params)).rows as T[];
  } finally {
    await c.end().catch(() => {});
  }
}

const LOAD = `
CREATE SCHEMA ${QS};
SET search_path = ${QS}, public;
CREATE TYPE mood AS ENUM ('ok', 'meh', 'it''s bad', 'ünïcode ✓');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE "wëird ""table""
name" (id int PRIMARY KEY, "col ""x""" text, m mood, ms mood[], p posint, tags text[], doc jsonb, raw bytea,
  amount numeric(12,3), at timestamptz, span interval, f float8, kind regtype, rel regclass);
INSERT INTO "wëird ""table""
name" SELECT g, E'line\\n' || g || ' tab\\t "q" ''s', (enum_range(NULL::mood))[1 + g % 4], ARRAY[(enum_range(NULL::mood))[1 + g % 4], 'ok'::mood],
  g, ARRAY['a,b', NULL, '{x}', 'ü'], jsonb_build_object('n', g, 'nested', jsonb_build_array(g, 'ß', NULL)), decode(md5(g::text), 'hex'),
  g * 1.125, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 hour 1 second', g * interval '1 day 3 min', g / 3.0::float8,
  'int4'::regtype, ${quoteLiteral(`${QS}."wëird ""table""\nname"`)}::regclass
FROM generate_series(1, 120) g;
-- A plpgsql body whose lines start with statements, and a SQL function returning such text.
CREATE FUNCTION audit_note() RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  RETURN '
CREATE SCHEMA evil;
GRANT ALL ON ALL TABLES IN SCHEMA public TO dashboard_user;
ALTER TABLE x OWNER TO supabase_admin;
';
END
$f$;
CREATE FUNCTION banner() RETURNS text LANGUAGE sql AS $f$ SELECT E'\\\\connect other\\nSET search_path = evil;\\n-- not a comment' $f$;
-- A generated column through a qualified call chain (restorable under pg_dump's empty search_path).
CREATE FUNCTION squash(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$ SELECT regexp_replace(t, '\\s+', ' ', 'g') $f$;
CREATE FUNCTION slug(t text) RETURNS text LANGUAGE sql IMMUTABLE AS ${quoteLiteral(`SELECT lower(replace(${QS}.squash(t), ' ', '-'))`)};
CREATE TABLE articles (id int PRIMARY KEY, title text NOT NULL, slug text GENERATED ALWAYS AS (${QS}.slug(title)) STORED);
INSERT INTO articles (id, title) SELECT g, 'Hello   World ' || g FROM generate_series(1, 15) g;
-- Hash partitions on an enum: pg_dump loads them through the root, rows land by the target's enum OIDs.
CREATE TABLE mood_log (m mood NOT NULL, id bigint NOT NULL, units int NOT NULL, PRIMARY KEY (m, id)) PARTITION BY HASH (m);
CREATE TABLE mood_log_p0 PARTITION OF mood_log FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE mood_log_p1 PARTITION OF mood_log FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO mood_log SELECT (enum_range(NULL::mood))[1 + g % 4], g, g % 17 FROM generate_series(1, 200) g;
-- Inheritance with rows in the parent, and a parent column added after the children exist
-- (the children's column order then differs from what pg_dump re-creates).
CREATE TABLE readings (id bigint PRIMARY KEY, sensor text NOT NULL, taken_on date NOT NULL);
CREATE TABLE readings_2024 (extra text DEFAULT 'x', CHECK (taken_on >= '2024-01-01' AND taken_on < '2025-01-01')) INHERITS (readings);
CREATE TABLE readings_2025 (CHECK (taken_on >= '2025-01-01' AND taken_on < '2026-01-01')) INHERITS (readings);
ALTER TABLE readings ADD COLUMN value double precision;
INSERT INTO readings VALUES (1, 'legacy', '2023-06-01', 1.5), (2, 'legacy', '2023-07-01', 2.5);
INSERT INTO readings_2024 (id, sensor, taken_on, value, extra) SELECT 100 + g, 's' || (g % 4), date '2024-01-01' + g, g * 0.5, 'e' || g FROM generate_series(1, 40) g;
INSERT INTO readings_2025 SELECT 200 + g, 's' || (g % 4), date '2025-01-01' + g, g * 0.25 FROM generate_series(1, 30) g;
-- Unlogged: a replica's dump holds none of its rows.
CREATE UNLOGGED TABLE session_cache (key text PRIMARY KEY, value jsonb);
INSERT INTO session_cache SELECT 'k' || g, jsonb_build_object('n', g) FROM generate_series(1, 30) g;
-- A matview, populated.
CREATE MATERIALIZED VIEW mood_totals AS SELECT m, count(*) AS n, sum(units) AS units FROM mood_log GROUP BY m;
-- No columns at all (rows still count), and names that collide with the checksum query's own words.
CREATE TABLE "no columns" ();
INSERT INTO "no columns" DEFAULT VALUES; INSERT INTO "no columns" DEFAULT VALUES; INSERT INTO "no columns" DEFAULT VALUES;
CREATE TABLE x (x int, "ROW" text, "count" bigint);
INSERT INTO x VALUES (1, ')::text', NULL), (2, NULL, 3);
-- Large objects referenced by a table.
CREATE TABLE documents (id int PRIMARY KEY, content oid);
INSERT INTO documents SELECT g, lo_from_bytea(0, convert_to(repeat('page ' || g || ' ✓ ', 50), 'UTF8')) FROM generate_series(1, 8) g;
`;

/** Every table's rows as sorted jsonb (column order does not matter; enums and reg* as text). */
async function contents(database: string): Promise<Record<string, string>> {
  const c = await connect(cfg, { database });
  try {
    await c.query("SET TimeZone = 'UTC'");
    // Partitions are checked apart: a hash on an enum routes rows by the target's enum OIDs.
    const tables = (
      await c.query(
        "SELECT c.relname, c.relkind::text AS k FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition ORDER BY 1",
        [QS],
      )
    ).rows;
    const out: Record<string, string> = {};
    for (const t of tables) {
      // The alias must not be a column name (table "x" has a column x): to_jsonb(x) would take the column.
      const r = await c.query(
        `SELECT coalesce(jsonb_agg(to_jsonb(whole_row) ORDER BY to_jsonb(whole_row)::text), '[]')::text AS j FROM ${t.k === "p" ? "" : "ONLY"} ${QS}.${quoteIdent(t.relname)} whole_row`,
      );
      out[t.relname] = r.rows[0].j;
    }
    out["large objects"] = (
      await c.query(
        `SELECT jsonb_agg(jsonb_build_array(d.id, convert_from(lo_get(d.content), 'UTF8')) ORDER BY d.id)::text AS j FROM ${QS}.documents d`,
      )
    ).rows[0].j;
    out["function bodies"] = (
      await c.query(
        "SELECT jsonb_agg(jsonb_build_array(proname, md5(prosrc)) ORDER BY proname)::text AS j FROM pg_proc WHERE pronamespace = $1::regnamespace",
        [QS],
      )
    ).rows[0].j;
    return out;
  } finally {
    await c.end().catch(() => {});
  }
}

/** The database's own properties, straight from the catalogs (not through the code under test). */
async function props(database: string) {
  return (
    await sql(
      `SELECT pg_get_userbyid(d.datdba) AS owner, (SELECT array_agg(a ORDER BY a) FROM unnest(d.datacl::text[]) a) AS acl, d.datconnlimit AS connlimit,
              shobj_description(d.oid, 'pg_database') AS comment,
              (SELECT array_agg(s ORDER BY s) FROM pg_db_role_setting r, unnest(r.setconfig) s WHERE r.setdatabase = d.oid AND r.setrole = 0) AS settings,
              (SELECT array_agg(r.setrole::regrole::text || ':' || (SELECT string_agg(x, ',' ORDER BY x) FROM unnest(r.setconfig) x) ORDER BY 1) FROM pg_db_role_setting r WHERE r.setdatabase = d.oid AND r.setrole <> 0) AS role_settings
       FROM pg_database d WHERE d.datname = $1`,
      [database],
      "postgres",
    )
  )[0];
}

async function canConnect(
  database: string,
  user: string,
  password: string,
  target?: { host: string; port: number },
): Promise<string> {
  try {
    const c = await connect(cfg, { database, user, password, target });
    await c.end();
    return "connected";
  } catch (e) {
    return (e as Error).message;
  }
}

let source: Record<string, string> = {};
let sourceProps: any;
let id = "";

beforeAll(async () => {
  await waitClusterHealthy(cfg);
  for (const [r, pw] of [
    [APP, APP_PW],
    [OTHER, OTHER_PW],
  ] as const) {
    await sql(`DROP ROLE IF EXISTS ${quoteIdent(r)}`, [], "postgres").catch(() => {});
    await sql(`CREATE ROLE ${quoteIdent(r)} LOGIN PASSWORD ${quoteLiteral(pw)}`, [], "postgres");
  }
  await sql(`GRANT CONNECT ON DATABASE ${quoteIdent(DB)} TO ${quoteIdent(APP)} WITH GRANT OPTION`, [], "postgres");
  await sql(`ALTER DATABASE ${quoteIdent(DB)} CONNECTION LIMIT 42`, [], "postgres");
  await sql(
    `COMMENT ON DATABASE ${quoteIdent(DB)} IS ${quoteLiteral("bookwriter's data\nline two; GRANT CONNECT ON DATABASE x TO PUBLIC;")}`,
    [],
    "postgres",
  );
  await sql(`ALTER ROLE ${quoteIdent(APP)} IN DATABASE ${quoteIdent(DB)} SET statement_timeout = '7s'`, [], "postgres");
  // A setting that would switch the restoring session's own role if replayed naively.
  await sql(
    `ALTER ROLE ${quoteIdent(APP)} IN DATABASE ${quoteIdent(DB)} SET role = ${quoteIdent(APP)}`,
    [],
    "postgres",
  );
  await sql(`ALTER DATABASE ${quoteIdent(DB)} SET search_path = "$user", public, ${QS}`, [], "postgres");
  const c = await connect(cfg, { database: DB });
  try {
    await c.query(LOAD);
  } finally {
    await c.end();
  }
  source = await contents(DB);
  sourceProps = await props(DB);
}, 120_000);

afterAll(async () => {
  await waitClusterHealthy(cfg).catch(() => {});
  const dbs = await sql(
    "SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2 OR datname LIKE $3 OR datname LIKE $4",
    [COPY, `${DB}\\_pre\\_restore\\_%`, "it\\_adv\\_%", `${FAILDB}\\_%`],
    "postgres",
  );
  for (const d of dbs) await sql(`DROP DATABASE ${quoteIdent(d.datname)} WITH (FORCE)`, [], "postgres").catch(() => {});
  await sql(`DROP SCHEMA IF EXISTS ${QS} CASCADE`).catch(() => {});
  await sql("SELECT lo_unlink(oid) FROM pg_largeobject_metadata").catch(() => {});
  await sql(
    "DROP TABLE IF EXISTS public.articles; DROP FUNCTION IF EXISTS public.slugify(text); DROP FUNCTION IF EXISTS public.squash_ws(text)",
    [],
    FAILDB,
  ).catch(() => {});
  await sql(
    `ALTER DATABASE ${quoteIdent(DB)} CONNECTION LIMIT -1; COMMENT ON DATABASE ${quoteIdent(DB)} IS NULL; ALTER DATABASE ${quoteIdent(DB)} RESET search_path`,
    [],
    "postgres",
  ).catch(() => {});
  for (const r of [APP, OTHER]) {
    for (const d of [DB, FAILDB])
      await sql(
        `ALTER ROLE ${quoteIdent(r)} IN DATABASE ${quoteIdent(d)} RESET ALL; REVOKE ALL ON DATABASE ${quoteIdent(d)} FROM ${quoteIdent(r)} CASCADE`,
        [],
        "postgres",
      ).catch(() => {});
    await sql(`DROP ROLE IF EXISTS ${quoteIdent(r)}`, [], "postgres").catch(() => {});
  }
  for (const b of created) rmSync(join(cfg.backup.dir, b), { recursive: true, force: true });
  runScript("restore-pitr.ts", ["--remove"]);
});

/** What every restore path must give back, exactly. */
async function expectSameAsSource(database: string) {
  expect(await contents(database)).toEqual(source);
  const p = await props(database);
  expect(p).toEqual(sourceProps);
  // Isolation: another app's role cannot connect; the app's role can.
  expect(await canConnect(database, OTHER, OTHER_PW)).toContain(`permission denied for database "${database}"`);
  expect(await canConnect(database, APP, APP_PW)).toBe("connected");
}

describe("backup and restore of hostile inputs", () => {
  test("the source is what the suite thinks it is (exact values a restore must reproduce)", async () => {
    expect(
      JSON.parse(source["session_cache"]!)
        .map((r: any) => r.key)
        .sort(),
    ).toEqual(Array.from({ length: 30 }, (_, i) => `k${i + 1}`).sort());
    const agg = (
      await sql(
        `SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY to_jsonb(x)::text), '[]')::text AS j FROM (SELECT m, count(*) AS n, sum(units) AS units FROM ${QS}.mood_log GROUP BY m) x`,
      )
    )[0].j;
    expect(JSON.parse(source["mood_totals"]!).map((r: any) => [r.m, r.n])).toEqual([
      ["it's bad", 50],
      ["meh", 50],
      ["ok", 50],
      ["ünïcode ✓", 50],
    ]);
    expect(source["mood_totals"]).toBe(agg);
    expect(source["no columns"]).toBe("[{}, {}, {}]");
    expect(JSON.parse(source["x"]!)).toEqual([
      { x: 1, ROW: ")::text", count: null },
      { x: 2, ROW: null, count: 3 },
    ]);
    expect(JSON.parse(source["large objects"]!)[7]).toEqual([8, "page 8 ✓ ".repeat(50)]);
    // a superuser's grant is recorded as made by the database's owner (the environment's own role)
    expect(sourceProps.acl).toContain(`"${APP}"=c*/${sourceProps.owner}`);
    expect(sourceProps.acl.some((a: string) => a.startsWith("=") && a.split("/")[0]!.includes("c"))).toBe(false); // PUBLIC cannot connect (privileges before the "/", not the grantor's name)
    expect(sourceProps.connlimit).toBe(42);
    expect(sourceProps.role_settings).toEqual([`"${APP}":role=${APP},statement_timeout=7s`]);
  });

  test("backup: verified by restore with content checksums; every table listed, the unlogged one dumped from the primary", async () => {
    const r = runScript("backup.ts", ["--db", DB, "--json"]);
    expect(r.stderr).not.toContain("error [");
    expect(r.code).toBe(0);
    const rep = jsonOf(r.stdout);
    id = rep.id;
    created.push(id);
    expect(rep.verification.checks).toEqual({
      files: true,
      restore: true,
      rowCounts: true,
      checksums: true,
      databaseProperties: true,
      pgbackrest: true,
    });
    const entry = rep.manifest.databases[0];
    const t = (name: string) => entry.tables.find((x: any) => x.schema === S && x.table === name);
    expect(t("session_cache")).toMatchObject({ rows: 30, unlogged: true, kind: "table" });
    expect(entry.note).toContain(`${S}.session_cache`);
    const leaderAddress = (await sql("SELECT host(inet_server_addr()) AS a", [], "postgres"))[0].a;
    expect(cfg.members.find((m) => m.name === entry.member)?.address).toBe(leaderAddress);
    expect(t("mood_log")).toMatchObject({ rows: 200, kind: "partitioned" });
    expect(t("mood_log_p0")).toMatchObject({ kind: "partition", partitionOf: `${S}.mood_log` });
    expect(t("readings")).toMatchObject({ rows: 2, kind: "table" }); // ONLY the parent
    expect(t("readings_2024")).toMatchObject({ rows: 40 });
    expect(t("mood_totals")).toMatchObject({ rows: 4, kind: "matview" });
    expect(t("no columns")).toMatchObject({ rows: 3 });
    expect(t("x")).toMatchObject({ rows: 2 });
    expect(entry.largeObjects.count).toBe(8);
    expect(entry.tables.every((x: any) => /^-?\d+$/.test(x.checksum))).toBe(true);
    expect(entry.properties.connLimit).toBe(42);
  }, 300_000);

  test("restore TO=<new name>: exact rows, large objects, function bodies, owner, ACL, settings, comment; isolation holds", async () => {
    const r = runScript("restore.ts", ["--db", DB, "--from", id, "--to", COPY, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(jsonOf(r.stdout).canConnect.sort()).toEqual(
      // the owner (the environment's own role) and the roles its ACL names
      [APP, "authenticator", sourceProps.owner, "supabase_auth_admin", "supabase_storage_admin"].sort(),
    );
    await expectSameAsSource(COPY);
  }, 180_000);

  test("partitions: every leaf holds exactly the rows the target's hash routes to it, and together the source's rows", async () => {
    for (const [leaf, rem] of [
      ["mood_log_p0", 0],
      ["mood_log_p1", 1],
    ] as const) {
      const [x] = await sql(
        `SELECT (SELECT coalesce(jsonb_agg(to_jsonb(l) ORDER BY l.id), '[]') FROM ONLY ${QS}.${leaf} l)::text AS got,
                (SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.id), '[]') FROM ${QS}.mood_log r WHERE satisfies_hash_partition(${quoteLiteral(`${QS}.mood_log`)}::regclass, 2, ${rem}, r.m))::text AS want`,
        [],
        COPY,
      );
      expect(x.got).toBe(x.want);
    }
    const all = JSON.parse(source["mood_log"]!).sort((a: any, b: any) => a.id - b.id);
    expect(all.length).toBe(200);
    const got = (await sql(`SELECT jsonb_agg(to_jsonb(r) ORDER BY r.id)::text AS j FROM ${QS}.mood_log r`, [], COPY))[0]
      .j;
    expect(JSON.parse(got)).toEqual(all);
  });

  test("restore in place: the same, and the replaced database is kept", async () => {
    const r = runScript("restore.ts", ["--db", DB, "--from", id, "--yes", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(jsonOf(r.stdout).previousKeptAs).toMatch(new RegExp(`^${DB}_pre_restore_`));
    await expectSameAsSource(DB);
  }, 180_000);

  test("restore-pitr: the recovered database has its owner, ACL, settings and comment; another app's role cannot connect", async () => {
    const at = (await sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS at"))[0]
      .at as string;
    await Bun.sleep(1100);
    const r = runScript("restore-pitr.ts", ["--at", at, "--keep", "--json"]);
    expect(r.stderr).not.toContain("error [");
    expect(r.code).toBe(0);
    const res = jsonOf(r.stdout);
    // A physical restore cannot carry unlogged rows: named, not silently empty.
    const kept = (
      await sql("SELECT datname FROM pg_database WHERE datname LIKE $1", [`${DB}\\_pre\\_restore\\_%`], "postgres")
    ).map((d) => `${d.datname}: not checked (the database refuses connections)`);
    expect(kept.length).toBe(1); // the database the in-place restore replaced: connections disabled
    expect(res.unloggedEmpty).toEqual([`${COPY}: ${S}.session_cache`, `${DB}: ${S}.session_cache`, ...kept]);
    const target = { host: res.scratch.address, port: res.scratch.port };
    try {
      const c = await connect(cfg, { target, database: "postgres" });
      try {
        const p = (
          await c.query(
            "SELECT (SELECT array_agg(a ORDER BY a) FROM unnest(datacl::text[]) a) AS acl, datconnlimit AS connlimit, shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1",
            [DB],
          )
        ).rows[0];
        expect(p).toEqual({ acl: sourceProps.acl, connlimit: 42, comment: sourceProps.comment });
      } finally {
        await c.end();
      }
      expect(await canConnect(DB, OTHER, OTHER_PW, target)).toContain(`permission denied for database "${DB}"`);
      expect(await canConnect(DB, APP, APP_PW, target)).toBe("connected");
    } finally {
      runScript("restore-pitr.ts", ["--remove"]);
    }
  }, 300_000);

  const manifestPath = () => join(cfg.backup.dir, id, "manifest.json");
  const withManifest = async (edit: (m: any) => void, body: () => Promise<void>) => {
    const original = readFileSync(manifestPath(), "utf8");
    const m = JSON.parse(original);
    edit(m);
    writeFileSync(manifestPath(), JSON.stringify(m, null, 2));
    try {
      await body();
    } finally {
      writeFileSync(manifestPath(), original);
    }
  };
  const articleEntry = (m: any) => m.databases[0].tables.find((x: any) => x.schema === S && x.table === "articles");

  test("a manifest with an edited row count fails verification (VERIFY_FAILED) and restore (RESTORE_MISMATCH), replacing nothing", async () => {
    const before = (await sql("SELECT oid FROM pg_database WHERE datname = $1", [DB], "postgres"))[0].oid;
    await withManifest(
      (m) => (articleEntry(m).rows = 16),
      async () => {
        const v = runScript("backup-verify.ts", [id, "--no-physical"]);
        expect(v.code).toBe(1);
        expect(v.stderr).toContain("VERIFY_FAILED");
        expect(v.stderr).toContain(`${DB}: table ${S}.articles has 15 rows after restore, manifest says 16`);
        const r = runScript("restore.ts", ["--db", DB, "--from", id, "--yes"]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("RESTORE_MISMATCH");
        expect(r.stderr).toContain(`table ${S}.articles has 15 rows after restore, manifest says 16`);
      },
    );
    expect((await sql("SELECT oid FROM pg_database WHERE datname = $1", [DB], "postgres"))[0].oid).toBe(before);
    expect(await sql("SELECT datname FROM pg_database WHERE datname LIKE '%restoring'", [], "postgres")).toEqual([]);
  }, 180_000);

  test("a manifest with an edited checksum (same count) fails verification and restore", async () => {
    await withManifest(
      (m) => (articleEntry(m).checksum = "12345"),
      async () => {
        const v = runScript("backup-verify.ts", [id, "--no-physical"]);
        expect(v.code).toBe(1);
        expect(v.stderr).toContain("VERIFY_FAILED");
        expect(v.stderr).toContain(`${DB}: table ${S}.articles: same row count (15) but the content differs`);
        const r = runScript("restore.ts", ["--db", DB, "--from", id, "--to", "it_adv_chk"]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("RESTORE_MISMATCH");
        expect(r.stderr).toContain(`table ${S}.articles: same row count (15) but the content differs`);
      },
    );
    expect(await sql("SELECT datname FROM pg_database WHERE datname LIKE 'it\\_adv\\_chk%'", [], "postgres")).toEqual(
      [],
    );
  }, 180_000);

  test("rows changed in content behind consistent sha256 sums (same count) fail verification and restore", async () => {
    const dir = join(cfg.backup.dir, id);
    const dbdir = join(dir, "db", DB);
    const file = readdirSync(dbdir).find(
      (f) =>
        f.endsWith(".dat.gz") &&
        gunzipSync(readFileSync(join(dbdir, f)))
          .toString()
          .includes('k17\t{"n": 17}'),
    )!;
    expect(file).toBeDefined();
    const path = join(dbdir, file);
    const original = readFileSync(path);
    const changed = gzipSync(Buffer.from(gunzipSync(original).toString().replace('k17\t{"n": 17}', 'k17\t{"n": 71}')));
    writeFileSync(path, changed);
    try {
      await withManifest(
        (m) => {
          const f = m.files.find((x: any) => x.path === `db/${DB}/${file}`);
          f.size = changed.length;
          f.sha256 = createHash("sha256").update(changed).digest("hex");
        },
        async () => {
          const v = runScript("backup-verify.ts", [id, "--no-physical"]);
          expect(v.code).toBe(1);
          expect(v.stderr).toContain(`${DB}: table ${S}.session_cache: same row count (30) but the content differs`);
          const r = runScript("restore.ts", ["--db", DB, "--from", id, "--to", "it_adv_chk"]);
          expect(r.code).toBe(1);
          expect(r.stderr).toContain("RESTORE_MISMATCH");
          expect(r.stderr).toContain(`table ${S}.session_cache: same row count (30) but the content differs`);
        },
      );
    } finally {
      writeFileSync(path, original);
    }
    const ok = runScript("backup-verify.ts", [id, "--no-physical", "--json"]);
    expect(ok.code).toBe(0);
  }, 240_000);

  test("a flipped byte in a dump file: restore refuses BEFORE touching the target", async () => {
    const dir = join(cfg.backup.dir, id);
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    const victim = m.files.find(
      (f: any) => f.path.startsWith(`db/${DB}/`) && f.path.endsWith(".dat.gz") && f.size > 100,
    ).path as string;
    const path = join(dir, victim);
    const original = readFileSync(path);
    const flipped = Buffer.from(original);
    flipped[flipped.length >> 1]! ^= 0x01;
    writeFileSync(path, flipped);
    const oidBefore = (await sql("SELECT oid FROM pg_database WHERE datname = $1", [DB], "postgres"))[0].oid;
    const databasesBefore = await sql("SELECT datname FROM pg_database ORDER BY 1", [], "postgres");
    try {
      const r = runScript("restore.ts", ["--db", DB, "--from", id, "--yes"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("BACKUP_CORRUPT");
      expect(r.stderr).toContain(`${victim}: sha256 mismatch`);
    } finally {
      writeFileSync(path, original);
    }
    expect((await sql("SELECT oid FROM pg_database WHERE datname = $1", [DB], "postgres"))[0].oid).toBe(oidBefore);
    expect(await sql("SELECT datname FROM pg_database ORDER BY 1", [], "postgres")).toEqual(databasesBefore);
    await expectSameAsSource(DB);
  }, 120_000);

  test("a failing restore step shows the server's error line and the object (generated column, unqualified inner call)", async () => {
    await sql(readFileSync(join(import.meta.dir, "../fixtures/backup-generated-search-path.sql"), "utf8"), [], FAILDB);
    const b = runScript("backup.ts", ["--db", FAILDB, "--logical-only"]);
    const bid = /backup (\d{8}T\d{6}Z(?:-\d+)?) failed verification/.exec(b.stderr)?.[1];
    if (bid) created.push(bid);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain("VERIFY_FAILED");
    expect(b.stderr).toContain("function squash_ws(text) does not exist");
    expect(b.stderr).toContain("Command was: CREATE TABLE public.articles");
    const r = runScript("restore.ts", ["--db", FAILDB, "--from", bid!, "--to", "it_adv_fail"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("RESTORE_FAILED");
    expect(r.stderr).toContain("function squash_ws(text) does not exist");
    expect(r.stderr).toContain("Command was: CREATE TABLE public.articles");
    expect(await sql("SELECT datname FROM pg_database WHERE datname LIKE 'it\\_adv\\_fail%'", [], "postgres")).toEqual(
      [],
    );
  }, 240_000);
});

describe("more hostile databases: what a replica cannot dump, a read-only archive", () => {
  const SEQDB = "orchestrator_ai_staging";
  const SEQCOPY = "it_adv_seq";
  const ROCOPY = "it_adv_readonly";
  afterAll(async () => {
    await sql(`ALTER DATABASE ${SEQDB} RESET default_transaction_read_only`, [], "postgres").catch(() => {});
    await sql(
      "DROP TABLE IF EXISTS it_adv_orders, it_adv_archive; DROP SEQUENCE IF EXISTS it_adv_order_ids",
      [],
      SEQDB,
    ).catch(() => {});
  });

  test("an UNLOGGED sequence (no unlogged table beside it) keeps its value through backup and restore", async () => {
    // On a replica an unlogged sequence reads as freshly created (1, not called): a replica's dump
    // restored it at 1, so the next insert collided with existing ids, while the backup said verified.
    await sql(
      `CREATE UNLOGGED SEQUENCE it_adv_order_ids;
       CREATE TABLE it_adv_orders (id bigint PRIMARY KEY DEFAULT nextval('it_adv_order_ids'), item text);
       INSERT INTO it_adv_orders (item) SELECT 'item ' || g FROM generate_series(1, 777) g;`,
      [],
      SEQDB,
    );
    const want = (await sql("SELECT last_value::text AS v, is_called FROM it_adv_order_ids", [], SEQDB))[0];
    expect(want).toEqual({ v: "777", is_called: true });
    const b = runScript("backup.ts", ["--db", SEQDB, "--logical-only", "--json"]);
    expect(b.code).toBe(0);
    const rep = jsonOf(b.stdout);
    created.push(rep.id);
    const r = runScript("restore.ts", ["--db", SEQDB, "--from", rep.id, "--to", SEQCOPY, "--json"]);
    expect(r.code).toBe(0);
    expect((await sql("SELECT last_value::text AS v, is_called FROM it_adv_order_ids", [], SEQCOPY))[0]).toEqual(want);
    // The app's next insert works in the restored database.
    expect(
      (await sql("INSERT INTO it_adv_orders (item) VALUES ('next') RETURNING id::text AS id", [], SEQCOPY))[0].id,
    ).toBe("778");
    // And the manifest says why this database came from the primary.
    expect(rep.manifest.databases[0].note).toContain("public.it_adv_order_ids");
  }, 300_000);

  test("a read-only database (ALTER DATABASE ... SET default_transaction_read_only = on) backs up verified and restores, still read-only", async () => {
    // An archive database set read-only: pg_restore loads under the database's settings, so every
    // backup of it failed verification ("cannot execute CREATE ... in a read-only transaction") and
    // no restore of it could ever succeed.
    await sql(
      "CREATE TABLE it_adv_archive (id int PRIMARY KEY, v text); INSERT INTO it_adv_archive SELECT g, 'v' || g FROM generate_series(1, 25) g",
      [],
      SEQDB,
    );
    await sql(`ALTER DATABASE ${SEQDB} SET default_transaction_read_only = on`, [], "postgres");
    try {
      const b = runScript("backup.ts", ["--db", SEQDB, "--logical-only", "--json"]);
      const bid = /"id": "([^"]+)"/.exec(b.stdout)?.[1] ?? /backup (\d{8}T\d{6}Z(?:-\d+)?)/.exec(b.stderr)?.[1];
      if (bid) created.push(bid);
      expect(b.stderr).not.toContain("read-only transaction");
      expect(b.code).toBe(0);
      const r = runScript("restore.ts", ["--db", SEQDB, "--from", bid!, "--to", ROCOPY, "--json"]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(
        (await sql("SELECT string_agg(id || ':' || v, ',' ORDER BY id) AS j FROM it_adv_archive", [], ROCOPY))[0].j,
      ).toBe(Array.from({ length: 25 }, (_, i) => `${i + 1}:v${i + 1}`).join(","));
      const want = (await props(SEQDB)).settings;
      expect(want).toContain("default_transaction_read_only=on");
      expect((await props(ROCOPY)).settings).toEqual(want);
      expect((await sql("SHOW default_transaction_read_only", [], ROCOPY))[0].default_transaction_read_only).toBe("on");
    } finally {
      await sql(`ALTER DATABASE ${SEQDB} RESET default_transaction_read_only`, [], "postgres");
    }
  }, 300_000);

  test("restore never drops a database it did not make: an existing <TO>_restoring is refused, named, and left intact", async () => {
    // restore builds <target>_restoring and, to clean up after an interrupted run, dropped any
    // database of that name WITH (FORCE), without asking: here a team's own "it_adv_victim_restoring".
    await sql("CREATE DATABASE it_adv_victim_restoring", [], "postgres");
    await sql("CREATE TABLE precious AS SELECT 42 AS answer", [], "it_adv_victim_restoring");
    const b = runScript("backup.ts", ["--db", SEQDB, "--logical-only", "--json"]);
    expect(b.code).toBe(0);
    const bid = jsonOf(b.stdout).id;
    created.push(bid);
    const r = runScript("restore.ts", ["--db", SEQDB, "--from", bid, "--to", "it_adv_victim"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "error [RESTORE_NAME_TAKEN]: database it_adv_victim_restoring exists and was not left by a restore",
    );
    expect((await sql("SELECT answer FROM precious", [], "it_adv_victim_restoring"))[0].answer).toBe(42);
    expect(await sql("SELECT datname FROM pg_database WHERE datname = 'it_adv_victim'", [], "postgres")).toEqual([]);
    // A restore that completes leaves no record of its temporary database behind.
    const again = runScript("restore.ts", ["--db", SEQDB, "--from", bid, "--to", "it_adv_other"]);
    expect(again.code).toBe(0);
    expect(existsSync(join(cfg.stateDir, "restoring"))).toBe(true);
    expect(readdirSync(join(cfg.stateDir, "restoring"))).toEqual([]);
  }, 300_000);

  test("restore refuses the cluster's own databases as a target: TO=template1 / TO=postgres change nothing", async () => {
    // TO=template1 YES=1 swapped an app's database in as template1 (every later CREATE DATABASE
    // copied the app's objects); TO=postgres failed mid-swap with an INTERNAL error and left a copy behind.
    const b = runScript("backup.ts", ["--db", SEQDB, "--logical-only", "--json"]);
    expect(b.code).toBe(0);
    const bid = jsonOf(b.stdout).id;
    created.push(bid);
    const before = await sql("SELECT datname, datallowconn, datistemplate FROM pg_database ORDER BY 1", [], "postgres");
    for (const to of ["template1", "postgres", "template0"]) {
      const r = runScript("restore.ts", ["--db", SEQDB, "--from", bid, "--to", to, "--yes"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `error [BAD_NAME]: TO="${to}" is one of the cluster's own databases (postgres, template0, template1): a restore never replaces it`,
      );
    }
    expect(
      await sql("SELECT datname, datallowconn, datistemplate FROM pg_database ORDER BY 1", [], "postgres"),
    ).toEqual(before);
  }, 300_000);
});
