/** The host's pg_dump older than the server it dumps is refused (issue 21's run: 15.18 against the image's 15.20). */
import { describe, expect, test } from "bun:test";
import { clientTooOld, parsePgVersion } from "../../scripts/lib/backup/client-version";

describe("pg_dump's version against the server's", () => {
  test("read from pg_dump --version and SHOW server_version", () => {
    expect(parsePgVersion("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)")).toEqual([15, 18]);
    expect(parsePgVersion("15.20 (Debian 15.20-0+deb12u1)")).toEqual([15, 20]);
  });
  test("an older point release is refused, naming both", () => {
    expect(clientTooOld("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", "15.20 (Debian 15.20-0+deb12u1)")).toBe(
      "pg_dump here is PostgreSQL 15.18, the server 15.20: an older client's dump may not restore",
    );
  });
  test("the same or a later client is fine (natively they are one package)", () => {
    expect(clientTooOld("pg_dump (PostgreSQL) 15.18", "15.18 (Debian 15.18-0+deb12u1)")).toBeUndefined();
    expect(clientTooOld("pg_dump (PostgreSQL) 16.4", "15.20")).toBeUndefined();
    expect(clientTooOld("pg_dump (PostgreSQL) 15.20", "15.18")).toBeUndefined();
  });
});
