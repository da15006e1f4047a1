/** The stack's secrets file: 0600 from the moment it exists, one JWT secret per environment database, rotation. */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { ensureSecrets, jwtSecretKey, rotateJwtSecret, SECRET_KEYS, writeSecretFile } from "../../scripts/lib/secrets";
import { signApiKey, verifyApiKey } from "../../scripts/lib/jwt";
import { TOOLKIT_UMASK } from "../../scripts/lib/errors";

const tmp = mkdtempSync(join(tmpdir(), "pgp-rolesec-secrets-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => void process.umask(TOOLKIT_UMASK));
const DBS = ["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production"];
const mode = (f: string) => statSync(f).mode & 0o777;

describe("secrets file mode", () => {
  test("with umask 000 the file is 0600 after its first write (no later call tightens it)", () => {
    process.umask(0);
    const file = join(tmp, "first.env");
    ensureSecrets(file, DBS);
    expect(mode(file)).toBe(0o600);
  });

  test("0600 from the moment it exists: the temp file is 0600 and empty when created, before any byte is written", () => {
    process.umask(0);
    const file = join(tmp, "moment.env");
    const seen: [string, number, number][] = [];
    writeSecretFile(file, "A=1\n", (t) => seen.push([t, mode(t), statSync(t).size]));
    expect(seen).toEqual([[`${file}.tmp-${process.pid}`, 0o600, 0]]);
    expect(readFileSync(file, "utf8")).toBe("A=1\n");
    expect(mode(file)).toBe(0o600);
  });

  test("a leftover 0644 temp file or a symlink planted at the temp name is replaced, never followed or reused", () => {
    process.umask(0);
    const file = join(tmp, "planted.env");
    const victim = join(tmp, "victim.txt");
    writeFileSync(victim, "untouched\n", { mode: 0o644 });
    symlinkSync(victim, `${file}.tmp-${process.pid}`);
    writeSecretFile(file, "B=2\n");
    expect(readFileSync(victim, "utf8")).toBe("untouched\n");
    expect(readFileSync(file, "utf8")).toBe("B=2\n");
    expect(mode(file)).toBe(0o600);
    writeFileSync(`${file}.tmp-${process.pid}`, "stale", { mode: 0o644 });
    writeSecretFile(file, "C=3\n");
    expect([readFileSync(file, "utf8"), mode(file)]).toEqual(["C=3\n", 0o600]);
  });
});

describe("one JWT secret per environment database", () => {
  test("each environment gets its own secret; the fixed keys are all there", () => {
    const file = join(tmp, "jwt.env");
    const { secrets, created } = ensureSecrets(file, DBS);
    expect(created).toEqual([
      ...SECRET_KEYS,
      "JWT_SECRET_ORCHESTRATOR_AI_DEV",
      "JWT_SECRET_ORCHESTRATOR_AI_STAGING",
      "JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION",
    ]);
    const jwt = DBS.map((d) => secrets[jwtSecretKey(d)]!);
    expect(new Set(jwt).size).toBe(3);
    for (const s of jwt) expect(s.length).toBeGreaterThanOrEqual(32);
    expect(parseDotenv(readFileSync(file))).toEqual(secrets);
    // A caller that does not name the databases keeps them.
    expect(ensureSecrets(file).secrets).toEqual(secrets);
  });

  test("a key signed with the dev secret does not verify against production's", async () => {
    const { secrets } = ensureSecrets(join(tmp, "jwt.env"), DBS);
    const forged = await signApiKey(secrets.JWT_SECRET_ORCHESTRATOR_AI_DEV!, "service_role");
    expect(await verifyApiKey(forged, secrets.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION!, "service_role")).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET",
    });
    expect((await verifyApiKey(forged, secrets.JWT_SECRET_ORCHESTRATOR_AI_DEV!, "service_role")).ok).toBe(true);
  });

  test("a short JWT secret is refused with the key and the fix", () => {
    const file = join(tmp, "short.env");
    ensureSecrets(file, DBS);
    writeFileSync(
      file,
      readFileSync(file, "utf8").replace(
        /^JWT_SECRET_ORCHESTRATOR_AI_DEV=.*$/m,
        "JWT_SECRET_ORCHESTRATOR_AI_DEV=only-twenty-chars-xx",
      ),
    );
    expect(() => ensureSecrets(file, DBS)).toThrow(
      `${file}: JWT_SECRET_ORCHESTRATOR_AI_DEV is shorter than 32 characters`,
    );
  });

  test("rotation replaces one environment's secret only, keeps 0600, and old keys are refused", async () => {
    process.umask(0);
    const file = join(tmp, "rotate.env");
    const before = ensureSecrets(file, DBS).secrets;
    const oldKey = await signApiKey(before.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION!, "service_role");
    const r = rotateJwtSecret(file, "orchestrator_ai_production");
    const after = parseDotenv(readFileSync(file));
    expect(r.key).toBe("JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION");
    expect(after.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION).toBe(r.secret);
    expect(r.secret).not.toBe(before.JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION);
    expect({ ...after, JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION: "x" }).toEqual({
      ...before,
      JWT_SECRET_ORCHESTRATOR_AI_PRODUCTION: "x",
    });
    expect(mode(file)).toBe(0o600);
    expect(await verifyApiKey(oldKey, r.secret, "service_role")).toEqual({
      ok: false,
      problem: "signature does not verify against JWT_SECRET",
    });
    expect((await verifyApiKey(await signApiKey(r.secret, "service_role"), r.secret, "service_role")).ok).toBe(true);
    expect(() => rotateJwtSecret(file, "hyperarchy_db")).toThrow(`${file}: no JWT_SECRET_HYPERARCHY_DB to rotate`);
  });
});
