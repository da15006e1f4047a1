/**
 * The one settings engine (scripts/lib/settings/engine.ts) and the validators
 * every table shares (rules.ts): exact messages, order of checks, defaults,
 * "did you mean", and the generated documentation.
 */
import { describe, expect, test } from "bun:test";
import { z } from "zod";
import {
  checkSettings,
  closestKey,
  defineSettings,
  keyMeta,
  levenshtein,
  parseSettings,
  portClash,
  setting,
  settingsDoc,
  SettingsError,
} from "../../scripts/lib/settings/engine";
import {
  bool,
  cidr,
  CLIENT_NAME_RE,
  CLUSTER_NAME_RE,
  CLUSTERS_NAME_RE,
  dnsName,
  ipv4,
  list,
  memberAddresses,
  oneOf,
  port,
  seconds,
  SSH_DEST_RE,
  tunnelId,
  whole,
} from "../../scripts/lib/settings/rules";

const T = defineSettings({
  code: "BAD_T",
  doc: "t/README.md",
  keys: {
    NAME: setting(z.string().regex(/^[a-z]+$/, "must be lowercase"), "e.g. NAME=abc"),
    PORT_A: setting(port(), "first | port <a>", "5000"),
    PORT_B: setting(port(), "second port", "5001"),
    FLAG: setting(bool(), "true or false", ""),
  },
  rules: [
    (v) =>
      portClash(
        [
          ["PORT_A", v.PORT_A],
          ["PORT_B", v.PORT_B],
        ],
        "one port each",
      ),
    (v) => (v.NAME === "bad" ? { key: "NAME", message: "is bad", fix: "not bad" } : undefined),
  ],
});
const err = (raw: Record<string, string>): SettingsError => {
  try {
    checkSettings(T, raw, "t/x.env");
  } catch (e) {
    if (e instanceof SettingsError) return e;
    throw e;
  }
  throw new Error("expected a SettingsError");
};
const summary = (e: SettingsError) => [e.code, e.file, e.key, e.message, e.fix];

describe("checkSettings", () => {
  test("typed values: defaults parsed like written values, written values win", () => {
    expect(checkSettings(T, { NAME: "abc", FLAG: "true" }, "f")).toEqual({
      NAME: "abc",
      PORT_A: 5000,
      PORT_B: 5001,
      FLAG: true,
    });
    expect(checkSettings(T, { NAME: "abc", PORT_A: "7", PORT_B: "8", FLAG: "false" }, "f")).toEqual({
      NAME: "abc",
      PORT_A: 7,
      PORT_B: 8,
      FLAG: false,
    });
  });

  test("an empty default is still parsed: a default the schema refuses is an error naming the key", () => {
    expect(summary(err({ NAME: "abc" }))).toEqual([
      "BAD_T",
      "t/x.env",
      "FLAG",
      't/x.env: FLAG: must be true or false (got "")',
      "true or false",
    ]);
  });

  test("an unknown key comes first, with the nearest known key or the page that lists them", () => {
    expect(summary(err({ NAME: "ABC", NAEM: "x" }))).toEqual([
      "BAD_T",
      "t/x.env",
      "NAEM",
      "t/x.env: NAEM: unknown setting",
      "did you mean NAME?",
    ]);
    expect(err({ NAME: "abc", SOMETHING_ELSE: "x" }).fix).toBe("remove it; known keys are listed in t/README.md");
  });

  test("a missing key without a default, before any value is judged", () => {
    expect(summary(err({ PORT_A: "x" }))).toEqual([
      "BAD_T",
      "t/x.env",
      "NAME",
      "t/x.env: NAME: is missing",
      "add a line NAME=... (e.g. NAME=abc)",
    ]);
  });

  test("the first bad key in table order, with its value and its hint as the fix", () => {
    expect(summary(err({ NAME: "ABC", PORT_A: "0", FLAG: "true" }))).toEqual([
      "BAD_T",
      "t/x.env",
      "NAME",
      't/x.env: NAME: must be lowercase (got "ABC")',
      "e.g. NAME=abc",
    ]);
    expect(summary(err({ NAME: "abc", PORT_B: "x", FLAG: "true" }))).toEqual([
      "BAD_T",
      "t/x.env",
      "PORT_B",
      't/x.env: PORT_B: must be a number (got "x")',
      "second port",
    ]);
  });

  test("rules run after every key passed, in order; the first problem is the error", () => {
    expect(summary(err({ NAME: "bad", PORT_B: "5000", FLAG: "true" }))).toEqual([
      "BAD_T",
      "t/x.env",
      "PORT_B",
      "t/x.env: PORT_B: port 5000 is also used by PORT_A",
      "one port each",
    ]);
    expect(summary(err({ NAME: "bad", FLAG: "true" }))).toEqual([
      "BAD_T",
      "t/x.env",
      "NAME",
      "t/x.env: NAME: is bad",
      "not bad",
    ]);
  });

  test("parseSettings reads dotenv text and hands back the raw pairs too", () => {
    const r = parseSettings(T, "# c\nNAME=abc\nFLAG=true\nPORT_B=6000\n", "f");
    expect(r).toEqual({
      values: { NAME: "abc", PORT_A: 5000, PORT_B: 6000, FLAG: true },
      raw: { NAME: "abc", FLAG: "true", PORT_B: "6000" },
    });
  });

  test("a table without cross-key rules", () => {
    const plain = defineSettings({ code: "C", doc: "d", keys: { A: setting(z.string(), "a") } });
    expect(plain.rules).toEqual([]);
    expect(checkSettings(plain, { A: "x" }, "f")).toEqual({ A: "x" });
  });

  test("a schema instance declared for two keys is a programming error", () => {
    const s = z.string();
    setting(s, "one");
    expect(() => setting(s, "two")).toThrow(
      'settings: a schema instance is declared twice (hint "two"); build each key\'s schema afresh',
    );
    expect(keyMeta(s)).toEqual({ hint: "one", default: undefined });
    expect(keyMeta(z.string())).toEqual({ hint: "" });
  });
});

describe("did you mean", () => {
  test("levenshtein", () => {
    expect([
      levenshtein("", ""),
      levenshtein("", "abc"),
      levenshtein("a", ""),
      levenshtein("abc", "abc"),
      levenshtein("kitten", "sitting"),
      levenshtein("flaw", "lawn"),
      levenshtein("ab", "ba"),
    ]).toEqual([0, 3, 1, 0, 3, 2, 2]);
  });
  test("nearest within 3 edits, the first listed on a tie, none beyond", () => {
    expect(closestKey("PG_PORTXYZ", ["PG_PORT", "API_PORT"])).toBe("PG_PORT");
    expect(closestKey("PG_PORTWXYZ", ["PG_PORT"])).toBeUndefined();
    expect(closestKey("AB", ["AC", "AD"])).toBe("AC");
    expect(closestKey("AD", ["AC", "AD"])).toBe("AD");
    expect(closestKey("X", [])).toBeUndefined();
  });
});

describe("portClash", () => {
  test("names the second key that repeats a port", () => {
    expect(
      portClash(
        [
          ["A", 1],
          ["B", 2],
          ["C", 1],
        ],
        "fix",
      ),
    ).toEqual({ key: "C", message: "port 1 is also used by A", fix: "fix" });
    expect(
      portClash(
        [
          ["A", 1],
          ["B", 2],
        ],
        "fix",
      ),
    ).toBeUndefined();
  });
});

describe("settingsDoc", () => {
  test("one row per key, in table order: required, (empty) or the default; | and < escaped", () => {
    expect(settingsDoc(T)).toBe(
      [
        "| key | default | meaning, and the fix for a bad value |",
        "|---|---|---|",
        "| `NAME` | required | e.g. NAME=abc |",
        "| `PORT_A` | `5000` | first \\| port \\<a> |",
        "| `PORT_B` | `5001` | second port |",
        "| `FLAG` | (empty) | true or false |",
        "",
      ].join("\n"),
    );
  });
});

describe("shared validators", () => {
  const msg = (s: z.ZodType, v: string) => {
    const r = s.safeParse(v);
    return r.success ? "ok" : r.error.issues[0]?.message;
  };
  test("ipv4: four parts, each 0-255", () => {
    expect(["10.0.0.255", "256.0.0.1", "10.0.0", "a.b.c.d", "1.2.3.4 "].map((v) => msg(ipv4(), v))).toEqual([
      "ok",
      "each part of an IPv4 address must be 0-255",
      "must be an IPv4 address like 127.0.0.11",
      "must be an IPv4 address like 127.0.0.11",
      "must be an IPv4 address like 127.0.0.11",
    ]);
  });
  test("cidr: parts 0-255, prefix 0-32", () => {
    expect(["10.0.0.0/8", "0.0.0.0/0", "10.0.0.0/33", "10.0.0.256/8", "10.0.0.0"].map((v) => msg(cidr(), v))).toEqual([
      "ok",
      "ok",
      "each part of an IPv4 CIDR must be 0-255, the prefix 0-32",
      "each part of an IPv4 CIDR must be 0-255, the prefix 0-32",
      "must be an IPv4 CIDR like 127.0.0.0/8",
    ]);
  });
  test("port and whole numbers name their unit and bounds", () => {
    expect(["1", "65535", "0", "65536", "x", "1.5"].map((v) => msg(port(), v))).toEqual([
      "ok",
      "ok",
      "must be 1-65535",
      "must be 1-65535",
      "must be a number",
      "must be a whole number",
    ]);
    expect(["4", "x", "2.5"].map((v) => msg(seconds(5), v))).toEqual([
      "must be at least 5",
      "must be a number of seconds",
      "must be a whole number of seconds",
    ]);
    expect(["-1", "0", "3", "4"].map((v) => msg(whole(0, { max: 3 }), v))).toEqual([
      "must be 0 or more",
      "ok",
      "ok",
      "must be at most 3",
    ]);
    expect(whole(1, { max: 3 }).parse("3")).toBe(3);
  });
  test("bool, oneOf, list, member addresses, DNS names", () => {
    expect([bool().parse("true"), bool().parse("false"), msg(bool(), "yes")]).toEqual([
      true,
      false,
      "must be true or false",
    ]);
    expect([msg(oneOf(["a", "b", "c"]), "d"), msg(oneOf(["a", "b"]), "d"), msg(oneOf(["a"]), "d")]).toEqual([
      "must be a, b or c",
      "must be a or b",
      "must be a",
    ]);
    expect(list(z.string()).parse(" a, b ,,c ")).toEqual(["a", "b", "c"]);
    expect(memberAddresses().parse("10.0.0.1, 10.0.0.2,10.0.0.3")).toEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    expect([
      msg(memberAddresses(), "10.0.0.1,10.0.0.2"),
      msg(memberAddresses(), "10.0.0.1,10.0.0.1,10.0.0.3"),
      msg(memberAddresses(), "10.0.0.1,10.0.0.2,10.0.0.300"),
    ]).toEqual([
      "must list exactly 3 addresses",
      "addresses must differ",
      "each part of an IPv4 address must be 0-255",
    ]);
    expect([
      msg(dnsName("x.y"), "a.b"),
      msg(dnsName("x.y"), ""),
      msg(dnsName("x.y", true), ""),
      msg(dnsName("x.y", true), "nodot"),
    ]).toEqual(["ok", "must be a DNS name like x.y", "ok", "must be a DNS name like x.y, or empty"]);
  });
  test("names, ssh destinations, CIDR prefixes, DNS names and tunnel ids: anchored at both ends", () => {
    const names: [RegExp, string[], string[]][] = [
      [CLUSTER_NAME_RE, ["pgplatform-dev", "ab"], ["ab!", "1ab", "a", "Ab"]],
      [CLIENT_NAME_RE, ["acme", "a1"], ["ab!", "1ab", "a-b"]],
      [CLUSTERS_NAME_RE, ["crm", "c2"], ["ab!", "1ab", "a-b"]],
      [
        SSH_DEST_RE,
        ["ops@host", "host", "h", "a@b", "ops.x-1@h-1.example", "_svc@10.0.0.1"],
        ["@host", "host x", "x y@host", "Ops@host", "ops@ho st", "ops@host!"],
      ],
    ];
    for (const [re, good, bad] of names)
      expect([good.map((v) => re.test(v)), bad.map((v) => re.test(v))]).toEqual([
        good.map(() => true),
        bad.map(() => false),
      ]);
    expect(["10.0.0.1/32", "x10.0.0.0/8", "10.0.0.0/8x"].map((v) => msg(cidr(), v))).toEqual([
      "ok",
      "must be an IPv4 CIDR like 127.0.0.0/8",
      "must be an IPv4 CIDR like 127.0.0.0/8",
    ]);
    const label = "a".repeat(49);
    const long = [label, label, label, label, "com"].join("."); // 203 characters, each label valid
    expect(["a.b.c", "-a.b", "a.b-", long, long.slice(3)].map((v) => msg(dnsName("x.y"), v))).toEqual([
      "ok",
      "must be a DNS name like x.y",
      "must be a DNS name like x.y",
      "must be a DNS name like x.y",
      "ok",
    ]);
    expect(["", "t-acme", "T_1", "-t", "t!", "a".repeat(64), "a".repeat(65)].map((v) => msg(tunnelId(), v))).toEqual([
      "ok",
      "ok",
      "ok",
      ...Array(2).fill("must be the tunnel's UUID or name"),
      "ok",
      "must be the tunnel's UUID or name",
    ]);
  });
});
