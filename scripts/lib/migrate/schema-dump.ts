/**
 * Step 3 of migrate-saas: the schema, from the run's source snapshot, turned
 * into the two scripts the load runs around the data. pg_dump writes an
 * archive (-Fc: schema and large-object metadata, no table data) of the
 * migrated schemas without the relations the source login cannot read; its
 * table of contents is read back (pg_restore -l), and an entry of a kind this
 * toolkit does not know stops the run before anything changed. The entries
 * the load does not take from the archive are dropped by selection (toc.ts),
 * never by editing SQL text; pg_restore then prints the kept pre-data and
 * post-data sections, unchanged.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { dumpPattern } from "./select";
import { parseToc, selectToc, type TocEntry, type TocRules, type TocSelection, tocListFile } from "./toc";

/**
 * Table data is streamed by us; large-object contents too (pg_restore's BLOBS section commits on its own);
 * extensions are created by extensionSql(); materialized views are refreshed and sequences set from the catalog.
 */
const SKIP_DESCS = new Set([
  "TABLE DATA",
  "BLOBS",
  "BLOB DATA",
  "LARGE OBJECTS",
  "SEQUENCE SET",
  "MATERIALIZED VIEW DATA",
  "EXTENSION",
  "DATABASE",
  "DATABASE PROPERTIES",
  "SECURITY LABEL",
  "EVENT TRIGGER",
  "SUBSCRIPTION",
  "PUBLICATION",
  "PUBLICATION TABLE",
  "PUBLICATION TABLES IN SCHEMA",
]);

/** pg_dump of the schemas into `archive` inside the snapshot, and the archive's table of contents. */
export async function dumpSchema(
  binDir: string,
  snapshot: string,
  env: Record<string, string>,
  schemas: string[],
  unreadable: { schema: string; name: string }[],
  archive: string,
): Promise<TocEntry[]> {
  await run(
    [
      join(binDir, "pg_dump"),
      "--snapshot",
      snapshot,
      "-Fc",
      "-b",
      "--no-publications",
      "--no-subscriptions",
      "--exclude-table-data",
      "*.*",
      ...schemas.flatMap((n) => ["-n", dumpPattern(n)]),
      ...unreadable.flatMap((u) => ["--exclude-table", `${dumpPattern(u.schema)}.${dumpPattern(u.name)}`]),
      "-f",
      archive,
    ],
    { env, timeoutMs: 600_000 },
  );
  const toc = parseToc((await run([join(binDir, "pg_restore"), "-l", "-v", archive], { timeoutMs: 120_000 })).stdout);
  const unknown = toc.filter((e) => e.desc === "?");
  if (unknown.length)
    throw new ToolkitError(
      "UNKNOWN_ARCHIVE_ENTRY",
      `the schema archive holds entries of a kind this toolkit does not know: ${unknown.map((e) => e.line).join("; ")}`,
      "report it; nothing was changed",
    );
  return toc;
}

/** The kept entries written to `listFile`, and pg_restore's pre-data and post-data scripts of them. */
export async function restoreScripts(
  binDir: string,
  archive: string,
  toc: TocEntry[],
  listFile: string,
  rules: Pick<TocRules, "leaveOut" | "replaced">,
): Promise<{ pre: string; post: string; selection: TocSelection }> {
  const selection = selectToc(toc, { skipDescs: SKIP_DESCS, ...rules });
  writeFileSync(listFile, tocListFile(selection.keep), { mode: 0o600 });
  const restoreArgs = [
    join(binDir, "pg_restore"),
    "-L",
    listFile,
    "--no-security-labels",
    "--no-tablespaces",
    "-f",
    "-",
  ];
  const [pre, post] = (await Promise.all(
    ["pre-data", "post-data"].map(
      async (sec) => (await run([...restoreArgs, `--section=${sec}`, archive], { timeoutMs: 600_000 })).stdout,
    ),
  )) as [string, string];
  return { pre, post, selection };
}
