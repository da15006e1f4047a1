/** redact() at its edges (found by make mutation): the 8-character floor, both URL schemes, several occurrences. */
import { describe, expect, test } from "bun:test";
import { redact, registerSecret } from "../../scripts/lib/redact";

describe("redact", () => {
  test("a secret of 8 characters or more is masked everywhere it appears; shorter ones, empty and undefined are not registered", () => {
    registerSecret("Qz8#Lm2v");
    registerSecret("Qz8#Lm2"); // 7: would mask ordinary words
    registerSecret("");
    registerSecret(undefined);
    expect(redact("a=Qz8#Lm2v b=Qz8#Lm2v")).toBe("a=*** b=***");
    expect(redact("Qz8#Lm2 stays")).toBe("Qz8#Lm2 stays");
  });

  test("passwords in postgres:// and postgresql:// URLs, and only the password", () => {
    expect(redact("postgres://app:pw-1@h:5432/db and postgresql://u2:p@ss@h/db")).toBe("postgres://app:***@h:5432/db and postgresql://u2:***@ss@h/db");
    expect(redact("postgres://app@h:5432/db")).toBe("postgres://app@h:5432/db");
  });
});
