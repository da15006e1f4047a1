import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig, ROOT_DIR } from "../../scripts/lib/config";
import { alertArgv } from "../../scripts/lib/backup/alert";
import { backupStamp, serverErrorLines, spaceProblem, stampToDate } from "../../scripts/lib/backup/common";
import { aclAndCommentSql, compareDatabaseProps, createDatabaseSql } from "../../scripts/lib/backup/dbprops";
import { compareTables, tableChecksumSql } from "../../scripts/lib/checksum";
import { cronDFile, cronLine, mergeCrontab, cronTag } from "../../scripts/lib/backup/cron";
import { chooseSource } from "../../scripts/lib/backup/logical";
import { compareCounts, compareFiles } from "../../scripts/lib/backup/manifest";
import {
  archiveCommand,
  chooseBackupType,
  pitrWindow,
  renderPgbackrestConf,
} from "../../scripts/lib/backup/pgbackrest";
import { parsePitrTarget } from "../../scripts/lib/backup/pitr";
import { isoWeekKey, planRetention, type RetentionItem } from "../../scripts/lib/backup/retention";
import { retargetDatabaseSql } from "../../scripts/lib/backup/restore";

const cfg = parseConfig(readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8"), {
  file: "envs/test.env",
  stack: "test",
  isRoot: false,
});

describe("retention", () => {
  const at = (iso: string, good = true): RetentionItem => ({ id: iso, time: new Date(iso), good });

  test("keeps the newest good backup per day for N days and per ISO week for M weeks; deletes the rest", () => {
    const items = [
      at("2026-11-21T02:00:00Z"),
      at("2026-11-20T14:00:00Z"), // same day as the next: only the newest of the day is kept
      at("2026-11-20T02:00:00Z"),
      at("2026-11-19T02:00:00Z"),
      at("2026-11-12T02:00:00Z"), // week 46
      at("2026-11-05T02:00:00Z"), // week 45
      at("2026-10-29T02:00:00Z"), // week 44: beyond 2 weeks
    ];
    const plan = planRetention(items, { daily: 2, weekly: 2 }, new Date("2026-11-22T12:00:00Z"));
    expect(plan.keep.map((k) => k.id)).toEqual([
      "2026-11-21T02:00:00Z",
      "2026-11-20T14:00:00Z",
      "2026-11-12T02:00:00Z",
    ]);
    expect(plan.delete).toEqual([
      "2026-11-20T02:00:00Z",
      "2026-11-19T02:00:00Z",
      "2026-11-05T02:00:00Z",
      "2026-10-29T02:00:00Z",
    ]);
    expect(plan.keep[0]!.reasons).toContain("newest good backup");
  });

  test("never deletes the newest good backup, even when newer ones failed", () => {
    const items = [
      at("2026-11-21T02:00:00Z", false),
      at("2026-11-20T02:00:00Z", false),
      at("2026-11-01T02:00:00Z", true),
      at("2026-10-01T02:00:00Z", false),
    ];
    const plan = planRetention(items, { daily: 1, weekly: 0 }, new Date("2026-11-22T12:00:00Z"));
    expect(plan.keep.map((k) => k.id)).toEqual([
      "2026-11-21T02:00:00Z",
      "2026-11-20T02:00:00Z",
      "2026-11-01T02:00:00Z",
    ]);
    expect(plan.delete).toEqual(["2026-10-01T02:00:00Z"]);
  });

  test("a same-day safety backup survives the next run: every good backup is kept for 24 h, then the daily rule applies", () => {
    const items = [at("2026-11-21T02:15:00Z"), at("2026-11-21T01:00:00Z"), at("2026-11-20T02:15:00Z")];
    // The nightly run at 02:15 right after a 01:00 safety backup: both of today's are kept.
    const next = planRetention(items, { daily: 1, weekly: 0 }, new Date("2026-11-21T02:20:00Z"));
    expect(next.delete).toEqual(["2026-11-20T02:15:00Z"]);
    expect(next.keep.find((k) => k.id === "2026-11-21T01:00:00Z")!.reasons).toEqual(["younger than 24 h"]);
    // A day later the safety backup is not the newest of its day any more: it goes.
    const later = planRetention(items, { daily: 1, weekly: 0 }, new Date("2026-11-22T02:20:00Z"));
    expect(later.delete).toEqual(["2026-11-21T01:00:00Z", "2026-11-20T02:15:00Z"]);
    // Not verified: the 24 h grace is for good backups only.
    const bad = planRetention(
      [at("2026-11-21T02:15:00Z"), at("2026-11-21T01:00:00Z", false)],
      { daily: 1, weekly: 0 },
      new Date("2026-11-21T02:20:00Z"),
    );
    expect(bad.delete).toEqual(["2026-11-21T01:00:00Z"]);
  });

  test("with no good backup nothing is deleted", () => {
    const plan = planRetention([at("2026-11-21T02:00:00Z", false), at("2026-11-20T02:00:00Z", false)], {
      daily: 1,
      weekly: 1,
    });
    expect(plan.delete).toEqual([]);
  });

  // `make backup ARGS='--db orchestrator_ai_dev'` deleted the only backup of brk2_db, taken minutes
  // before: the newest good backup of the day was kept whatever databases it held.
  test("retention is per database: a backup of one database never supersedes another database's backup", () => {
    const of = (iso: string, databases: string[], good = true): RetentionItem => ({
      id: iso,
      time: new Date(iso),
      good,
      databases,
    });
    const items = [
      of("2026-11-21T10:05:00Z", ["orchestrator_ai_dev"]),
      of("2026-11-21T10:00:00Z", ["brk2_db"]),
      of("2026-11-21T09:00:00Z", ["brk2_db", "orchestrator_ai_dev"]), // both have newer ones today: deleted
      of("2026-11-21T08:00:00Z", ["other_db"], false), // failed, and other_db has no good backup: evidence, kept
    ];
    const plan = planRetention(items, { daily: 1, weekly: 1 });
    expect(plan.keep).toEqual([
      {
        id: "2026-11-21T10:05:00Z",
        reasons: [
          "orchestrator_ai_dev: newest good backup",
          "orchestrator_ai_dev: daily 2026-11-21",
          "orchestrator_ai_dev: weekly 2026-W47",
        ],
      },
      {
        id: "2026-11-21T10:00:00Z",
        reasons: ["brk2_db: newest good backup", "brk2_db: daily 2026-11-21", "brk2_db: weekly 2026-W47"],
      },
      { id: "2026-11-21T08:00:00Z", reasons: ["other_db: not verified, newer than the newest good backup"] },
    ]);
    expect(plan.delete).toEqual(["2026-11-21T09:00:00Z"]);
  });

  test("ISO weeks start on Monday and belong to the year of their Thursday", () => {
    expect(isoWeekKey(new Date("2026-11-23T00:00:00Z"))).toBe("2026-W48"); // Monday
    expect(isoWeekKey(new Date("2026-11-22T23:59:00Z"))).toBe("2026-W47"); // Sunday
    expect(isoWeekKey(new Date("2027-01-01T12:00:00Z"))).toBe("2026-W53");
  });
});

describe("manifest comparison", () => {
  const f = (path: string, size: number, sha256: string) => ({ path, size, sha256 });

  test("names the file whose sha256, size or presence differs", () => {
    const expected = [f("globals.sql", 10, "aa"), f("db/x/3344.dat.gz", 20, "bb"), f("db/x/toc.dat", 5, "cc")];
    const actual = [f("globals.sql", 10, "aa"), f("db/x/3344.dat.gz", 20, "XX"), f("extra.txt", 1, "dd")];
    expect(compareFiles(expected, actual)).toEqual([
      "db/x/3344.dat.gz: sha256 mismatch (file changed or corrupted)",
      "db/x/toc.dat: missing",
      "extra.txt: not in the manifest",
    ]);
    expect(compareFiles(expected, expected)).toEqual([]);
    expect(compareFiles([f("a", 1, "x")], [f("a", 2, "x")])[0]).toContain("size 2 bytes, manifest says 1");
  });

  test("row counts: a missing table and a wrong count are both reported", () => {
    const t = (table: string, rows: number) => ({ schema: "public", table, rows });
    expect(compareCounts("db", [t("a", 5), t("b", 3)], [t("a", 4)])).toEqual([
      "db: table public.a has 4 rows after restore, manifest says 5",
      "db: table public.b missing after restore",
    ]);
    expect(compareCounts("db", [t("a", 5)], [t("a", 5), t("new", 1)])).toEqual([]);
  });
});

describe("cron", () => {
  test("the line uses absolute paths, names the stack, and appends to a log", () => {
    const line = cronLine(cfg, "/opt/bun/bin/bun");
    expect(line).toBe(
      `15 2 * * * cd ${ROOT_DIR} && STACK=test /opt/bun/bin/bun ${ROOT_DIR}/scripts/backup.ts >> ${ROOT_DIR}/.state/test/logs/backup-cron.log 2>&1 # pgplatform backup test`,
    );
    expect(cronDFile(cfg, "/b", "root")).toContain("\nPATH=/usr/bin:/bin\n15 2 * * * root cd ");
  });

  test("installing twice replaces our line and keeps the others", () => {
    const tag = cronTag(cfg);
    const once = mergeCrontab("0 1 * * * other-job\n", "A " + tag, tag);
    expect(mergeCrontab(once, "B " + tag, tag)).toBe(`0 1 * * * other-job\nB ${tag}\n`);
  });
});

describe("pgBackRest", () => {
  test("archive_command in patroni.yml.tmpl is the one ensureArchiving PATCHes", () => {
    const tmpl = readFileSync(join(ROOT_DIR, "patroni/patroni.yml.tmpl"), "utf8").replace(
      /\$\{CLUSTER_NAME\}/g,
      cfg.clusterName,
    );
    const line = /archive_command: '(.*)'$/m.exec(tmpl)?.[1];
    expect(line).toBe(archiveCommand(cfg));
    expect(/archive_timeout: (\d+)/.exec(tmpl)?.[1]).toBe(String(cfg.backup.archiveTimeout));
  });

  test("config lists every member's data dir and socket, and the repo", () => {
    const conf = renderPgbackrestConf(cfg);
    for (const [i, m] of cfg.members.entries()) {
      expect(conf).toContain(`pg${i + 1}-path=${m.dataDir}\n`);
      expect(conf).toContain(`pg${i + 1}-socket-path=${m.socketDir}\n`);
    }
    expect(conf).toContain(`repo1-path=${cfg.backup.repoDir}\n`);
    expect(conf).toContain(`[${cfg.clusterName}]`);
  });

  test("full when none or the newest full is old enough, differential otherwise", () => {
    const now = new Date("2026-11-21T02:00:00Z");
    const s = (iso: string) => new Date(iso).getTime() / 1000;
    expect(chooseBackupType([], now, 7)).toBe("full");
    expect(
      chooseBackupType(
        [
          { type: "full", start: s("2026-11-18T02:00:00Z") },
          { type: "diff", start: s("2026-11-20T02:00:00Z") },
        ],
        now,
        7,
      ),
    ).toBe("diff");
    expect(chooseBackupType([{ type: "full", start: s("2026-11-14T02:00:00Z") }], now, 7)).toBe("full");
  });
});

describe("source member", () => {
  test("prefers a streaming replica with the least lag, an async one before the sync standby; falls back to the leader", () => {
    const m = (name: string, role: string, state: string, lag: number | string = 0) => ({
      name,
      role,
      state,
      host: "h",
      port: 1,
      lag,
    });
    expect(
      chooseSource([
        m("pg1", "leader", "running"),
        m("pg2", "sync_standby", "streaming", 0),
        m("pg3", "replica", "streaming", 0),
      ])?.name,
    ).toBe("pg3");
    expect(
      chooseSource([
        m("pg1", "leader", "running"),
        m("pg2", "sync_standby", "streaming", 0),
        m("pg3", "replica", "streaming", 99_000_000),
      ])?.name,
    ).toBe("pg2");
    expect(
      chooseSource([
        m("pg1", "leader", "running"),
        m("pg2", "replica", "stopped"),
        m("pg3", "replica", "starting", "unknown"),
      ])?.name,
    ).toBe("pg1");
  });
});

describe("inputs", () => {
  test("PITR target needs an offset and must be in the past", () => {
    const now = new Date("2026-11-21T22:00:00Z");
    expect(parsePitrTarget("2026-11-21 14:05:00+00", now).toISOString()).toBe("2026-11-21T14:05:00.000Z");
    expect(parsePitrTarget("2026-11-21T15:05:00.5+0100", now).toISOString()).toBe("2026-11-21T14:05:00.500Z");
    expect(() => parsePitrTarget("2026-11-21 14:05:00", now)).toThrow(/offset/);
    expect(() => parsePitrTarget("2026-11-22 14:05:00Z", now)).toThrow(/future/);
  });

  test("disk space check names both figures", () => {
    expect(spaceProblem("x", "/d", 100, 200)).toBeUndefined();
    expect(spaceProblem("x", "/d", 2 * 1024 ** 3, 1024 ** 3)).toBe("x: /d has 1.0 GB free, needs about 2.0 GB");
  });

  test("backup ids sort by time and parse back", () => {
    const d = new Date("2026-11-21T02:03:04.567Z");
    expect(backupStamp(d)).toBe("20261121T020304Z");
    expect(stampToDate("20261121T020304Z")!.toISOString()).toBe("2026-11-21T02:03:04.000Z");
  });

  test("alert command is an argv, never a shell line", () => {
    expect(alertArgv("  /usr/bin/logger -t pgplatform  ")).toEqual(["/usr/bin/logger", "-t", "pgplatform"]);
    expect(alertArgv("echo $(rm -rf /)")).toEqual(["echo", "$(rm", "-rf", "/)"]);
  });

  test("database-level SQL is re-targeted at the restore's temporary name", () => {
    const sql = [
      "--",
      "CREATE DATABASE orchestrator_ai_dev WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';",
      "ALTER DATABASE orchestrator_ai_dev OWNER TO postgres;",
      "\\connect orchestrator_ai_dev",
      "SET statement_timeout = 0;",
      "ALTER DATABASE orchestrator_ai_dev SET \"app.settings.jwt_exp\" TO '3600';",
      "GRANT CONNECT ON DATABASE orchestrator_ai_dev TO anon;",
      "ALTER DATABASE orchestrator_ai_dev_other OWNER TO x;",
    ].join("\n");
    expect(retargetDatabaseSql(sql, "orchestrator_ai_dev", "tmp_db")).toBe(
      [
        `CREATE DATABASE "tmp_db" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';`,
        `ALTER DATABASE "tmp_db" OWNER TO postgres;`,
        `ALTER DATABASE "tmp_db" SET "app.settings.jwt_exp" TO '3600';`,
        `GRANT CONNECT ON DATABASE "tmp_db" TO anon;`,
        "ALTER DATABASE orchestrator_ai_dev_other OWNER TO x;",
      ].join("\n"),
    );
  });
});

describe("content checksums and database properties (pure parts)", () => {
  test("a table is read ONLY itself, a partitioned one as its tree, columns in name order, quoted", () => {
    expect(tableChecksumSql({ schema: 'we"ird', table: "t\nx", kind: "table", columns: ["a", 'b"c'] })).toBe(
      `SELECT count(*)::bigint AS n, coalesce(sum(hashtextextended(ROW(x."a", x."b""c")::text, 0)), 0)::text AS h FROM ONLY "we""ird"."t\nx" AS x`,
    );
    expect(tableChecksumSql({ schema: "s", table: "p", kind: "partitioned", columns: ["id"] })).toBe(
      `SELECT count(*)::bigint AS n, coalesce(sum(hashtextextended(ROW(x."id")::text, 0)), 0)::text AS h FROM "s"."p" AS x`,
    );
  });

  test("same count, other content fails; partitions compare through their root; unlisted tables are named", () => {
    const t = (table: string, rows: number, checksum?: string, extra: object = {}) => ({
      schema: "public",
      table,
      rows,
      ...(checksum ? { checksum } : {}),
      ...extra,
    });
    expect(compareTables("db", [t("a", 5, "11")], [t("a", 5, "12")])).toEqual([
      "db: table public.a: same row count (5) but the content differs (checksum 12, manifest says 11)",
    ]);
    expect(compareTables("db", [t("a", 5, "11")], [t("a", 5, "11")])).toEqual([]);
    const leaf = { kind: "partition", partitionOf: "public.p" };
    expect(
      compareTables(
        "db",
        [t("p", 9, "1", { kind: "partitioned" }), t("p0", 4, "2", leaf)],
        [t("p", 9, "1", { kind: "partitioned" }), t("p0", 6, "3", leaf)],
      ),
    ).toEqual([]);
    expect(compareTables("db", [t("p0", 4, "2", leaf)], [])).toEqual(["db: partition public.p0 missing after restore"]);
    expect(compareCounts("db", [t("a", 5, "1")], [t("a", 5, "1"), t("new", 1, "2")])).toEqual([
      "db: table public.new after restore is not in the manifest",
    ]);
  });

  const props = {
    owner: "app_owner",
    acl: [
      { grantee: "PUBLIC", grantor: "app_owner", privilege: "TEMPORARY", grantable: false },
      { grantee: "app", grantor: "app_owner", privilege: "CONNECT", grantable: true },
      { grantee: "helper", grantor: "app", privilege: "CONNECT", grantable: false },
    ],
    connLimit: 42,
    allowConnections: true,
    comment: "it's\nmine",
    settings: ["app.settings.jwt_exp=3600"],
    roleSettings: [{ role: "anon", settings: ["statement_timeout=7s"] }],
    create: {
      encoding: "UTF8",
      collate: "C.UTF-8",
      ctype: "C.UTF-8",
      localeProvider: "libc" as const,
      iculocale: null,
    },
  };

  test("ACL and comment statements: revoke what is there, grant as the recorded grantor, comment as a literal", () => {
    expect(
      aclAndCommentSql("db x", props, [
        { grantee: "PUBLIC", grantor: "o", privilege: "CONNECT", grantable: false },
        { grantee: "o", grantor: "o", privilege: "CREATE", grantable: false },
        { grantee: "o", grantor: "o", privilege: "CONNECT", grantable: false },
      ]),
    ).toEqual([
      'REVOKE ALL ON DATABASE "db x" FROM PUBLIC CASCADE',
      'REVOKE ALL ON DATABASE "db x" FROM "o" CASCADE',
      'GRANT TEMPORARY ON DATABASE "db x" TO PUBLIC',
      'GRANT CONNECT ON DATABASE "db x" TO "app" WITH GRANT OPTION',
      'SET ROLE "app"; GRANT CONNECT ON DATABASE "db x" TO "helper"; RESET ROLE',
      `COMMENT ON DATABASE "db x" IS 'it''s\nmine'`,
    ]);
    expect(createDatabaseSql("t", props)).toBe(
      `CREATE DATABASE "t" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LC_COLLATE = 'C.UTF-8' LC_CTYPE = 'C.UTF-8' OWNER = "app_owner" CONNECTION LIMIT = 42`,
    );
  });

  test("property differences are named; setting values (secrets) are never printed", () => {
    const got = {
      ...props,
      acl: [...props.acl, { grantee: "PUBLIC", grantor: "app_owner", privilege: "CONNECT", grantable: false }],
      settings: ["app.settings.jwt_secret=s3cret"],
      comment: null,
      connLimit: -1,
    };
    const p = compareDatabaseProps("db", props, got);
    expect(p).toEqual([
      "db: access rules differ from the backup's; extra: PUBLIC:CONNECT by app_owner",
      "db: connection limit -1, the backup says 42",
      'db: comment null, the backup says "it\'s\\nmine"',
      "db: database settings differ from the backup's (restored: app.settings.jwt_secret; backup: app.settings.jwt_exp)",
    ]);
    expect(p.join(" ")).not.toContain("s3cret");
    expect(compareDatabaseProps("db", props, props)).toEqual([]);
    expect(compareDatabaseProps("db", props, undefined)).toEqual(["db: database missing after restore"]);
  });

  test("a failed pg_restore shows the server's ERROR line, its context and the command, not just the statement's tail", () => {
    const stderr = [
      "pg_restore: error: could not execute query: ERROR:  function squash_ws(text) does not exist",
      "LINE 1:  SELECT lower(replace(squash_ws(t), ' ', '-')) ",
      "                              ^",
      "HINT:  No function matches the given name and argument types.",
      'CONTEXT:  SQL function "slugify" during inlining',
      "Command was: CREATE TABLE public.articles (",
      "    id integer NOT NULL,",
      "    slug text GENERATED ALWAYS AS (public.slugify(title)) STORED",
      ");",
    ].join("\n");
    expect(serverErrorLines(stderr)).toEqual([
      "pg_restore: error: could not execute query: ERROR:  function squash_ws(text) does not exist",
      "HINT:  No function matches the given name and argument types.",
      'CONTEXT:  SQL function "slugify" during inlining',
      "Command was: CREATE TABLE public.articles (",
    ]);
    expect(serverErrorLines("something odd\nlast line\n")).toEqual(["something odd", "last line"]);
  });
});

describe("backup-list", () => {
  test("the PITR window is a time range: end of the oldest backup .. last archived WAL (or the newest backup's end)", () => {
    const b = (start: number, stop: number) => ({
      label: "x",
      type: "full" as const,
      start,
      stop,
      size: 0,
      repoSize: 0,
      walStart: "000000010000000000000003",
      walStop: "000000010000000000000004",
    });
    const info = { backups: [b(1_795_000_000, 1_795_000_060), b(1_795_086_400, 1_795_086_430)] };
    expect(pitrWindow(info, new Date("2026-11-19T12:00:00Z"))).toEqual({
      from: "2026-11-18T11:07:40.000Z",
      to: "2026-11-19T12:00:00.000Z",
      toSource: "last archived WAL",
    });
    expect(pitrWindow(info)).toEqual({
      from: "2026-11-18T11:07:40.000Z",
      to: "2026-11-19T11:07:10.000Z",
      toSource: "newest backup",
    });
    expect(pitrWindow(info, new Date("2026-11-18T00:00:00Z")).toSource).toBe("newest backup"); // an archiver older than the newest backup proves nothing
    expect(pitrWindow({ backups: [] })).toEqual({});
  });
});
