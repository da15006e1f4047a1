import { describe, expect, test } from "bun:test";
import { checksumSql } from "../../scripts/lib/migrate/fingerprint";
import { treeCalls } from "../../scripts/lib/migrate/source-code";
import { copyStatements } from "../../scripts/lib/migrate/steps";
import {
  createRoleSql,
  customRoles,
  extensionSql,
  membershipSql,
  placeholderSql,
  planExtensions,
  planRoles,
  privilegedGrants,
  publicationSql,
  selectSchemas,
  type RoleRow,
} from "../../scripts/lib/migrate/select";
import {
  parseSourceUrl,
  protectSource,
  sourceEnv,
  sourceError,
  sslOption,
  SYSTEM_CA_BUNDLE,
} from "../../scripts/lib/migrate/source";
import { parseToc, selectToc, tocListFile } from "../../scripts/lib/migrate/toc";
import { compareMigration } from "../../scripts/lib/migrate/verify";
import { ToolkitError } from "../../scripts/lib/errors";
import { redact } from "../../scripts/lib/redact";
import { isSupabaseReservedRole } from "../../scripts/lib/supabase-db";
import { scramMatches } from "../../scripts/lib/scram";

const role = (name: string, extra: Partial<RoleRow> = {}): RoleRow => ({
  name,
  login: false,
  inherit: true,
  createdb: false,
  createrole: false,
  bypassrls: false,
  superuser: false,
  replication: false,
  connlimit: -1,
  validUntil: null,
  ...extra,
});

describe("source URL", () => {
  test("parses a Supabase pooler URL", () => {
    const s = parseSourceUrl(
      "postgresql://postgres.abcdefgh:s3cr%40t%2Fpw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres",
    );
    expect(s).toMatchObject({
      host: "aws-0-eu-central-1.pooler.supabase.com",
      port: 5432,
      user: "postgres.abcdefgh",
      password: "s3cr@t/pw",
      database: "postgres",
      sslmode: "verify-full",
    });
    expect(s.display).toBe("postgresql://postgres.abcdefgh@aws-0-eu-central-1.pooler.supabase.com:5432/postgres");
    expect(s.display).not.toContain("s3cr");
  });

  test("the transaction pooler (6543) is refused: a dump needs one session", () => {
    expect(() =>
      parseSourceUrl("postgresql://postgres.ref:longpassword@aws-0-eu.pooler.supabase.com:6543/postgres"),
    ).toThrow(/transaction pooler/);
  });

  test("defaults: port 5432, database postgres", () => {
    expect(parseSourceUrl("postgres://u:longpassword@db.example.com")).toMatchObject({
      port: 5432,
      database: "postgres",
    });
  });

  test("errors never repeat the URL", () => {
    for (const bad of [
      "http://u:topsecretpw@h/db",
      "postgresql://u@h/db",
      "not a url topsecretpw",
      "postgresql://:topsecretpw@h/db",
    ]) {
      let err: unknown;
      try {
        parseSourceUrl(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ToolkitError);
      expect((err as ToolkitError).code).toBe("BAD_SOURCE_URL");
      expect((err as ToolkitError).format()).not.toContain("topsecretpw");
    }
  });

  test("the password is redacted everywhere once registered, also URL-encoded and in pg's messages", () => {
    const url = "postgresql://postgres.ref:Pa55%2Bword-unit-test@h.example.com:5432/postgres";
    const s = parseSourceUrl(url);
    protectSource(s, url);
    expect(redact(`connecting with ${s.password}`)).toBe("connecting with ***");
    expect(redact(`url ${url}`)).not.toContain("Pa55");
    const e = sourceError(
      s,
      Object.assign(new Error(`password authentication failed for user "x" (${s.password})`), { code: "28P01" }),
    );
    expect(e.code).toBe("SOURCE_AUTH_FAILED");
    expect(e.format()).not.toContain("Pa55");
    expect(e.message).toContain("h.example.com:5432");
  });

  test("TLS: verified by default (libpq verify-full with the system CAs, Node rejects unverified certificates and checks the host)", () => {
    const s = parseSourceUrl("postgresql://u:longpassword@db.abcdefgh.supabase.co:5432/postgres");
    expect(s.sslmode).toBe("verify-full");
    expect(s.insecureTls).toBe(false);
    expect(sourceEnv(s)).toMatchObject({ PGSSLMODE: "verify-full", PGSSLROOTCERT: SYSTEM_CA_BUNDLE });
    expect(sslOption(s)).toMatchObject({ rejectUnauthorized: true, servername: "db.abcdefgh.supabase.co" });
    const withCa = parseSourceUrl("postgresql://u:longpassword@db.example.com/postgres", { caFile: SYSTEM_CA_BUNDLE });
    expect(withCa.sslrootcert).toBe(SYSTEM_CA_BUNDLE);
  });

  test("TLS: a weaker sslmode in the URL is refused unless the run opts out, loudly", () => {
    for (const mode of ["disable", "prefer", "require", "verify-ca"]) {
      let err: unknown;
      try {
        parseSourceUrl(`postgresql://u:longpassword@db.example.com/postgres?sslmode=${mode}`);
      } catch (e) {
        err = e;
      }
      expect((err as ToolkitError).code).toBe("SOURCE_TLS_UNVERIFIED");
      expect((err as ToolkitError).fix).toContain("--insecure-source-tls");
    }
    const local = parseSourceUrl("postgresql://u:longpassword@127.0.0.1/postgres", { insecureTls: true });
    expect(local).toMatchObject({ sslmode: "prefer", insecureTls: true });
    expect(sslOption(local)).toBe(false);
    expect(sourceEnv(local).PGSSLROOTCERT).toBeUndefined();
    expect(() =>
      parseSourceUrl("postgresql://u:longpassword@db.example.com/postgres", { caFile: "/nonexistent/ca.pem" }),
    ).toThrow(/does not exist/);
  });

  test("connection failures are classified", () => {
    const s = parseSourceUrl("postgresql://u:longpassword@10.9.9.9:6544/postgres");
    expect(sourceError(s, new Error("self-signed certificate in certificate chain")).code).toBe("SOURCE_TLS_FAILED");
    expect(
      sourceError(s, Object.assign(new Error("connect ECONNREFUSED 10.9.9.9:6544"), { code: "ECONNREFUSED" })).code,
    ).toBe("SOURCE_UNREACHABLE");
    expect(sourceError(s, new Error("Connection terminated due to connection timeout")).code).toBe(
      "SOURCE_UNREACHABLE",
    );
    expect(sourceError(s, Object.assign(new Error('database "x" does not exist'), { code: "3D000" })).code).toBe(
      "SOURCE_NO_DATABASE",
    );
  });
});

describe("schema selection", () => {
  test("user schemas plus auth and storage; Supabase's own schemas and system schemas stay behind", () => {
    const sel = selectSchemas(
      [
        "public",
        "auth",
        "storage",
        "extensions",
        "graphql",
        "graphql_public",
        "realtime",
        "vault",
        "pgsodium",
        "supabase_migrations",
        "billing",
        "pg_catalog",
        "information_schema",
        "pg_toast",
        "my_ext_schema",
      ].map((name) => ({ name, extensionOwned: name === "my_ext_schema" })),
    );
    expect(sel.migrated).toEqual(["auth", "billing", "public", "storage"]);
    expect(sel.excluded).toEqual([
      "extensions",
      "graphql",
      "graphql_public",
      "my_ext_schema",
      "pgsodium",
      "realtime",
      "supabase_migrations",
      "vault",
    ]);
  });
});

describe("roles", () => {
  test("reserved roles are recognised by name and prefix", () => {
    for (const r of [
      "anon",
      "authenticated",
      "service_role",
      "authenticator",
      "dashboard_user",
      "pgbouncer",
      "supabase_admin",
      "supabase_new_thing",
      "pgsodium_keymaker",
      "pg_read_all_data",
      "cli_login_postgres",
    ]) {
      expect(isSupabaseReservedRole(r)).toBe(true);
    }
    for (const r of ["app_readonly", "reporting", "supabase"]) expect(isSupabaseReservedRole(r)).toBe(false);
  });

  test("only custom roles move; those already on the target are kept", () => {
    const src = [
      role("anon"),
      role("postgres"),
      role("supabase_admin", { superuser: true }),
      role("app_readonly"),
      role("Report Bot", { login: true }),
      role("shared"),
    ];
    expect(customRoles(src).map((r) => r.name)).toEqual(["app_readonly", "Report Bot", "shared"]);
    const plan = planRoles(src, new Set(["postgres", "anon", "shared"]));
    expect(plan.create.map((r) => r.name)).toEqual(["app_readonly", "Report Bot"]);
    expect(plan.existing).toEqual(["shared"]);
    expect(plan.reservedSkipped).toEqual(["anon", "supabase_admin"]);
  });

  test("CREATE ROLE quotes names and passwords; NOLOGIN roles get no password", () => {
    const sql = createRoleSql(role("Report Bot", { login: true, connlimit: 5 }), "p'w");
    // The server gets a SCRAM verifier of the password, never the password itself.
    const m =
      /^CREATE ROLE "Report Bot" LOGIN INHERIT CONNECTION LIMIT 5 PASSWORD '(SCRAM-SHA-256\$4096:[^']+)';$/.exec(sql);
    expect(m && scramMatches("p'w", m[1]!)).toBe(true);
    expect(sql).not.toContain("p''w");
    expect(createRoleSql(role("reader", { inherit: false, bypassrls: true }), "ignored")).toBe(
      `CREATE ROLE "reader" NOLOGIN NOINHERIT BYPASSRLS;`,
    );
  });

  test("memberships are kept only when both ends exist on the target", () => {
    const sql = membershipSql(
      [
        { role: "app_readonly", member: "Report Bot", admin: false },
        { role: "anon", member: "authenticator", admin: false },
        { role: "app_readonly", member: "dashboard_user", admin: true },
      ],
      new Set(["app_readonly", "Report Bot"]),
      new Set(["app_readonly", "Report Bot", "anon", "authenticator"]),
    );
    expect(sql).toEqual([`GRANT "app_readonly" TO "Report Bot";`]);
  });
});

describe("extensions", () => {
  test("available ones are created in their schema; platform ones are skipped; others block", () => {
    const plan = planExtensions(
      [
        { name: "plpgsql", schema: "pg_catalog" },
        { name: "pgcrypto", schema: "extensions" },
        { name: "pg_graphql", schema: "graphql" },
        { name: "postgis", schema: "public" },
      ],
      new Set(["pgcrypto", "plpgsql", "citext"]),
    );
    expect(plan.create).toEqual([{ name: "pgcrypto", schema: "extensions" }]);
    expect(plan.skipped).toEqual(["pg_graphql"]);
    expect(plan.blocked).toEqual(["postgis"]);
    expect(extensionSql(plan)).toEqual([
      `CREATE SCHEMA IF NOT EXISTS "extensions";`,
      `CREATE EXTENSION IF NOT EXISTS "pgcrypto" WITH SCHEMA "extensions";`,
    ]);
  });
});

describe("schema archive: selected through its table of contents", () => {
  // A real `pg_restore -l -v` excerpt, plus a table whose quoted name spans lines (pg_restore prints the newline as a space).
  const list = [
    ";",
    "; Archive created at 2026-11-30 16:39:31 UTC",
    ";",
    "; Selected TOC Entries:",
    ";",
    "3578; 0 0 ENCODING - ENCODING ",
    "8; 2615 16432 SCHEMA - auth supabase_auth_admin",
    "3582; 0 0 ACL - SCHEMA auth supabase_auth_admin",
    ";\tdepends on: 8",
    "5; 2615 2200 SCHEMA - public pg_database_owner",
    "3583; 0 0 COMMENT - SCHEMA public pg_database_owner",
    ";\tdepends on: 5",
    "225; 1259 16476 TABLE public orders postgres",
    ";\tdepends on: 5",
    "226; 1259 16477 TABLE public x GRANT ALL ON TABLE y TO supabase_admin; postgres",
    ";\tdepends on: 5",
    "3546; 0 16476 TABLE DATA public orders postgres",
    ";\tdepends on: 225",
    "3567; 2613 16545 BLOB - 16545 postgres",
    "3575; 0 0 BLOBS - BLOBS ",
    "3395; 2620 16486 TRIGGER public orders notify-fulfilment postgres",
    ";\tdepends on: 225",
    "3600; 0 0 COMMENT public TRIGGER notify-fulfilment ON orders postgres",
    ";\tdepends on: 3395",
    "3392; 2606 16481 FK CONSTRAINT public orders orders_customer_fkey postgres",
    ";\tdepends on: 225 3354",
    "3566; 0 16646 MATERIALIZED VIEW DATA public sales_by_region postgres",
    ";\tdepends on: 247 3577",
  ].join("\n");

  test("entries are read by id, catalog oids, type and dependencies; names are never parsed", () => {
    const toc = parseToc(list);
    expect(toc.map((e) => [e.id, e.classid, e.objid, e.desc])).toEqual([
      [3578, 0, 0, "ENCODING"],
      [8, 2615, 16432, "SCHEMA"],
      [3582, 0, 0, "ACL"],
      [5, 2615, 2200, "SCHEMA"],
      [3583, 0, 0, "COMMENT"],
      [225, 1259, 16476, "TABLE"],
      [226, 1259, 16477, "TABLE"],
      [3546, 0, 16476, "TABLE DATA"],
      [3567, 2613, 16545, "BLOB"],
      [3575, 0, 0, "BLOBS"],
      [3395, 2620, 16486, "TRIGGER"],
      [3600, 0, 0, "COMMENT"],
      [3392, 2606, 16481, "FK CONSTRAINT"],
      [3566, 0, 16646, "MATERIALIZED VIEW DATA"],
    ]);
    expect(toc.find((e) => e.id === 3392)!.deps).toEqual([225, 3354]);
  });

  test("a left-out object takes its dependants along; skipped kinds and replaced schemas go, their dependants stay", () => {
    const sel = selectToc(parseToc(list), {
      skipDescs: new Set(["TABLE DATA", "BLOBS", "MATERIALIZED VIEW DATA"]),
      leaveOut: (classid, objid) => classid === 2620 && objid === 16486,
      replaced: (classid, objid) => classid === 2615 && objid === 2200,
    });
    expect(sel.keep.map((e) => e.id)).toEqual([3578, 8, 3582, 3583, 225, 226, 3567, 3392]);
    expect(sel.cascaded.map((c) => [c.entry.id, c.because])).toEqual([
      [3395, 3395],
      [3600, 3395],
    ]);
    expect(sel.skipped.map((e) => e.id)).toEqual([5, 3546, 3575, 3566]);
    // The list handed to pg_restore -L is the kept lines, unchanged (the odd name included, as a name).
    expect(tocListFile(sel.keep)).toContain(
      "226; 1259 16477 TABLE public x GRANT ALL ON TABLE y TO supabase_admin; postgres\n",
    );
    expect(tocListFile(sel.keep).split("\n").filter(Boolean)).toHaveLength(8);
  });

  test("an entry of an unknown kind is marked, not guessed", () => {
    expect(parseToc("77; 1234 5678 SOMETHING NEW public x postgres")[0]!.desc).toBe("?");
  });
});

describe("roles the target lacks, publications", () => {
  test("placeholders live only inside the restore transaction: created first, their objects reassigned and the role dropped before COMMIT", () => {
    expect(placeholderSql(["supabase_admin", 'we"ird'])).toEqual({
      create: [`CREATE ROLE "supabase_admin" NOLOGIN;`, `CREATE ROLE "we""ird" NOLOGIN;`],
      release: [
        `REASSIGN OWNED BY "supabase_admin" TO CURRENT_USER;`,
        `DROP OWNED BY "supabase_admin";`,
        `DROP ROLE "supabase_admin";`,
        `REASSIGN OWNED BY "we""ird" TO CURRENT_USER;`,
        `DROP OWNED BY "we""ird";`,
        `DROP ROLE "we""ird";`,
      ],
    });
  });

  test("publication membership is rebuilt; an existing publication only gains the tables", () => {
    const pub = {
      name: "supabase_realtime",
      owner: "supabase_admin",
      allTables: false,
      insert: true,
      update: true,
      delete: true,
      truncate: false,
      viaRoot: false,
      tables: [`ONLY public.chat_messages`, `ONLY public."Odd ""name"" (id) WHERE ((id > 0))`],
      schemas: [],
    };
    expect(publicationSql([pub], new Set(), () => false)).toEqual([
      `CREATE PUBLICATION "supabase_realtime" WITH (publish = 'insert, update, delete', publish_via_partition_root = false);`,
      `ALTER PUBLICATION "supabase_realtime" ADD TABLE ONLY public.chat_messages;`,
      `ALTER PUBLICATION "supabase_realtime" ADD TABLE ONLY public."Odd ""name"" (id) WHERE ((id > 0));`,
    ]);
    expect(publicationSql([{ ...pub, owner: "postgres" }], new Set(["supabase_realtime"]), () => true)).toEqual([
      `ALTER PUBLICATION "supabase_realtime" ADD TABLE ONLY public.chat_messages;`,
      `ALTER PUBLICATION "supabase_realtime" ADD TABLE ONLY public."Odd ""name"" (id) WHERE ((id > 0));`,
    ]);
  });
});

describe("data: our own COPY per table", () => {
  test("plain tables load WITH (FREEZE) from ONLY themselves; partition roots load as a whole, without FREEZE; names are quoted", () => {
    expect(copyStatements({ schema: "public", name: "todos", kind: "table" }, ["id", "task"])).toEqual({
      out: `COPY (SELECT "id", "task" FROM ONLY "public"."todos") TO STDOUT`,
      into: `COPY "public"."todos" ("id", "task") FROM stdin WITH (FREEZE);`,
    });
    expect(copyStatements({ schema: "public", name: "usage_events", kind: "partitioned" }, ["tier", "id"])).toEqual({
      out: `COPY (SELECT "tier", "id" FROM "public"."usage_events") TO STDOUT`,
      into: `COPY "public"."usage_events" ("tier", "id") FROM stdin;`,
    });
    expect(copyStatements({ schema: "public", name: "empty", kind: "table" }, []).into).toBe(
      `COPY "public"."empty" FROM stdin WITH (FREEZE);`,
    );
    expect(copyStatements({ schema: "public", name: 'x\nCOPY y FROM stdin;\n"', kind: "table" }, ["a\nb"]).into).toBe(
      `COPY "public"."x\nCOPY y FROM stdin;\n""" ("a\nb") FROM stdin WITH (FREEZE);`,
    );
  });
});

describe("checksum query", () => {
  test("hashes stored values, or the row text for tables whose types have no hash function; quotes names", () => {
    expect(checksumSql({ schema: "public", name: "todos" })).toBe(
      `SELECT count(*)::bigint AS n, coalesce(sum(hash_record_extended(x, 0)), 0)::text AS h FROM ONLY "public"."todos" AS x`,
    );
    expect(checksumSql({ schema: "my schema", name: 'we"ird' }, "text")).toBe(
      `SELECT count(*)::bigint AS n, coalesce(sum(hashtextextended(x::text, 0)), 0)::text AS h FROM ONLY "my schema"."we""ird" AS x`,
    );
  });

  test("enum and reg* columns hash by their text (labels and names, not OIDs); columns by name; a partition root as a whole", () => {
    const t = {
      schema: "public",
      name: "usage_events",
      kind: "partitioned" as const,
      columns: [
        { name: "id", byText: false },
        { name: "tier", byText: true },
      ],
    };
    expect(checksumSql(t)).toBe(
      `SELECT count(*)::bigint AS n, coalesce(sum(hash_record_extended(ROW(x."id", x."tier"::text), 0)), 0)::text AS h FROM "public"."usage_events" AS x`,
    );
    expect(checksumSql({ ...t, kind: "table" }, "text")).toBe(
      `SELECT count(*)::bigint AS n, coalesce(sum(hashtextextended(ROW(x."id", x."tier"::text)::text, 0)), 0)::text AS h FROM ONLY "public"."usage_events" AS x`,
    );
  });
});

describe("verification verdict", () => {
  const counts = {
    tables: 2,
    views: 1,
    sequences: 1,
    functions: 3,
    triggers: 1,
    policies: 2,
    foreignKeys: 1,
    indexes: 3,
  };
  const src = {
    tables: { "public.a": { rows: 10, checksum: "123" }, "auth.users": { rows: 2, checksum: "-5" } },
    sequences: { "public.a_id_seq": { lastValue: "10", isCalled: true } },
    counts,
  };

  test("identical fingerprints: ok", () => {
    const v = compareMigration(src, structuredClone(src));
    expect(v.ok).toBe(true);
    expect(v.mismatches).toEqual([]);
    expect(v.tables.map((t) => t.table)).toEqual(["auth.users", "public.a"]);
  });

  test("definitions, publication membership and large objects compare one by one; left-out objects are expected to be missing", () => {
    const defs = {
      "function public.banner()": "prosrc md5 aa",
      "trigger t on table public.orders": "CREATE TRIGGER t",
    };
    const v = compareMigration(
      {
        ...src,
        definitions: defs,
        publications: { "publication p: table public.a": "where -" },
        largeObjects: { "large object 1": "md5 x" },
      },
      {
        ...structuredClone(src),
        counts: { ...counts, triggers: 0 },
        definitions: { "function public.banner()": "prosrc md5 bb" },
        publications: {},
        largeObjects: { "large object 1": "md5 x" },
      },
      { leftOut: new Set(["trigger t on table public.orders"]), leftOutCounts: { triggers: 1 } },
    );
    expect(v.mismatches).toEqual([
      "function public.banner(): differs (source prosrc md5 aa; target prosrc md5 bb)",
      "publication p: table public.a: missing on the target",
    ]);
    expect(v.definitions.map((d) => [d.object, d.ok])).toEqual([
      ["function public.banner()", false],
      ["publication p: table public.a", false],
      ["large object 1", true],
    ]);
  });

  test("a lost row, a changed row, a missing table, a sequence behind and a missing policy are all reported", () => {
    const v = compareMigration(src, {
      tables: { "public.a": { rows: 9, checksum: "100" }, "auth.users": undefined },
      sequences: { "public.a_id_seq": { lastValue: "1", isCalled: false } },
      counts: { ...counts, policies: 1 },
    });
    expect(v.ok).toBe(false);
    expect(v.mismatches).toEqual([
      "table auth.users: missing on the target",
      "table public.a: 10 rows on the source, 9 on the target",
      "sequence public.a_id_seq: 10 on the source, 1 (not called) on the target",
      "policies: 2 on the source, 1 on the target",
    ]);
    const changed = compareMigration(src, {
      ...structuredClone(src),
      tables: { ...src.tables, "public.a": { rows: 10, checksum: "124" } },
    });
    expect(changed.mismatches).toEqual(["table public.a: same row count (10) but the rows differ (checksum)"]);
  });
});

describe("--storage", () => {
  test("is refused before anything runs, with the way forward", () => {
    const r = Bun.spawnSync([process.execPath, `${import.meta.dir}/../../scripts/migrate-saas.ts`, "--storage"], {
      env: { ...process.env, SOURCE_DB_URL: "" },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toContain("error [STORAGE_COPY_UNSUPPORTED]");
    expect(r.stderr.toString()).toContain("fix: run without --storage");
  });
});

describe("privileged grants", () => {
  test("membership in a cluster superuser, a CREATEROLE role or a server-access role, and CREATEROLE itself, are named; the rest is not", () => {
    const custom = [role("app"), role("boss", { createrole: true }), role("helper")];
    const target = [
      role("postgres", { superuser: true }),
      role("supabase_auth_admin", { createrole: true }),
      role("authenticated"),
    ];
    const edges = [
      { role: "postgres", member: "app", admin: false },
      { role: "pg_execute_server_program", member: "helper", admin: false },
      { role: "supabase_auth_admin", member: "helper", admin: false },
      { role: "authenticated", member: "app", admin: false },
      { role: "helper", member: "app", admin: false },
      { role: "app", member: "postgres", admin: false },
    ];
    expect(privilegedGrants(edges, custom, target)).toEqual([
      {
        role: "boss",
        reason:
          "role boss has CREATEROLE on the source: on the cluster it could grant itself pg_execute_server_program (a shell as postgres)",
      },
      {
        grant: edges[0],
        reason: "role app is a member of postgres on the source, and postgres is a superuser on the cluster",
      },
      {
        grant: edges[1],
        reason:
          "role helper is a member of pg_execute_server_program on the source, and pg_execute_server_program runs programs or reads and writes files on the server",
      },
      {
        grant: edges[2],
        reason:
          "role helper is a member of supabase_auth_admin on the source, and supabase_auth_admin has CREATEROLE on the cluster",
      },
    ]);
    // Left out, they are not granted; the others are.
    expect(
      membershipSql(
        edges,
        new Set(["app", "boss", "helper"]),
        new Set([
          "postgres",
          "pg_execute_server_program",
          "supabase_auth_admin",
          "authenticated",
          "app",
          "boss",
          "helper",
        ]),
        [edges[0]!, edges[1]!, edges[2]!],
      ),
    ).toEqual([`GRANT "authenticated" TO "app";`, `GRANT "helper" TO "app";`, `GRANT "app" TO "postgres";`]);
  });
});

describe("code in stored expressions", () => {
  test("function calls, operators (row comparisons too), aggregates and sort operators are read from a pg_node_tree; unset opfuncid is skipped", () => {
    const tree =
      "({FUNCEXPR :funcid 16390 :funcresulttype 25 :args ({OPEXPR :opno 98 :opfuncid 0 :opresulttype 16}) :location 5} {ROWCOMPARE :rctype 1 :opnos (o 664 666) :opfamilies (o 1994 1994)} {AGGREF :aggfnoid 2108 :aggtype 20} {SORTGROUPCLAUSE :tleSortGroupRef 1 :eqop 96 :sortop 97 :nulls_first false})";
    expect(treeCalls(tree)).toEqual([
      { cat: "pg_proc", oid: 16390 },
      { cat: "pg_operator", oid: 98 },
      { cat: "pg_proc", oid: 2108 },
      { cat: "pg_operator", oid: 96 },
      { cat: "pg_operator", oid: 97 },
      { cat: "pg_operator", oid: 664 },
      { cat: "pg_operator", oid: 666 },
    ]);
  });
});
