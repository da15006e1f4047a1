/** envs/apps.yaml is hand-editable: every field is re-validated on load with new-app's rules, before it reaches nginx or SQL. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { loadApps, registryPath } from "../../scripts/lib/apps";
import { parseConfig } from "../../scripts/lib/config";
import { ToolkitError } from "../../scripts/lib/errors";

const ROOT = join(import.meta.dir, "../..");
const tmp = mkdtempSync(join(tmpdir(), "pgp-rolesec-apps-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
mkdirSync(join(tmp, "envs"));
const cfg = parseConfig(readFileSync(join(ROOT, "envs/test.env"), "utf8"), {
  file: "envs/test.env",
  stack: "rs",
  rootDir: tmp,
  isRoot: false,
});
const good = {
  name: "bookwriter",
  database: "bookwriter_db",
  role: "bookwriter",
  port: 9200,
  domain: "bookwriter.localhost",
  supabase: false,
  created: "2026-01-01T00:00:00Z",
};
const FIX = "fix the entry in envs/apps.rs.yaml by hand (the rules new-app applies) or restore the file from git";

function loadWith(edit: Record<string, unknown>, extra: Record<string, unknown>[] = []): ToolkitError | unknown {
  writeFileSync(registryPath(cfg), YAML.stringify({ apps: [{ ...good, ...edit }, ...extra] }));
  try {
    return loadApps(cfg);
  } catch (e) {
    return e;
  }
}
const failure = (e: unknown) => (e instanceof ToolkitError ? { code: e.code, what: e.message, fix: e.fix } : e);

describe("registry values are re-validated on load", () => {
  test("a valid entry loads unchanged", () => {
    expect(loadWith({})).toEqual([good]);
  });

  test.each([
    [
      "an nginx directive injected in the domain",
      { domain: "x; include /etc/passwd;" },
      `domain: "x; include /etc/passwd;" is not a valid hostname: lowercase letters, digits, dashes and dots, e.g. bookwriter.example.com`,
    ],
    [
      "a newline in the domain",
      { domain: "ok.localhost\n  location / { return 200; }" },
      `domain: "ok.localhost\\n  location / { return 200; }" is not a valid hostname: lowercase letters, digits, dashes and dots, e.g. bookwriter.example.com`,
    ],
    [
      "a brace in the domain",
      { domain: "a}b.localhost" },
      `domain: "a}b.localhost" is not a valid hostname: lowercase letters, digits, dashes and dots, e.g. bookwriter.example.com`,
    ],
    [
      "another app's database (remove would drop it)",
      { database: "orchestrator_ai_production" },
      `database: must be bookwriter_db (got "orchestrator_ai_production")`,
    ],
    ["a role that is not the app's", { role: "postgres" }, `role: must be bookwriter (got "postgres")`],
    ["a port of the stack itself", { port: 16012 }, "port: port 16012 is used by the stack itself (see envs/test.env)"],
    ["a port below 1024", { port: 80 }, "port: Too small: expected number to be >=1024 (got 80)"],
    ["a string port", { port: "9200; x" }, `port: Invalid input: expected number, received string (got "9200; x")`],
    [
      "a bad created stamp",
      { created: "yesterday" },
      `created: must be a UTC time like 2026-11-21T21:45:00Z (got "yesterday")`,
    ],
    ["an unknown key", { upstream: "10.0.0.1:80" }, "upstream: unknown key"],
  ])("%s", (_what, edit, msg) => {
    expect(failure(loadWith(edit))).toEqual({
      code: "BAD_REGISTRY",
      what: `envs/apps.rs.yaml: app "bookwriter": ${msg}`,
      fix: FIX,
    });
  });

  test("an app name new-app would refuse (a reserved role) is refused on load", () => {
    expect(failure(loadWith({ name: "authenticator", database: "authenticator_db", role: "authenticator" }))).toEqual({
      code: "BAD_REGISTRY",
      what: `envs/apps.rs.yaml: app "authenticator": name: authenticator is reserved: it is one of Supabase's roles`,
      fix: FIX,
    });
  });

  test("two apps on one port or one hostname", () => {
    const other = {
      ...good,
      name: "hyperarchy",
      database: "hyperarchy_db",
      role: "hyperarchy",
      domain: "hyperarchy.localhost",
      port: 9100,
    };
    expect(failure(loadWith({}, [{ ...other, port: 9200 }]))).toEqual({
      code: "BAD_REGISTRY",
      what: `envs/apps.rs.yaml: app "bookwriter": port: port 9200 is already used by app hyperarchy`,
      fix: FIX,
    });
    expect(failure(loadWith({}, [{ ...other, domain: "bookwriter.localhost" }]))).toEqual({
      code: "BAD_REGISTRY",
      what: `envs/apps.rs.yaml: app "bookwriter": domain: hostname bookwriter.localhost is also used by app hyperarchy`,
      fix: FIX,
    });
  });
});
