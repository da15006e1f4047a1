/**
 * One API per environment, through the stack's real nginx: each environment's
 * SUPABASE_URL (from its env file) reaches that environment's own auth, rest,
 * storage upstreams, and realtime with that database as the tenant.
 *
 * GoTrue, PostgREST, Storage and Realtime are not Debian packages and cannot
 * run natively, so tiny HTTP listeners on loopback STAND IN for them on the
 * addresses and ports the port plan gives each environment
 * (scripts/lib/supabase/routes.ts). They are not mocks of anything under test:
 * nginx and its rendered config are the real thing; the listeners only report
 * which of them a request reached, with the path and Host it arrived with.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parse as parseDotenv } from "dotenv";
import { envFilePath } from "../../scripts/lib/supabase/environments";
import { supabaseRoutes } from "../../scripts/lib/supabase/routes";
import { testConfig } from "./stack";

const cfg = testConfig();
const routes = supabaseRoutes(cfg, []);
const servers: ReturnType<typeof Bun.serve>[] = [];

/** What supabase-js 2.109.0 does with SUPABASE_URL (dist/index.mjs: new URL("rest/v1", ensureTrailingSlash(url))). */
const endpoint = (supabaseUrl: string, service: string) =>
  new URL(service, supabaseUrl.endsWith("/") ? supabaseUrl : `${supabaseUrl}/`).href;

beforeAll(() => {
  const listen = (hostport: string, service: string, database: string) => {
    const [hostname, port] = hostport.split(":");
    servers.push(
      Bun.serve({
        hostname,
        port: Number(port),
        fetch: (req) => {
          const u = new URL(req.url);
          return Response.json({ service, database, path: u.pathname + u.search, host: req.headers.get("host") });
        },
      }),
    );
  };
  for (const r of routes) {
    listen(r.auth, "auth", r.database);
    listen(r.rest, "rest", r.database);
    listen(r.storage, "storage", r.database);
  }
  // Realtime is one multi-tenant service for all of them.
  listen(routes[0]!.realtime, "realtime", "*");
});
afterAll(() => {
  for (const s of servers) s.stop(true);
});

describe("each environment's SUPABASE_URL reaches its own upstreams through nginx", () => {
  test("every ladder database has a route", () => {
    expect(routes.map((r) => r.database)).toEqual(cfg.databases);
  });

  for (const db of cfg.databases) {
    const url = () => parseDotenv(readFileSync(envFilePath(cfg, db))).SUPABASE_URL!;
    const get = async (path: string) => {
      const res = await fetch(path, { headers: { Connection: "close" } });
      return { status: res.status, database: res.headers.get("x-pgplatform-database"), body: await res.json() };
    };

    test(`${db}: rest/v1, auth/v1, storage/v1 reach ${db}'s PostgREST, GoTrue and Storage with the prefix stripped`, async () => {
      expect(await get(`${endpoint(url(), "rest/v1")}/todos?select=*`)).toEqual({
        status: 200,
        database: db,
        body: { service: "rest", database: db, path: "/todos?select=*", host: cfg.api.address },
      });
      expect(await get(`${endpoint(url(), "auth/v1")}/token?grant_type=password`)).toEqual({
        status: 200,
        database: db,
        body: { service: "auth", database: db, path: "/token?grant_type=password", host: cfg.api.address },
      });
      expect(await get(`${endpoint(url(), "storage/v1")}/object/public/avatars/a.png`)).toEqual({
        status: 200,
        database: db,
        body: { service: "storage", database: db, path: "/object/public/avatars/a.png", host: cfg.api.address },
      });
    });

    test(`${db}: realtime/v1 reaches the one Realtime with ${db} as the tenant (Host)`, async () => {
      expect(await get(`${endpoint(url(), "realtime/v1")}/websocket?vsn=1.0.0`)).toEqual({
        status: 200,
        database: db,
        body: { service: "realtime", database: "*", path: "/socket/websocket?vsn=1.0.0", host: db },
      });
    });
  }

  test("a database without a route reaches none of them (the gateway placeholder answers 502)", async () => {
    const res = await fetch(`http://${cfg.api.address}:${cfg.api.port}/not_a_database/rest/v1/todos`, {
      headers: { Connection: "close" },
    });
    expect([res.status, res.headers.get("x-pgplatform-database")]).toEqual([502, null]);
  });
});
