/** What migrate-saas takes and returns: options, the plan (PLAN=1) and the report of a run. */
import type { StorageSummary, TableInfo } from "./catalog";
import type { Verification } from "./verify";

export type Progress = (stage: string, message: string) => void;

export interface MigrateOptions {
  sourceUrl: string;
  targetDb: string;
  plan?: boolean;
  replace?: boolean;
  /** copy storage files through the Storage API (not implemented yet: reported) */
  storage?: boolean;
  /** migrate without what PLAN names as left out (objects needing what stays behind, tables the login cannot read) */
  acceptLeftOut?: boolean;
  /** allow an unverified source connection (local/test sources only) */
  insecureTls?: boolean;
  /** CA file for verifying the source's certificate */
  caFile?: string;
  /** run the source's own code (functions of generated columns, CHECK and domain constraints, indexes, matviews) as the target's superuser */
  trustSourceCode?: boolean;
}

/** Something PLAN found that cannot be carried: the run refuses unless --accept-left-out, then leaves it out and reports it. */
export interface LeftOut {
  object: string;
  /** why: what it needs that stays behind, or why it cannot be read */
  reason: string;
}

export interface MigrationPlan {
  source: { url: string; version: string; pgDump: string };
  target: {
    database: string;
    address: string;
    version: string;
    empty: boolean;
    contents: string[];
    environment: boolean;
  };
  schemas: { migrated: string[]; excluded: string[] };
  tables: TableInfo[];
  totalBytes: number;
  roles: { create: string[]; existing: string[]; reservedSkipped: string[] };
  extensions: { create: string[]; skipped: string[]; blocked: string[] };
  storage: (StorageSummary & { copied: number; note: string }) | null;
  largeObjects: { count: number; bytes: number };
  publications: string[];
  /** objects and tables that cannot be carried (blockers unless --accept-left-out) */
  leftOut: LeftOut[];
  /** source code the load would run as the target's superuser (blockers unless --trust-source-code) */
  sourceCode: { object: string; runs: string; why: string }[];
  /** how the source connection is protected */
  sourceTls: string;
  disk: { path: string; freeBytes: number; needBytes: number };
  blockers: string[];
  warnings: string[];
}

export interface MigrationReport {
  ok: boolean;
  plan: MigrationPlan;
  startedAt: string;
  ms: number;
  bytesStreamed: number;
  /** wall-clock ms per phase: pre-checks, backup, schema dump, data (restore + source checksums), target verification */
  timings: { plan: number; backup: number; schema: number; data: number; verify: number };
  backup?: string;
  rolePasswordsFile?: string;
  rolesCreated: string[];
  /** login roles that got a generated password (in rolePasswordsFile) */
  rolePasswords: string[];
  /** Supabase's roles the target lacks: what they owned went to the migrating superuser, their grants were dropped */
  reassigned: { role: string; owned: number; grants: number }[];
  /** archive entries left out with the objects PLAN named (their comments, grants, dependants) */
  cascadedEntries: number;
  verification: Verification;
  reportFile: string;
  /** set when the target already holds a verified migration from this source: nothing was changed */
  alreadyMigrated?: { reportFile: string; at: string };
}
