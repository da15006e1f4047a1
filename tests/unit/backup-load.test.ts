import { describe, expect, test } from "bun:test";
import { planData } from "../../scripts/lib/backup/load";
import { parseToc } from "../../scripts/lib/migrate/toc";

// `pg_restore -l` lines as PostgreSQL 15 prints them (names with spaces, a newline printed as a space).
const LIST = [
  ";",
  "; Selected TOC Entries:",
  "3380; 0 16390 TABLE DATA public accounts app_a",
  "3381; 0 16395 TABLE DATA public my table app b",
  "3382; 0 16399 TABLE DATA audit log postgres",
  "3383; 0 0 SEQUENCE SET public accounts_id_seq app_a",
  "3384; 0 0 BLOBS - BLOBS ",
  "3385; 0 16400 MATERIALIZED VIEW DATA public mv app_a",
  "218; 1259 16390 TABLE public accounts app_a",
].join("\n");

const TABLES = [
  { label: "public accounts", owner: "app_a", ownerIsSuper: false },
  { label: "public my table", owner: "app b", ownerIsSuper: false },
  { label: "audit log", owner: "postgres", ownerIsSuper: true },
];

describe("planData: who loads each table's rows", () => {
  test("rows load as the table's owner; superuser-owned tables, sequence positions and large objects as the superuser; nothing else is data", () => {
    const p = planData(parseToc(LIST), TABLES);
    expect([...p.byOwner].map(([o, es]) => [o, es.map((e) => e.id)])).toEqual([
      ["app_a", [3380]],
      ["app b", [3381]],
    ]);
    expect(p.asSuperuser.map((e) => e.id)).toEqual([3382, 3383, 3384]);
  });

  test("a name and owner whose printed forms collide are refused, never guessed", () => {
    // "public t a b": table "t a" owned by "b", or table "t" owned by "a b"?
    const list = "10; 0 1 TABLE DATA public t a b";
    const tables = [
      { label: "public t a", owner: "b", ownerIsSuper: true },
      { label: "public t", owner: "a b", ownerIsSuper: false },
    ];
    expect(() => planData(parseToc(list), tables)).toThrow(
      /cannot tell which role owns the rows of "public t a b" \(2 tables match/,
    );
  });

  test("a newline in a name matches the space pg_restore prints for it", () => {
    const p = planData(parseToc("11; 0 2 TABLE DATA public two lines app_a"), [
      { label: "public two\nlines", owner: "app_a", ownerIsSuper: false },
    ]);
    expect([...p.byOwner.keys()]).toEqual(["app_a"]);
  });

  test("a data entry whose table is missing after the schema step is refused", () => {
    expect(() => planData(parseToc("12; 0 3 TABLE DATA public gone app_a"), TABLES)).toThrow(
      /"public gone app_a" \(0 tables match/,
    );
  });
});
