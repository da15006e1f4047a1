/**
 * Attacks on a customer bundle's API keys (issue 11, item 4): dev, staging and
 * production of a client once shared one JWT secret, so any dev app (whose env
 * file holds it) could mint a production service_role key. The "customer's
 * server" is this machine over ssh through a throwaway sshd on 127.0.7.3:2229
 * (the deploy block); a release is planned and uploaded there for real, and the
 * keys are judged by the target's own code (on-target.ts verifyEnvironmentKey,
 * run from the deployed release with its env files). The attacker is an
 * unprivileged local user created here that holds dev's env file, as the dev
 * app does. No cluster is needed: verification reads the deployed files.
 * Each test passes when the attack fails.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { planRelease, prepareRemoteDirs, uploadRelease } from "../../scripts/lib/deploy/deploy";
import { signApiKey } from "../../scripts/lib/deploy/client-secrets";
import { loadClientSettings } from "../../scripts/lib/deploy/settings";
import { openTarget, type Target } from "../../scripts/lib/deploy/target";
import { asUser, keygen, makeUser, startSshd, writeTestClientEnv, type Sshd } from "./sshd";

const ROOT = resolve(import.meta.dir, "../..");
const BUN = realpathSync(join(ROOT, "node_modules", ".bin", "bun"));
const NAME = "atjwt";
const ADDR = "127.0.7.3";
const PORT = 2229;
const ATTACKER = "pgp-bundlejwt-devapp";
const REMOTE_DIR = `/var/tmp/pgplatform-clients/${NAME}`;
const RELEASE = `${REMOTE_DIR}/releases/1`;
const tmp = mkdtempSync(join(tmpdir(), "pgp-attack-bundlejwt-"));
const clientsDir = join(tmp, "clients");
const key = join(tmp, "id_ed25519");
const home = mkdtempSync(join(tmpdir(), "pgp-bundlejwt-devapp-")); // the dev app's own folder (its env file)
// The old, shared secret and its keys, as an older toolkit left them in the client's secrets file.
const OLD_SECRET = "Sh4redQw2mZr7TbX1vLp9NcY4sHd6JfA3gUe0oRi";
let oldService = "";
let sshd: Sshd | undefined;
let t: Target | undefined;
let removeUser = () => {};
let migrated: string | undefined;

/** The target's verifier for `env`, run from the deployed release over ssh; the key travels on stdin, never argv. */
async function verifyOnTarget(env: string, role: string, token: string) {
  const code = `const { verifyEnvironmentKey } = await import(${JSON.stringify(`${RELEASE}/scripts/lib/deploy/on-target.ts`)});
const [env, role] = process.argv.slice(-2);
console.log(JSON.stringify(await verifyEnvironmentKey(${JSON.stringify(RELEASE)}, env, (await Bun.stdin.text()).trim(), role)));`;
  const r = await t!.exec(["env", "-C", RELEASE, "node_modules/.bin/bun", "-e", code, env, role], {
    input: token,
    nothrow: true,
  });
  if (r.code !== 0) throw new Error(`verifier on the target failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

/** What the dev app's user can do with its own env file: sign an HS256 service_role key (node:crypto, nothing of ours). */
const FORGE = `const { createHmac } = require("node:crypto");
const file = process.argv[process.argv.length - 1];
const secret = require("node:fs").readFileSync(file, "utf8").split("\\n").find((l) => l.startsWith("JWT_SECRET=")).slice("JWT_SECRET=".length);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ role: "service_role", iss: "supabase", iat: now, exp: now + 3600 });
console.log(body + "." + createHmac("sha256", secret).update(body).digest("base64url"));`;

beforeAll(async () => {
  rmSync(REMOTE_DIR, { recursive: true, force: true });
  keygen(key);
  sshd = await startSshd(tmp, ADDR, PORT, `${key}.pub`);
  writeTestClientEnv(clientsDir, {
    name: NAME,
    addr: ADDR,
    port: PORT,
    key,
    remoteDir: REMOTE_DIR,
    members: "127.0.7.31,127.0.7.32,127.0.7.33",
  });
  // A bundle made before per-environment secrets: one JWT_SECRET, ANON_KEY, SERVICE_ROLE_KEY for all three.
  oldService = await signApiKey(OLD_SECRET, "service_role");
  writeFileSync(
    join(clientsDir, NAME, ".secrets.env"),
    `JWT_SECRET=${OLD_SECRET}\nANON_KEY=${await signApiKey(OLD_SECRET, "anon")}\nSERVICE_ROLE_KEY=${oldService}\n`,
    { mode: 0o600 },
  );
  removeUser = await makeUser(ATTACKER);

  // The deploy, for real, up to the release on the target (no cluster: the keys are checked from the deployed files).
  const s = loadClientSettings(NAME, clientsDir);
  t = openTarget(s, { trustNewHost: true });
  await t.connect();
  const { plan } = await planRelease(s, { clientsBase: clientsDir, sourceDir: ROOT });
  migrated = plan.secretsMigrated;
  await prepareRemoteDirs(t, s);
  await uploadRelease(t, s, plan, 1, ROOT, () => {});
  // The dev app holds its env file (as deployed) in its own folder.
  const uid = Number(spawnSync("id", ["-u", ATTACKER], { encoding: "utf8" }).stdout.trim());
  writeFileSync(join(home, "dev.env"), readFileSync(`${RELEASE}/client/env/dev.env`), { mode: 0o600 });
  writeFileSync(join(home, "forge.cjs"), FORGE, { mode: 0o644 });
  chownSync(join(home, "dev.env"), uid, uid);
  chownSync(home, uid, uid);
  chmodSync(home, 0o700);
}, 300_000);

afterAll(async () => {
  await t?.close();
  await sshd?.stop();
  removeUser();
  rmSync(REMOTE_DIR, { recursive: true, force: true });
  rmSync(join(ROOT, ".state", "clients", NAME), { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
}, 60_000);

describe("deploy-client: each environment verifies only its own keys (issue 11, item 4)", () => {
  test("attack: the dev app signs a service_role key with dev's JWT secret; production's and staging's verifiers on the target refuse it", async () => {
    // The dev app cannot read production's env file on the target...
    expect(asUser(ATTACKER, ["cat", `${RELEASE}/client/env/production.env`])).toEqual({
      code: 1,
      out: `cat: ${RELEASE}/client/env/production.env: Permission denied`,
    });
    // ...but holds its own, with dev's secret, and mints a service_role key with it.
    const forged = asUser(ATTACKER, [BUN, join(home, "forge.cjs"), join(home, "dev.env")]);
    expect(forged.code).toBe(0);
    const token = forged.out.trim();
    expect(JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString())).toMatchObject({
      role: "service_role",
      iss: "supabase",
    });
    // The key is genuine for dev (so a refusal below is the separation of secrets, not a malformed key)...
    expect(await verifyOnTarget("dev", "service_role", token)).toMatchObject({
      ok: true,
      role: "service_role",
      iss: "supabase",
    });
    // ...and refused by production and staging, by signature.
    expect(await verifyOnTarget("production", "service_role", token)).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET_PRODUCTION",
    });
    expect(await verifyOnTarget("staging", "service_role", token)).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET_STAGING",
    });
    // The deployed dev key itself (the one in the dev app's file) is refused in production too; production's own verifies.
    const dev = parseDotenv(readFileSync(`${RELEASE}/client/env/dev.env`));
    const prod = parseDotenv(readFileSync(`${RELEASE}/client/env/production.env`));
    expect(await verifyOnTarget("production", "service_role", dev.SERVICE_ROLE_KEY!)).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET_PRODUCTION",
    });
    expect(await verifyOnTarget("production", "service_role", prod.SERVICE_ROLE_KEY!)).toMatchObject({
      ok: true,
      role: "service_role",
    });
    expect(dev.JWT_SECRET).not.toBe(prod.JWT_SECRET);
  }, 120_000);

  test("attack: the service_role key of the old shared secret (before the migration) is refused by every environment on the target", async () => {
    expect(migrated).toStartWith(
      `${join(clientsDir, NAME, ".secrets.env")}: the JWT_SECRET, ANON_KEY, SERVICE_ROLE_KEY shared by dev, staging and production`,
    );
    expect(migrated).toContain(
      "The old ANON_KEY and SERVICE_ROLE_KEY stop verifying everywhere once this release is live",
    );
    for (const env of ["dev", "staging", "production"]) {
      expect(await verifyOnTarget(env, "service_role", oldService)).toEqual({
        ok: false,
        problem: `signature does not verify against JWT_SECRET_${env.toUpperCase()}`,
      });
      expect(readFileSync(`${RELEASE}/client/env/${env}.env`, "utf8")).not.toContain(OLD_SECRET);
    }
  }, 120_000);
});
