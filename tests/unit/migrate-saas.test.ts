import { describe, expect, test } from "bun:test";
import { checksumSql } from "../../scripts/lib/migrate/catalog";
import { CopyFreezer } from "../../scripts/lib/migrate/copy-freeze";
import {
  createRoleSql, customRoles, extensionSql, filterSchemaSql, membershipSql, planExtensions, planRoles, rolesInStatement, selectSchemas,
  type RoleRow,
} from "../../scripts/lib/migrate/select";
import { parseSourceUrl, protectSource, sourceError } from "../../scripts/lib/migrate/source";
import { compareMigration } from "../../scripts/lib/migrate/verify";
import { ToolkitError } from "../../scripts/lib/errors";
import { redact } from "../../scripts/lib/redact";
import { isSupabaseReservedRole } from "../../scripts/lib/supabase-db";
import { scramMatches } from "../../scripts/lib/onboard/scram";

const role = (name: string, extra: Partial<RoleRow> = {}): RoleRow => ({
  name, login: false, inherit: true, createdb: false, createrole: false, bypassrls: false, superuser: false, replication: false, connlimit: -1, validUntil: null, ...extra,
});

describe("source URL", () => {
  test("parses a Supabase pooler URL", () => {
    const s = parseSourceUrl("postgresql://postgres.abcdefgh:s3cr%40t%2Fpw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres?sslmode=require");
    expect(s).toMatchObject({ host: "aws-0-eu-central-1.pooler.supabase.com", port: 5432, user: "postgres.abcdefgh", password: "s3cr@t/pw", database: "postgres", sslmode: "require" });
    expect(s.display).toBe("postgresql://postgres.abcdefgh@aws-0-eu-central-1.pooler.supabase.com:5432/postgres");
    expect(s.display).not.toContain("s3cr");
  });

  test("the transaction pooler (6543) is refused: a dump needs one session", () => {
    expect(() => parseSourceUrl("postgresql://postgres.ref:longpassword@aws-0-eu.pooler.supabase.com:6543/postgres")).toThrow(/transaction pooler/);
  });

  test("defaults: port 5432, database postgres", () => {
    expect(parseSourceUrl("postgres://u:longpassword@db.example.com")).toMatchObject({ port: 5432, database: "postgres" });
  });

  test("errors never repeat the URL", () => {
    for (const bad of ["http://u:topsecretpw@h/db", "postgresql://u@h/db", "not a url topsecretpw", "postgresql://:topsecretpw@h/db"]) {
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
    const e = sourceError(s, Object.assign(new Error(`password authentication failed for user "x" (${s.password})`), { code: "28P01" }));
    expect(e.code).toBe("SOURCE_AUTH_FAILED");
    expect(e.format()).not.toContain("Pa55");
    expect(e.message).toContain("h.example.com:5432");
  });

  test("connection failures are classified", () => {
    const s = parseSourceUrl("postgresql://u:longpassword@10.9.9.9:6544/postgres");
    expect(sourceError(s, Object.assign(new Error("connect ECONNREFUSED 10.9.9.9:6544"), { code: "ECONNREFUSED" })).code).toBe("SOURCE_UNREACHABLE");
    expect(sourceError(s, new Error("Connection terminated due to connection timeout")).code).toBe("SOURCE_UNREACHABLE");
    expect(sourceError(s, Object.assign(new Error("database \"x\" does not exist"), { code: "3D000" })).code).toBe("SOURCE_NO_DATABASE");
  });
});

describe("schema selection", () => {
  test("user schemas plus auth and storage; Supabase's own schemas and system schemas stay behind", () => {
    const sel = selectSchemas(
      ["public", "auth", "storage", "extensions", "graphql", "graphql_public", "realtime", "vault", "pgsodium", "supabase_migrations", "billing", "pg_catalog", "information_schema", "pg_toast", "my_ext_schema"]
        .map((name) => ({ name, extensionOwned: name === "my_ext_schema" })),
    );
    expect(sel.migrated).toEqual(["auth", "billing", "public", "storage"]);
    expect(sel.excluded).toEqual(["extensions", "graphql", "graphql_public", "my_ext_schema", "pgsodium", "realtime", "supabase_migrations", "vault"]);
  });
});

describe("roles", () => {
  test("reserved roles are recognised by name and prefix", () => {
    for (const r of ["anon", "authenticated", "service_role", "authenticator", "dashboard_user", "pgbouncer", "supabase_admin", "supabase_new_thing", "pgsodium_keymaker", "pg_read_all_data", "cli_login_postgres"]) {
      expect(isSupabaseReservedRole(r)).toBe(true);
    }
    for (const r of ["app_readonly", "reporting", "supabase"]) expect(isSupabaseReservedRole(r)).toBe(false);
  });

  test("only custom roles move; those already on the target are kept", () => {
    const src = [role("anon"), role("postgres"), role("supabase_admin", { superuser: true }), role("app_readonly"), role("Report Bot", { login: true }), role("shared")];
    expect(customRoles(src).map((r) => r.name)).toEqual(["app_readonly", "Report Bot", "shared"]);
    const plan = planRoles(src, new Set(["postgres", "anon", "shared"]));
    expect(plan.create.map((r) => r.name)).toEqual(["app_readonly", "Report Bot"]);
    expect(plan.existing).toEqual(["shared"]);
    expect(plan.reservedSkipped).toEqual(["anon", "supabase_admin"]);
  });

  test("CREATE ROLE quotes names and passwords; NOLOGIN roles get no password", () => {
    const sql = createRoleSql(role("Report Bot", { login: true, connlimit: 5 }), "p'w");
    // The server gets a SCRAM verifier of the password, never the password itself.
    const m = /^CREATE ROLE "Report Bot" LOGIN INHERIT CONNECTION LIMIT 5 PASSWORD '(SCRAM-SHA-256\$4096:[^']+)';$/.exec(sql);
    expect(m && scramMatches("p'w", m[1]!)).toBe(true);
    expect(sql).not.toContain("p''w");
    expect(createRoleSql(role("reader", { inherit: false, bypassrls: true }), "ignored")).toBe(`CREATE ROLE "reader" NOLOGIN NOINHERIT BYPASSRLS;`);
  });

  test("memberships are kept only when both ends exist on the target", () => {
    const sql = membershipSql(
      [{ role: "app_readonly", member: "Report Bot", admin: false }, { role: "anon", member: "authenticator", admin: false }, { role: "app_readonly", member: "dashboard_user", admin: true }],
      new Set(["app_readonly", "Report Bot"]),
      new Set(["app_readonly", "Report Bot", "anon", "authenticator"]),
    );
    expect(sql).toEqual([`GRANT "app_readonly" TO "Report Bot";`]);
  });
});

describe("extensions", () => {
  test("available ones are created in their schema; platform ones are skipped; others block", () => {
    const plan = planExtensions(
      [{ name: "plpgsql", schema: "pg_catalog" }, { name: "pgcrypto", schema: "extensions" }, { name: "pg_graphql", schema: "graphql" }, { name: "postgis", schema: "public" }],
      new Set(["pgcrypto", "plpgsql", "citext"]),
    );
    expect(plan.create).toEqual([{ name: "pgcrypto", schema: "extensions" }]);
    expect(plan.skipped).toEqual(["pg_graphql"]);
    expect(plan.blocked).toEqual(["postgis"]);
    expect(extensionSql(plan)).toEqual([`CREATE SCHEMA IF NOT EXISTS "extensions";`, `CREATE EXTENSION IF NOT EXISTS "pgcrypto" WITH SCHEMA "extensions";`]);
  });
});

describe("pg_dump output adapted to the target", () => {
  test("roles named by a statement", () => {
    expect(rolesInStatement("ALTER TABLE public.todos OWNER TO supabase_admin;")).toEqual(["supabase_admin"]);
    expect(rolesInStatement(`ALTER SCHEMA billing OWNER TO "Billing Owner";`)).toEqual(["Billing Owner"]);
    expect(rolesInStatement("GRANT ALL ON TABLE auth.users TO dashboard_user;")).toEqual(["dashboard_user"]);
    expect(rolesInStatement("GRANT SELECT ON TABLE public.x TO anon WITH GRANT OPTION;")).toEqual(["anon"]);
    expect(rolesInStatement("REVOKE ALL ON FUNCTION f() FROM PUBLIC;")).toEqual(["public"]);
    expect(rolesInStatement("ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON TABLES  TO service_role;")).toEqual(["supabase_admin", "service_role"]);
    expect(rolesInStatement("SET SESSION AUTHORIZATION supabase_admin;")).toEqual(["supabase_admin"]);
    expect(rolesInStatement("CREATE TABLE public.grants (id int);")).toBeUndefined();
  });

  test("statements for roles the target lacks are dropped; the rest is kept", () => {
    const sql = [
      "SET transaction_timeout = 0;",
      "CREATE SCHEMA auth;",
      "ALTER SCHEMA auth OWNER TO supabase_admin;",
      "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;",
      "COMMENT ON EXTENSION pgcrypto IS 'cryptographic functions';",
      "CREATE TABLE public.todos (",
      "    id bigint NOT NULL",
      ");",
      "ALTER TABLE public.todos OWNER TO postgres;",
      "GRANT ALL ON TABLE public.todos TO dashboard_user;",
      "GRANT ALL ON TABLE public.todos TO authenticated;",
      "REVOKE ALL ON TABLE public.todos FROM PUBLIC;",
      `ALTER TABLE billing.invoices OWNER TO "Billing Owner";`,
    ].join("\n");
    const have = new Set(["postgres", "authenticated", "Billing Owner"]);
    const r = filterSchemaSql(sql, (x) => have.has(x));
    expect(r.dropped).toEqual(["ALTER SCHEMA auth OWNER TO supabase_admin;", "GRANT ALL ON TABLE public.todos TO dashboard_user;"]);
    expect(r.sql).toContain("CREATE SCHEMA IF NOT EXISTS auth;");
    expect(r.sql).toContain("GRANT ALL ON TABLE public.todos TO authenticated;");
    expect(r.sql).toContain("REVOKE ALL ON TABLE public.todos FROM PUBLIC;");
    expect(r.sql).toContain(`ALTER TABLE billing.invoices OWNER TO "Billing Owner";`);
    expect(r.sql).toContain("CREATE TABLE public.todos (\n    id bigint NOT NULL\n);");
    expect(r.sql).not.toContain("EXTENSION");
    expect(r.sql).not.toContain("transaction_timeout");
  });
});

describe("data stream: COPY ... WITH (FREEZE)", () => {
  // A data row may look like a command; an empty table's data is just the end marker.
  const input = [
    "SET statement_timeout = 0;", "SET transaction_timeout = 0;", "", "--", "-- Data for Name: t", "--", "",
    "COPY public.t (id, v) FROM stdin;", "1\tCOPY public.x (y) FROM stdin;", "2\ta\\\\.b", "\\.", "", "",
    "COPY auth.empty (id) FROM stdin;", "\\.", "", "SELECT pg_catalog.setval('public.t_id_seq', 5, true);", "", "-- done", "",
  ].join("\n");
  const expected = input
    .replace("COPY public.t (id, v) FROM stdin;", "COPY public.t (id, v) FROM stdin WITH (FREEZE);")
    .replace("COPY auth.empty (id) FROM stdin;", "COPY auth.empty (id) FROM stdin WITH (FREEZE);")
    .replace("SET transaction_timeout = 0;\n", "");

  test("only real COPY headers are rewritten, whatever the chunk boundaries; rows pass through untouched", () => {
    for (const size of [1, 2, 3, 4, 5, 13, 64, 100_000]) {
      const tables: string[] = [];
      const f = new CopyFreezer((t) => tables.push(t), (l) => l.startsWith("SET transaction_timeout"));
      const bytes = Buffer.from(input);
      const out: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += size) out.push(...f.push(bytes.subarray(i, i + size)));
      out.push(...f.end());
      expect(Buffer.concat(out).toString()).toBe(expected);
      expect(tables).toEqual(["public.t", "auth.empty"]);
    }
  });
});

describe("checksum query", () => {
  test("hashes stored values, or the row text for tables whose types have no hash function; quotes names", () => {
    expect(checksumSql({ schema: "public", name: "todos" })).toBe(`SELECT count(*)::bigint AS n, coalesce(sum(hash_record_extended(x, 0)), 0)::text AS h FROM ONLY "public"."todos" AS x`);
    expect(checksumSql({ schema: "my schema", name: 'we"ird' }, "text")).toBe(`SELECT count(*)::bigint AS n, coalesce(sum(hashtextextended(x::text, 0)), 0)::text AS h FROM ONLY "my schema"."we""ird" AS x`);
  });
});

describe("verification verdict", () => {
  const counts = { tables: 2, views: 1, sequences: 1, functions: 3, triggers: 1, policies: 2, foreignKeys: 1, indexes: 3 };
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
    const changed = compareMigration(src, { ...structuredClone(src), tables: { ...src.tables, "public.a": { rows: 10, checksum: "124" } } });
    expect(changed.mismatches).toEqual(["table public.a: same row count (10) but the rows differ (checksum)"]);
  });
});

describe("--storage", () => {
  test("is refused before anything runs, with the way forward", () => {
    const r = Bun.spawnSync([process.execPath, `${import.meta.dir}/../../scripts/migrate-saas.ts`, "--storage"], { env: { ...process.env, SOURCE_DB_URL: "" } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toContain("error [STORAGE_COPY_UNSUPPORTED]");
    expect(r.stderr.toString()).toContain("fix: run without --storage");
  });
});
