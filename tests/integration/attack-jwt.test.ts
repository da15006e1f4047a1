/**
 * The JWT secrets sign every environment's service_role keys. An app role (or
 * a Supabase service of the dev environment) tries to read one from the
 * database (pg_db_role_setting is a shared catalog every login role can read;
 * current_setting reads the database-level value), and tries to use a key
 * signed with the dev environment's secret against production's.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, quoteLiteral } from "../../scripts/lib/pg";
import { signApiKey, verifyApiKey } from "../../scripts/lib/jwt";
import { scramVerifier } from "../../scripts/lib/scram";
import { generateSecret, jwtSecretFor, jwtSecretKey } from "../../scripts/lib/secrets";
import { JWT_SECRET_SETTING } from "../../scripts/lib/supabase-db";
import { testConfig } from "./stack";

const cfg = testConfig();
const APP = "pgp_rolesec_app";
const APP_DB = "pgp_rolesec_app_db";
const APP_PW = generateSecret();
const [DEV, , PROD] = [cfg.databases[0]!, cfg.databases[1], cfg.databases.at(-1)!];
const allJwtSecrets = () => cfg.databases.map((d) => jwtSecretFor(cfg, d));

beforeAll(async () => {
  const c = await connect(cfg);
  try {
    await c.query(`DROP DATABASE IF EXISTS ${APP_DB}`);
    await c.query(`DROP ROLE IF EXISTS ${APP}`);
    await c.query(`CREATE ROLE ${APP} LOGIN PASSWORD ${quoteLiteral(scramVerifier(APP_PW))}`);
    await c.query(`CREATE DATABASE ${APP_DB} OWNER ${APP}`);
  } finally {
    await c.end();
  }
});
afterAll(async () => {
  const c = await connect(cfg);
  try {
    await c.query(`DROP DATABASE IF EXISTS ${APP_DB}`);
    await c.query(`DROP ROLE IF EXISTS ${APP}`);
  } finally {
    await c.end();
  }
});

describe("no role can read a JWT secret from the database", () => {
  test("attack: an app role reads every database's settings from pg_db_role_setting", async () => {
    const c = await connect(cfg, { user: APP, password: APP_PW, database: APP_DB });
    try {
      const rows = (
        await c.query(
          "SELECT coalesce(d.datname, '*') AS db, array_to_string(s.setconfig, ' ') AS conf FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase",
        )
      ).rows;
      const dump = JSON.stringify(rows);
      expect(rows.filter((r) => r.conf.includes(`${JWT_SECRET_SETTING}=`))).toEqual([]);
      for (const s of allJwtSecrets()) expect(dump.includes(s)).toBe(false);
      expect((await c.query("SELECT current_setting($1, true) AS s", [JWT_SECRET_SETTING])).rows[0].s).toBeNull();
    } finally {
      await c.end();
    }
  });

  test("attack: the dev environment's service role reads the secret with current_setting in every environment database", async () => {
    for (const db of cfg.databases) {
      const c = await connect(cfg, {
        user: "authenticator",
        password: cfg.secrets.AUTHENTICATOR_PASSWORD,
        database: db,
      });
      try {
        expect({
          db,
          secret: (await c.query("SELECT current_setting($1, true) AS s", [JWT_SECRET_SETTING])).rows[0].s,
        }).toEqual({ db, secret: null });
      } finally {
        await c.end();
      }
    }
  });
});

describe("one secret per environment", () => {
  test("attack: a service_role key signed with the dev secret is presented to production", async () => {
    expect(cfg.databases.length).toBeGreaterThanOrEqual(2);
    expect(new Set(allJwtSecrets()).size).toBe(cfg.databases.length);
    const forged = await signApiKey(jwtSecretFor(cfg, DEV), "service_role");
    expect(await verifyApiKey(forged, jwtSecretFor(cfg, PROD), "service_role")).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET",
    });
    expect(await verifyApiKey(forged, jwtSecretFor(cfg, DEV), "service_role")).toMatchObject({
      ok: true,
      role: "service_role",
    });
    expect(jwtSecretKey(PROD)).toBe(`JWT_SECRET_${PROD.toUpperCase()}`);
  });
});
