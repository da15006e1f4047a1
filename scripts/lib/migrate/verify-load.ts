/**
 * Step 5 of migrate-saas: after the commit, read what the target now holds
 * and compare it with what the source held in the run's snapshot. The source
 * side's table fingerprints, sequence values and large objects were taken
 * while the data streamed; this reads the rest of the source side (object
 * counts, definitions, publication membership, without the relations it could
 * not read), then the same on the target (each table checksummed in the hash
 * mode the source chose), and the target database's own state, which must
 * come back as it was except for the CONNECT grants of the login roles the
 * run created. Objects the run left out on purpose are expected to be
 * missing. compareMigration() (verify.ts) gives the verdict.
 */
import type { Config } from "../config";
import { databaseState } from "./catalog";
import { definitions, largeObjects, publicationMembers } from "./definitions";
import {
  CHECKSUM_SETTINGS,
  type ChecksumTarget,
  type HashMode,
  objectCounts,
  type ObjectCounts,
  type SequenceState,
  sequenceStates,
  type TableFingerprint,
} from "./fingerprint";
import type { PlanContext } from "./plan";
import type { Session } from "./session";
import { targetFingerprints } from "./steps";
import { compareMigration, type Verification } from "./verify";

/** What the run read while it loaded: the source side inside the snapshot, and the target database before the load. */
export interface LoadedState {
  checked: ChecksumTarget[];
  modes: Map<string, HashMode>;
  sourcePrints: Record<string, TableFingerprint>;
  sourceSeq: Record<string, SequenceState>;
  los: { oid: number; owner: string; md5: string }[];
  dbBefore: Record<string, string>;
  /** login roles the run created and granted CONNECT on the target database */
  connectFor: string[];
}

export async function verifyLoad(
  cfg: Config,
  s: Session,
  targetDb: string,
  schemas: string[],
  ctx: Pick<PlanContext, "unreadable" | "willExist" | "leftOutObjects">,
  run: LoadedState,
): Promise<Verification> {
  const { checked, modes, sourcePrints, sourceSeq, los, dbBefore, connectFor } = run;
  const unreadableOids = ctx.unreadable.map((u) => u.oid);
  const sourceCounts: ObjectCounts = await objectCounts(s.source, schemas, unreadableOids);
  const sourceDefs = await definitions(s.source, schemas, unreadableOids);
  const sourcePubs = await publicationMembers(s.source, schemas);
  const loMap = (rows: { oid: number; owner: string; md5: string }[], owner: (r: string) => string) =>
    Object.fromEntries(rows.map((l) => [`large object ${l.oid}`, `md5 ${l.md5} owner ${owner(l.owner)}`]));
  const targetPrints = await targetFingerprints(cfg, targetDb, checked, modes);
  for (const q of CHECKSUM_SETTINGS) await s.target.query(q);
  const targetSeq = await sequenceStates(s.target, schemas);
  const targetCounts = await objectCounts(s.target, schemas);
  const targetDefs = await definitions(s.target, schemas);
  const targetPubsNow = await publicationMembers(s.target, schemas);
  const superuser = (await s.target.query("SELECT current_user AS u")).rows[0].u as string;
  const targetLos = await largeObjects(s.target);
  // The database itself comes back as it was: owner, CONNECT confinement (plus the roles created above), settings, limit, comment.
  const dbAfter = await databaseState(s.target, targetDb);
  const dbWant = { ...dbBefore };
  const aclKey = `database ${targetDb}: acl`;
  if (connectFor.length) {
    dbWant[aclKey] = [
      ...(dbBefore[aclKey] ? dbBefore[aclKey]!.split(",") : []),
      ...connectFor.map((r) => `${r}=CONNECT`),
    ]
      .sort()
      .join(",");
    dbAfter[aclKey] = dbAfter[aclKey]!.split(",").sort().join(",");
  }
  const leftOutCounts: Partial<ObjectCounts> = {};
  for (const o of ctx.leftOutObjects) if (o.kind) leftOutCounts[o.kind] = (leftOutCounts[o.kind] ?? 0) + 1;
  return compareMigration(
    {
      tables: sourcePrints,
      sequences: sourceSeq,
      counts: sourceCounts,
      definitions: { ...sourceDefs, ...dbWant },
      publications: sourcePubs,
      largeObjects: loMap(los, (r) => (ctx.willExist.has(r) ? r : superuser)),
    },
    {
      tables: targetPrints,
      sequences: targetSeq,
      counts: targetCounts,
      definitions: { ...targetDefs, ...dbAfter },
      publications: targetPubsNow,
      largeObjects: loMap(targetLos, (r) => r),
    },
    { leftOut: new Set(ctx.leftOutObjects.map((o) => o.object)), leftOutCounts },
  );
}
