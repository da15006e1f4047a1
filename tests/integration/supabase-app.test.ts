/**
 * An app onboarded with --supabase gets what an environment gets: the same
 * database facts (owners, ACLs, default privileges, publication), its own JWT
 * secret and keys in its env file, and its own API under /<database>/ through
 * nginx. Removing the app takes its route away. The listeners below stand in
 * for GoTrue/PostgREST (not Debian packages; they cannot run natively): they
 * only report that nginx reached them.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { parse as parseDotenv } from "dotenv";
import { appEnvPath } from "../../scripts/lib/apps";
import { verifyApiKey } from "../../scripts/lib/jwt";
import { onboardApp } from "../../scripts/lib/onboard/onboard";
import { removeApp } from "../../scripts/lib/onboard/remove";
import { connect } from "../../scripts/lib/pg";
import { readSecrets } from "../../scripts/lib/secrets";
import { routeFor } from "../../scripts/lib/supabase/routes";
import { testConfig } from "./stack";

const cfg = testConfig();
const NAME = "it_sb_notes";
const DB = `${NAME}_db`;

afterAll(async () => {
  await removeApp(cfg, NAME).catch(() => {});
});

describe("new-app --supabase", () => {
  let port = 0;
  test("creates the app with Supabase's database side, exactly as on an environment database", async () => {
    const r = await onboardApp(cfg, { name: NAME, supabase: true });
    port = r.app.port;
    const c = await connect(cfg, { database: DB });
    try {
      const schemas = (
        await c.query(
          "SELECT nspname, pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname IN ('auth','storage','extensions','graphql_public','_realtime') ORDER BY 1",
        )
      ).rows;
      expect(schemas).toEqual([
        { nspname: "_realtime", owner: "postgres" },
        { nspname: "auth", owner: "supabase_auth_admin" },
        { nspname: "extensions", owner: NAME },
        { nspname: "graphql_public", owner: NAME },
        { nspname: "storage", owner: "supabase_storage_admin" },
      ]);
      const acl = (await c.query("SELECT datacl::text AS acl FROM pg_database WHERE datname = $1", [DB])).rows[0].acl;
      expect(acl).toBe(
        `{${NAME}=CTc/${NAME},authenticator=c/${NAME},supabase_auth_admin=Cc/${NAME},supabase_storage_admin=Cc/${NAME}}`,
      );
      const defaults = (
        await c.query(
          "SELECT pg_get_userbyid(defaclrole) AS role, defaclobjtype::text AS t, defaclacl::text AS acl FROM pg_default_acl WHERE defaclnamespace = 'public'::regnamespace ORDER BY 2",
        )
      ).rows;
      expect(defaults).toEqual([
        { role: NAME, t: "S", acl: `{anon=rwU/${NAME},authenticated=rwU/${NAME},service_role=rwU/${NAME}}` },
        { role: NAME, t: "f", acl: `{anon=X/${NAME},authenticated=X/${NAME},service_role=X/${NAME}}` },
        {
          role: NAME,
          t: "r",
          acl: `{anon=arwdDxt/${NAME},authenticated=arwdDxt/${NAME},service_role=arwdDxt/${NAME}}`,
        },
      ]);
      expect((await c.query("SELECT pubname FROM pg_publication")).rows).toEqual([{ pubname: "supabase_realtime" }]);
    } finally {
      await c.end().catch(() => {});
    }
  });

  test("its env file (0600) has its own SUPABASE_URL and keys signed with its own JWT secret", async () => {
    const path = appEnvPath(cfg, NAME);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const v = parseDotenv(readFileSync(path));
    expect(v.SUPABASE_URL).toBe(`http://${cfg.api.address}:${cfg.api.port}/${DB}`);
    const secret = readSecrets(cfg.secretsFile)[`JWT_SECRET_${DB.toUpperCase()}`]!;
    expect(secret.length).toBeGreaterThanOrEqual(32);
    expect(await verifyApiKey(v.SUPABASE_ANON_KEY!, secret, "anon")).toMatchObject({ ok: true, role: "anon" });
    expect(await verifyApiKey(v.SUPABASE_SERVICE_ROLE_KEY!, secret, "service_role")).toMatchObject({
      ok: true,
      role: "service_role",
    });
    expect(
      (
        await verifyApiKey(
          v.SUPABASE_ANON_KEY!,
          readSecrets(cfg.secretsFile)[`JWT_SECRET_${cfg.databases[0]!.toUpperCase()}`]!,
          "anon",
        )
      ).ok,
    ).toBe(false);
  });

  test("a re-run changes nothing (keys kept)", async () => {
    const before = readFileSync(appEnvPath(cfg, NAME), "utf8");
    const r = await onboardApp(cfg, { name: NAME, supabase: true });
    expect(r.changes).toEqual([]);
    expect(readFileSync(appEnvPath(cfg, NAME), "utf8")).toBe(before);
  });

  test("nginx routes /<database>/rest/v1/ to the app's own PostgREST; removing the app takes the route away", async () => {
    const route = routeFor(cfg, DB, port);
    const [hostname, p] = route.rest.split(":");
    const server = Bun.serve({
      hostname,
      port: Number(p),
      fetch: (req) => Response.json({ service: "rest", path: new URL(req.url).pathname }),
    });
    try {
      const url = `http://${cfg.api.address}:${cfg.api.port}/${DB}/rest/v1/notes`;
      const res = await fetch(url, { headers: { Connection: "close" } });
      expect({ status: res.status, body: await res.json() }).toEqual({
        status: 200,
        body: { service: "rest", path: "/notes" },
      });
      await removeApp(cfg, NAME);
      const after = await fetch(url, { headers: { Connection: "close" } });
      expect([after.status, after.headers.get("x-pgplatform-database")]).toEqual([502, null]);
    } finally {
      server.stop(true);
    }
  });
});
