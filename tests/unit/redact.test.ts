/** The redactor: every place a password goes is masked, registered or not; loading a config is enough to register. */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { redact, registerSecret } from "../../scripts/lib/redact";

const root = join(import.meta.dir, "../..");
const tmp = mkdtempSync(join(tmpdir(), "pgp-rolesec-redact-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("redact: where a password goes, unregistered", () => {
  test.each([
    [
      "libpq password=",
      "host=10.0.0.5 port=5432 user=app password=Zq9-unregistered dbname=x",
      "host=10.0.0.5 port=5432 user=app password=*** dbname=x",
    ],
    ["libpq quoted password", "user=app password='pass word \\' x' dbname=x", "user=app password=*** dbname=x"],
    ["PGPASSWORD=", "PGPASSWORD=Zq9-unregistered pg_dump -h x", "PGPASSWORD=*** pg_dump -h x"],
    ["quoted env assignment", `POSTGRES_PASSWORD="Zq9 un reg" next`, "POSTGRES_PASSWORD=*** next"],
    [
      "Basic auth in a URL",
      "GET https://ops:Zq9-unregistered@hooks.example.com/alert",
      "GET https://ops:***@hooks.example.com/alert",
    ],
    ["Authorization: Basic", "Authorization: Basic b3BzOlpxOS11bnJlZ2lzdGVyZWQ= sent", "Authorization: Basic *** sent"],
    [
      "a password holding '@' in a URL",
      "postgresql://app:p@ss@w0rd@db.example.com:5432/app",
      "postgresql://app:***@db.example.com:5432/app",
    ],
    ["a postgres URL", "postgresql://app:hunter2@h:1/db", "postgresql://app:***@h:1/db"],
    [
      "an '@' in a URL's query is not a password",
      "GET http://host:8080/invite?email=a@b.example",
      "GET http://host:8080/invite?email=a@b.example",
    ],
  ])("%s", (_name, input, want) => {
    expect(redact(input)).toBe(want);
  });
});

describe("redact: registered values", () => {
  test("a short registered value is masked as a whole token, not inside words", () => {
    registerSecret("k9z");
    expect(redact("pw k9z, and k9zebra stays")).toBe("pw ***, and k9zebra stays");
  });
  test("a 4-7 character value is masked anywhere (the old floor of 8 let it through)", () => {
    registerSecret("hunt3r");
    expect(redact("connecting with hunt3r as app")).toBe("connecting with *** as app");
  });
  test("a secret containing another is masked whole", () => {
    registerSecret("abcd-long-secret-value");
    registerSecret("long-secret");
    expect(redact("x abcd-long-secret-value y")).toBe("x *** y");
  });
  test("loading a config registers its secrets: no ensureSecrets needed", () => {
    const dir = join(tmp, "repo");
    mkdirSync(join(dir, "envs"), { recursive: true });
    copyFileSync(join(root, "envs/test.env"), join(dir, "envs/rs.env"));
    writeFileSync(
      join(dir, "envs/.secrets.rs.env"),
      "POSTGRES_PASSWORD=Lo4dedOnlyByConfig\nJWT_SECRET_ORCHESTRATOR_AI_DEV=jwt-Lo4dedOnlyByConfig-0123456789abcdef\n",
      { mode: 0o600 },
    );
    // A fresh process: nothing registered before loadConfig.
    const code = `import { loadConfig } from "${root}/scripts/lib/config"; import { redact } from "${root}/scripts/lib/redact"; loadConfig("rs", ${JSON.stringify(dir)}); console.log(redact("pw Lo4dedOnlyByConfig jwt jwt-Lo4dedOnlyByConfig-0123456789abcdef"));`;
    const r = spawnSync(process.execPath, ["-e", code], { encoding: "utf8", cwd: root });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("pw *** jwt ***\n");
  });
});

test("the redactor registers the stack's secrets itself: a process that never loads a config still masks them", () => {
  const stack = `rz${process.pid}`;
  const file = join(root, "envs", `.secrets.${stack}.env`);
  writeFileSync(file, "POSTGRES_PASSWORD=Only1nTheSecretsFile\nJWT_SECRET_X=jwt-Only1nTheSecretsFile-0123456789\n", {
    mode: 0o600,
  });
  try {
    // A fresh process that imports nothing but the redactor: no loadConfig, no ensureSecrets.
    const code = `import { redact } from "${root}/scripts/lib/redact"; console.log(redact("pw Only1nTheSecretsFile jwt jwt-Only1nTheSecretsFile-0123456789 kept"));`;
    const r = spawnSync(process.execPath, ["-e", code], {
      encoding: "utf8",
      cwd: root,
      env: { ...process.env, STACK: stack },
    });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("pw *** jwt *** kept\n");
  } finally {
    rmSync(file, { force: true });
  }
});

test("temp files of atomic writes (secrets among them) are gitignored", () => {
  const paths = ["envs/.secrets.dev.env.tmp-12345", "clients/acme/.secrets.env.tmp-9", "envs/apps.yaml.tmp-777"];
  const r = spawnSync("git", ["check-ignore", ...paths], { cwd: root, encoding: "utf8" });
  expect(r.stdout.trim().split("\n")).toEqual(paths);
});
