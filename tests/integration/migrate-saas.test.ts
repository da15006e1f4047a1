/**
 * make migrate-saas against real programs: a scratch PostgreSQL 15 shaped like
 * a Supabase project (tests/fixtures/supabase-source.sql) is migrated into
 * databases of our own on the test cluster, which are dropped afterwards
 * together with the roles the migration created.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { connect, quoteIdent, rwTarget } from "../../scripts/lib/pg";
import { runScript, testConfig, waitClusterHealthy } from "./stack";
import { scratchAddress, startScratchPg, type ScratchPg } from "./scratch-pg";

const cfg = testConfig();
const FRESH = "it_migrate_saas";
const FAIL = "it_migrate_saas_fail";
const CUSTOM_ROLES = ["app_readonly", "billing_owner", "Report Bot"];
const FIXTURE = join(import.meta.dir, "../fixtures/supabase-source.sql");
let source: ScratchPg;
const outputs: string[] = [];

function migrate(args: string[], env: Record<string, string> = {}) {
  // The scratch source has no TLS: the explicit opt-out (verified TLS is tested in migrate-saas-cases.test.ts).
  const r = runScript("migrate-saas.ts", args, { SOURCE_DB_URL: source.url(), SOURCE_TLS_INSECURE: "1", ...env });
  outputs.push(r.out);
  return r;
}

async function onTarget<T>(db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(cfg, { database: db });
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function onSource<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: source.url() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function dropOurs() {
  const c = await connect(cfg);
  try {
    for (const db of [FRESH, FAIL]) await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
    for (const r of CUSTOM_ROLES) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(r)}`);
  } finally {
    await c.end();
  }
}

const count = async (c: pg.Client, sql: string) => Number((await c.query(sql)).rows[0].n);
const clusterRoles = async () =>
  onTarget("postgres", async (c) =>
    (await c.query("SELECT rolname FROM pg_roles")).rows.map((r) => r.rolname as string),
  );

beforeAll(async () => {
  await dropOurs();
  source = await startScratchPg({ host: scratchAddress(cfg), name: "migrate-saas" });
  await source.psql("postgres", FIXTURE, { file: true });
  const c = await connect(cfg);
  try {
    for (const db of [FRESH, FAIL]) await c.query(`CREATE DATABASE ${quoteIdent(db)}`);
  } finally {
    await c.end();
  }
}, 120_000);

afterAll(async () => {
  await dropOurs().catch(() => {});
  await source?.stop();
  await waitClusterHealthy(cfg);
}, 120_000);

describe("migrate-saas: bad input is refused before the target is touched", () => {
  test("no SOURCE_DB_URL and no terminal: a clear error", () => {
    const r = runScript("migrate-saas.ts", ["--target-db", FRESH], { SOURCE_DB_URL: "" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("MISSING_SOURCE_URL");
  });

  test("unreachable source names the host and the reason", () => {
    const host = scratchAddress(cfg).replace(/\.50$/, ".51");
    const url = `postgresql://postgres:unreachable-secret-pw@${host}:5432/postgres`;
    const r = migrate(["--target-db", FRESH], { SOURCE_DB_URL: url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("SOURCE_UNREACHABLE");
    expect(r.stderr).toContain(`${host}:5432`);
    expect(r.out).not.toContain("unreachable-secret-pw");
  });

  test("wrong password: refused, and the password is not echoed", () => {
    const url = source.url("postgres", "postgres", "wrong-password-not-this-one");
    const r = migrate(["--target-db", FRESH], { SOURCE_DB_URL: url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("SOURCE_AUTH_FAILED");
    expect(r.stderr).toContain(`${source.host}:${source.port}`);
    expect(r.out).not.toContain("wrong-password-not-this-one");
  });

  test("a second migration into the same target at the same time is refused", async () => {
    const holder = await connect(cfg, { database: FRESH });
    try {
      await holder.query("SELECT pg_advisory_lock(hashtext('pgplatform:migrate-saas:' || current_database()))");
      const r = migrate(["--target-db", FRESH]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("MIGRATE_LOCKED");
    } finally {
      await holder.end();
    }
  });

  test("a target that does not exist", () => {
    const r = migrate(["--target-db", "it_no_such_db"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("TARGET_MISSING");
  });
});

describe("migrate-saas: a Supabase-shaped project into the cluster", () => {
  test("PLAN=1 lists what would move and changes nothing", async () => {
    const r = migrate(["--target-db", FRESH, "--json"], { PLAN: "1" });
    expect(r.code).toBe(0);
    const { plan } = JSON.parse(r.stdout);
    expect(plan.schemas.migrated).toEqual(["auth", "billing", "public", "storage"]);
    expect(plan.schemas.excluded).toEqual(
      expect.arrayContaining(["extensions", "realtime", "graphql_public", "supabase_migrations"]),
    );
    expect(plan.roles.create.sort()).toEqual([...CUSTOM_ROLES].sort());
    expect(plan.roles.reservedSkipped).toEqual(
      expect.arrayContaining(["anon", "supabase_admin", "dashboard_user", "pgbouncer"]),
    );
    expect(plan.storage.objects).toBe(60);
    expect(plan.blockers).toEqual([]);
    expect(
      await onTarget(FRESH, (c) =>
        count(c, "SELECT count(*) AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace"),
      ),
    ).toBe(0);
    expect(await clusterRoles()).not.toContain("Report Bot");
  });

  test("an error mid-restore rolls everything back: target and roles unchanged", async () => {
    // An orphan row (possible on the source with triggers off) fails the foreign key
    // added after the data, i.e. after roles, schema and every row were already sent.
    await onSource((c) =>
      c.query(`SET session_replication_role = replica;
      INSERT INTO public.todos (user_id, task) VALUES ('00000000-0000-4000-8000-999999999999', 'orphan')`),
    );
    try {
      const r = migrate(["--target-db", FAIL]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("RESTORE_FAILED");
      // The object psql was on and the server's own error line.
      expect(r.stderr).toContain(
        'restore into the target failed while creating FK CONSTRAINT public.todos todos_user_id_fkey: ERROR:  insert or update on table "todos" violates foreign key constraint "todos_user_id_fkey"',
      );
      expect(r.stderr).toContain("target is unchanged");
      await onTarget(FAIL, async (c) => {
        expect(
          await count(
            c,
            "SELECT count(*) AS n FROM pg_namespace WHERE nspname IN ('auth','storage','billing','extensions')",
          ),
        ).toBe(0);
        expect(await count(c, "SELECT count(*) AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace")).toBe(
          0,
        );
        expect(await count(c, "SELECT count(*) AS n FROM pg_extension WHERE extname <> 'plpgsql'")).toBe(0);
      });
      const roles = await clusterRoles();
      for (const r of CUSTOM_ROLES) expect(roles).not.toContain(r);
    } finally {
      await onSource((c) => c.query("DELETE FROM public.todos WHERE task = 'orphan'"));
    }
  }, 120_000);

  test("the migrating process killed mid-stream: nothing is committed", async () => {
    await source.psql(
      "postgres",
      "CREATE TABLE public.bulk AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1500000) g",
    );
    try {
      const child = Bun.spawn([process.execPath, "scripts/migrate-saas.ts", "--target-db", FAIL], {
        cwd: join(import.meta.dir, "../.."),
        env: { ...process.env, STACK: cfg.stack, SOURCE_DB_URL: source.url(), SOURCE_TLS_INSECURE: "1" },
        stdout: "pipe",
        stderr: "pipe",
      });
      let seen = "";
      const reader = child.stdout.getReader();
      const deadline = Date.now() + 60_000;
      while (!/data\s+public\.bulk/.test(seen) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      expect(seen).toMatch(/data\s+public\.bulk/); // rows are flowing into the open transaction
      child.kill("SIGKILL");
      await child.exited;
      // psql (now orphaned) reads end of input inside the transaction and disconnects: the server rolls back.
      await onTarget("postgres", async (c) => {
        for (let i = 0; i < 100; i++) {
          const n = await count(
            c,
            `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '${FAIL}' AND application_name = 'pgplatform-migrate'`,
          );
          if (n === 0) break;
          await Bun.sleep(200);
        }
      });
      await onTarget(FAIL, async (c) => {
        expect(
          await count(c, "SELECT count(*) AS n FROM pg_namespace WHERE nspname IN ('auth','storage','billing')"),
        ).toBe(0);
        expect(await count(c, "SELECT count(*) AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace")).toBe(
          0,
        );
      });
      for (const r of CUSTOM_ROLES) expect(await clusterRoles()).not.toContain(r);
    } finally {
      await source.psql("postgres", "DROP TABLE public.bulk");
    }
  }, 120_000);

  test("migrates everything; every table's rows and checksum match", async () => {
    const r = migrate(["--target-db", FRESH, "--json"]);
    if (r.code !== 0) console.error(r.out);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.verification.mismatches).toEqual([]);
    const tables = report.verification.tables.map((t: any) => t.table);
    expect(tables).toEqual(
      expect.arrayContaining([
        "auth.users",
        "auth.identities",
        "storage.buckets",
        "storage.objects",
        "public.profiles",
        "public.todos",
        "billing.invoices",
        "public.webhook_log",
      ]),
    );
    expect(tables).not.toContain("realtime.messages");
    expect(
      report.verification.tables.every(
        (t: any) => t.ok && t.sourceRows === t.targetRows && t.sourceChecksum === t.targetChecksum,
      ),
    ).toBe(true);
    expect(report.verification.tables.find((t: any) => t.table === "auth.users").targetRows).toBe(200);
    expect(report.verification.objects.find((o: any) => o.object === "policies").target).toBe(5);
    expect(existsSync(report.reportFile)).toBe(true);
    expect(report.rolePasswords).toEqual(["Report Bot"]);
    expect(statSync(report.rolePasswordsFile).mode & 0o777).toBe(0o600);

    // Independent checks, with our own queries.
    const srcCounts = await onSource((c) =>
      c.query(
        "SELECT (SELECT count(*) FROM auth.users) AS u, (SELECT count(*) FROM auth.identities) AS i, (SELECT count(*) FROM public.todos) AS t, (SELECT md5(string_agg(email, ',' ORDER BY id)) FROM auth.users) AS h",
      ),
    );
    await onTarget(FRESH, async (c) => {
      const tc = await c.query(
        "SELECT (SELECT count(*) FROM auth.users) AS u, (SELECT count(*) FROM auth.identities) AS i, (SELECT count(*) FROM public.todos) AS t, (SELECT md5(string_agg(email, ',' ORDER BY id)) FROM auth.users) AS h",
      );
      expect(tc.rows[0]).toEqual(srcCounts.rows[0]);
      // foreign keys to auth.users, policies, the trigger on auth.users, the view
      const fks = (
        await c.query("SELECT conname FROM pg_constraint WHERE contype = 'f' AND confrelid = 'auth.users'::regclass")
      ).rows.map((x) => x.conname);
      expect(fks.length).toBe(5);
      const policies = (await c.query("SELECT policyname FROM pg_policies ORDER BY 1")).rows.map((x) => x.policyname);
      expect(policies).toEqual(
        expect.arrayContaining([
          "individuals manage their todos",
          "avatars are public",
          "users update their own profile",
        ]),
      );
      expect(
        await count(
          c,
          "SELECT count(*) AS n FROM pg_class WHERE relrowsecurity AND relname IN ('todos','profiles','objects','users')",
        ),
      ).toBe(4);
      expect(
        await count(
          c,
          "SELECT count(*) AS n FROM pg_trigger WHERE tgname = 'on_auth_user_created' AND tgrelid = 'auth.users'::regclass",
        ),
      ).toBe(1);
      expect(await count(c, "SELECT count(*) AS n FROM public.open_todos")).toBeGreaterThan(0);
      // Users keep their logins: the bcrypt hash still verifies.
      expect(
        (
          await c.query(
            "SELECT encrypted_password = extensions.crypt('pw7', encrypted_password) AS ok FROM auth.users WHERE email = 'user7@example.com'",
          )
        ).rows[0].ok,
      ).toBe(true);
      // The trigger on auth.users works on the target (it was off only during the copy).
      await c.query(
        "INSERT INTO auth.users (id, email, raw_user_meta_data) VALUES ('00000000-0000-4000-8000-0000000aaaaa', 'new@example.com', '{\"full_name\":\"New\"}')",
      );
      expect(
        await count(c, "SELECT count(*) AS n FROM public.profiles WHERE id = '00000000-0000-4000-8000-0000000aaaaa'"),
      ).toBe(1);
      // Loaded WITH (FREEZE): every heap page is already all-frozen, so first reads do not rewrite them.
      await c.query("CREATE EXTENSION pg_visibility");
      const vm = await c.query(
        "SELECT all_frozen, (pg_relation_size('public.todos') / current_setting('block_size')::int) AS pages FROM pg_visibility_map_summary('public.todos')",
      );
      await c.query("DROP EXTENSION pg_visibility");
      expect(Number(vm.rows[0].pages)).toBeGreaterThan(0);
      expect(Number(vm.rows[0].all_frozen)).toBe(Number(vm.rows[0].pages));
      // Ownership by a custom role survives.
      expect(
        (await c.query("SELECT tableowner FROM pg_tables WHERE schemaname = 'billing' AND tablename = 'invoices'"))
          .rows[0].tableowner,
      ).toBe("billing_owner");
    });
    // Sequences continue where the source is: the next values are the same on both sides.
    const srcNext = await onSource((c) =>
      c.query(
        "SELECT nextval('public.todos_id_seq')::text AS a, nextval('public.invoice_number_seq')::text AS b, nextval('public.events_id_seq')::text AS c",
      ),
    );
    const tgtNext = await onTarget(FRESH, (c) =>
      c.query(
        "SELECT nextval('public.todos_id_seq')::text AS a, nextval('public.invoice_number_seq')::text AS b, nextval('public.events_id_seq')::text AS c",
      ),
    );
    expect(tgtNext.rows[0]).toEqual(srcNext.rows[0]);
    const maxId = await onTarget(FRESH, (c) => count(c, "SELECT max(id) AS n FROM public.todos"));
    expect(Number(tgtNext.rows[0].a)).toBeGreaterThan(maxId);
    expect(Number(tgtNext.rows[0].a)).toBeGreaterThan(1500); // the source's sequence is ahead of max(id): deleted rows leave gaps
    // Supabase's reserved roles were not recreated; the custom ones were, and the login role can log in.
    const roles = await clusterRoles();
    for (const r of ["supabase_admin", "dashboard_user", "pgbouncer", "pgsodium_keyholder", "supabase_realtime_admin"])
      expect(roles).not.toContain(r);
    for (const r of CUSTOM_ROLES) expect(roles).toContain(r);
    const pw = readFileSync(report.rolePasswordsFile, "utf8").match(/^Report Bot=(.+)$/m)![1]!;
    const bot = new pg.Client({ ...rwTarget(cfg), user: "Report Bot", password: pw, database: FRESH });
    await bot.connect();
    expect(Number((await bot.query("SELECT count(*) AS n FROM billing.invoices")).rows[0].n)).toBe(120);
    await bot.end();
  }, 180_000);

  test("running it again changes nothing and says the target is already migrated", async () => {
    const before = await onTarget(FRESH, (c) =>
      c.query("SELECT count(*)::int AS n, max(id)::text AS m FROM public.todos"),
    );
    const r = migrate(["--target-db", FRESH, "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.alreadyMigrated.reportFile).toContain("migrate-saas-" + FRESH);
    const after = await onTarget(FRESH, (c) =>
      c.query("SELECT count(*)::int AS n, max(id)::text AS m FROM public.todos"),
    );
    expect(after.rows[0]).toEqual(before.rows[0]);
  });

  test("a non-empty target is refused without --replace, and left as it was", async () => {
    await onTarget(FAIL, (c) =>
      c.query("CREATE TABLE public.someone_elses (v int); INSERT INTO public.someone_elses VALUES (7)"),
    );
    const r = migrate(["--target-db", FAIL]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("TARGET_NOT_EMPTY");
    expect(r.stderr).toContain("--replace");
    await onTarget(FAIL, async (c) => {
      expect(await count(c, "SELECT count(*) AS n FROM public.someone_elses WHERE v = 7")).toBe(1);
      expect(await count(c, "SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'auth'")).toBe(0);
    });
  });

  test("--replace backs the target up (0600), replaces it and verifies again", async () => {
    await onTarget(FRESH, (c) =>
      c.query("CREATE TABLE public.leftover (v int); INSERT INTO public.leftover VALUES (1)"),
    );
    const r = migrate(["--target-db", FRESH, "--json"], { REPLACE: "1" });
    if (r.code !== 0) console.error(r.out);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.backup).toContain("/backups/pre-migrate/");
    expect(statSync(report.backup).mode & 0o777).toBe(0o600);
    expect(statSync(report.backup).size).toBeGreaterThan(1000);
    expect(report.rolesCreated).toEqual([]); // already there from the first run: left alone
    await onTarget(FRESH, async (c) => {
      expect(await count(c, "SELECT count(*) AS n FROM pg_class WHERE relname = 'leftover'")).toBe(0);
      expect(await count(c, "SELECT count(*) AS n FROM auth.users")).toBe(200);
    });
  }, 180_000);

  test("the source password never appears in output, reports or logs", () => {
    expect(outputs.length).toBeGreaterThan(5);
    for (const o of outputs) expect(o).not.toContain(source.password);
    for (const dir of [cfg.reportsDir, cfg.logsDir]) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir)) expect(readFileSync(join(dir, f), "utf8")).not.toContain(source.password);
    }
  });
});
