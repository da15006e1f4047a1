/**
 * Each redaction rule's edge (found by make mutation on scripts/lib/redact.ts):
 * spacing around `=` and `Basic`, quoted values, a URL password with nothing
 * after the `@`, where a registered value is masked inside a word and where
 * only as a whole token, and every occurrence of it.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { redact, registerSecret, registerStackSecrets } from "../../scripts/lib/redact";

describe("where a password goes, unregistered", () => {
  test.each([
    ["spaces around libpq's =", "user=app password = Zq9-unreg dbname=x", "user=app password = *** dbname=x"],
    ["a single-quoted environment value with spaces", "PGPASSWORD='Zq9 un reg' next", "PGPASSWORD=*** next"],
    [
      "a URL whose authority ends right after the @",
      "url postgres://app:Zq9-unreg@ end",
      "url postgres://app:***@ end",
    ],
    ["Authorization:Basic without a space", "Authorization:Basic b3BzOlpxOQ== sent", "Authorization:Basic *** sent"],
    [
      "Authorization: Basic with two spaces",
      "Authorization: Basic  b3BzOlpxOQ== sent",
      "Authorization: Basic  *** sent",
    ],
  ])("%s", (_what, input, masked) => {
    expect(redact(input)).toBe(masked);
  });
});

describe("registered values", () => {
  test("an empty or missing value registers nothing (it would mask every word boundary)", () => {
    registerSecret("");
    registerSecret(undefined);
    expect(redact("x - y, z")).toBe("x - y, z");
  });

  test("four characters or more: masked inside a word too", () => {
    registerSecret("Ab1Z");
    registerSecret("Embedded9Secret");
    expect(redact("xAb1Zx abcEmbedded9Secretdef")).toBe("x***x abc***def");
  });

  test("shorter: masked only as a whole token, every time, its characters taken literally", () => {
    registerSecret("Q.W");
    expect(redact("Q.W and Q.W, QxW, aQ.Wb")).toBe("*** and ***, QxW, aQ.Wb");
  });
});

describe("the stack's secrets file, registered by the redactor itself", () => {
  const root = mkdtempSync(join(tmpdir(), "pgp-redact-stack-"));
  mkdirSync(join(root, "envs"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const put = (name: string, body: string) => writeFileSync(join(root, "envs", name), body, { mode: 0o600 });

  test("each stack's file is registered, one after the other", () => {
    put(".secrets.ra.env", "POSTGRES_PASSWORD=Ra-stack-secret-1\n");
    put(".secrets.rb.env", "POSTGRES_PASSWORD=Rb-stack-secret-1\n");
    registerStackSecrets("ra", root);
    registerStackSecrets("rb", root);
    expect(redact("Ra-stack-secret-1 Rb-stack-secret-1")).toBe("*** ***");
  });

  test("a stack's file is read once, not again for the same stack (redact() asks on every line)", () => {
    put(".secrets.rc.env", "POSTGRES_PASSWORD=Rc-stack-secret-1\n");
    registerStackSecrets("rc", root);
    put(".secrets.rc.env", "POSTGRES_PASSWORD=Rc-stack-secret-2\n");
    registerStackSecrets("rc", root);
    expect(redact("Rc-stack-secret-1 Rc-stack-secret-2")).toBe("*** Rc-stack-secret-2");
  });

  test("without STACK, the dev stack's file", () => {
    const saved = process.env.STACK;
    delete process.env.STACK;
    try {
      put(".secrets.dev.env", "POSTGRES_PASSWORD=Dev-default-secret-1\n");
      registerStackSecrets(undefined, root);
      expect(redact("pw Dev-default-secret-1")).toBe("pw ***");
    } finally {
      if (saved !== undefined) process.env.STACK = saved;
    }
  });

  test("a stack name that is not one (a path around the envs folder) reads nothing", () => {
    put("rx.env", "X=Traversal-secret-1\n"); // what ".secrets.Bad/../rx.env" names
    put("evil.env", "X=Traversal-secret-2\n"); // what ".secrets.rx/../evil.env" names
    registerStackSecrets("Bad/../rx", root);
    registerStackSecrets("rx/../evil", root);
    expect(redact("Traversal-secret-1 Traversal-secret-2")).toBe("Traversal-secret-1 Traversal-secret-2");
  });
});
