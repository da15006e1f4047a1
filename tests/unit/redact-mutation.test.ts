/**
 * Each redaction rule's edge (found by make mutation on scripts/lib/redact.ts):
 * spacing around `=` and `Basic`, quoted values, a URL password with nothing
 * after the `@`, where a registered value is masked inside a word and where
 * only as a whole token, and every occurrence of it.
 */
import { describe, expect, test } from "bun:test";
import { redact, registerSecret } from "../../scripts/lib/redact";

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
