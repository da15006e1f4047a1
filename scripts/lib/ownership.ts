/**
 * Mixing `sudo make …` and plain `make …` leaves files of one user in the
 * other's way (root-owned logs and secrets, postgres-owned member dirs, a
 * root-owned node_modules). Before acting, every entry point checks that the
 * stack's files belong to the user running it (and, as root, member dirs to
 * postgres), and names exactly who owns what and the one command that repairs
 * it. Permission errors that still happen become a clear ToolkitError, never
 * an INTERNAL one.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import type { Config } from "./config";
import { permissionError, ToolkitError, uidOf, userNameOf } from "./errors";
import { osUserIds } from "./exec";

/** They live in errors.ts (runMain turns an EACCES into PERMISSION_DENIED with them); here for the checks below and their tests. */
export { permissionError, userNameOf };

export interface Misowned {
  path: string;
  uid: number;
  want: number;
}

/** The entry points whose ownership decides: each is chowned whole by the repair command. */
export function stackRoots(cfg: Config): string[] {
  const envs = join(cfg.rootDir, "envs");
  const appFiles = existsSync(envs)
    ? readdirSync(envs)
        .filter((f) => (cfg.stack === "dev" ? /^\.env\.[a-z][a-z0-9_]+$/.test(f) : f.startsWith(`.env.${cfg.stack}.`)))
        .map((f) => join(envs, f))
    : [];
  const registry = join(envs, cfg.stack === "dev" ? "apps.yaml" : `apps.${cfg.stack}.yaml`);
  const roots = [cfg.stateDir, cfg.secretsFile, registry, ...appFiles, join(cfg.rootDir, "node_modules")];
  if (!cfg.memberRoot.startsWith(cfg.stateDir + "/")) roots.splice(1, 0, cfg.memberRoot);
  return roots.filter((p) => existsSync(p));
}

/**
 * Every path of the stack owned by someone other than expected: us, or the
 * postgres user for member data when we run as root. Member data dirs are
 * checked at their top only (Postgres owns what is inside), node_modules at
 * its top and its stamp. Pure apart from lstat; at most `limit` entries.
 */
export function misownedPaths(cfg: Config, me = process.getuid?.() ?? 0, limit = 50): Misowned[] {
  const pgUid = cfg.pgOsUser ? osUserIds(cfg.pgOsUser)?.uid : undefined;
  // As root the postgres user writes into the stack too (member data, dumps it takes); otherwise everything is ours.
  const mine = me === 0 && pgUid !== undefined ? [0, pgUid] : [me];
  const out: Misowned[] = [];
  const memberTops = new Set([
    ...cfg.members.map((m) => m.dir),
    join(cfg.memberRoot, "scratch"),
    join(cfg.memberRoot, "pgbackrest"),
  ]);
  const check = (p: string, allowed: number[]) => {
    const uid = uidOf(p);
    if (uid !== undefined && !allowed.includes(uid) && out.length < limit)
      out.push({ path: p, uid, want: allowed[0]! });
  };
  const walk = (dir: string, depth: number) => {
    check(dir, mine);
    if (depth === 0 || out.length >= limit) return;
    let entries: string[];
    try {
      entries = readdirSync(dir).sort();
    } catch {
      return; // unreadable: its own owner was reported if it is not ours
    }
    for (const e of entries) {
      const p = join(dir, e);
      if (p === cfg.memberRoot) {
        memberRootCheck();
        continue;
      }
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p, depth - 1);
      else check(p, mine);
    }
  };
  const memberRootCheck = () => {
    check(cfg.memberRoot, mine);
    // Postgres' side belongs to postgres when we run as root, to us otherwise.
    for (const d of memberTops) if (existsSync(d)) check(d, [pgUid ?? me]);
  };
  for (const root of stackRoots(cfg)) {
    if (root === cfg.memberRoot) memberRootCheck();
    else if (root.endsWith("/node_modules")) {
      check(root, mine);
      check(join(root, ".installed"), mine);
    } else if (statSync(root).isDirectory()) walk(root, 4);
    else check(root, mine);
  }
  return out;
}

/** Processes of the stack (pid files) that run as another user: we cannot stop or signal them. */
export function foreignProcesses(
  cfg: Config,
  me = process.getuid?.() ?? 0,
): { pid: number; uid: number; name: string }[] {
  const dir = join(cfg.stateDir, "pids");
  if (!existsSync(dir)) return [];
  const out = [];
  for (const f of readdirSync(dir)) {
    try {
      const pid = Number(readFileSync(join(dir, f), "utf8").trim());
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      const allowed = [me, ...(cfg.pgOsUser ? [osUserIds(cfg.pgOsUser)?.uid] : [])];
      if (!allowed.includes(uid) && me !== 0) out.push({ pid, uid, name: f.replace(/\.pid$/, "") });
    } catch {
      // not running
    }
  }
  return out;
}

/** Throw OWNED_BY_OTHER_USER when the stack's files (or processes) belong to another user. */
export function assertStackOwnership(cfg: Config, me = process.getuid?.() ?? 0): void {
  // Root can use anything, and its services write as other users too (nginx's temp dirs as nobody,
  // dumps as postgres); what root must not do is act on a user's stack (see below).
  const stateOwner0 = uidOf(cfg.stateDir);
  const pgUid0 = cfg.pgOsUser ? osUserIds(cfg.pgOsUser)?.uid : undefined;
  if (me === 0 && (stateOwner0 === undefined || stateOwner0 === 0 || stateOwner0 === pgUid0)) return;
  const bad = misownedPaths(cfg, me).filter((b) => me !== 0 || b.uid === stateOwner0);
  const procs = foreignProcesses(cfg, me);
  if (bad.length === 0 && procs.length === 0) return;
  const rel = (p: string) => relative(cfg.rootDir, p) || ".";
  const meName = userNameOf(me);
  const stackArg = cfg.stack === "dev" ? "" : ` STACK=${cfg.stack}`;
  // Grouped by owner, each owner's paths listed (the first few).
  const byOwner = new Map<number, string[]>();
  for (const b of bad) byOwner.set(b.uid, [...(byOwner.get(b.uid) ?? []), rel(b.path)]);
  const owned = [...byOwner].map(
    ([uid, paths]) =>
      `${userNameOf(uid)} owns ${paths.slice(0, 6).join(", ")}${paths.length > 6 ? ` and ${paths.length - 6} more` : ""}`,
  );
  const running = procs.length
    ? [
        `${procs.map((p) => `${p.name} (pid ${p.pid})`).join(", ")} run${procs.length === 1 ? "s" : ""} as ${[...new Set(procs.map((p) => userNameOf(p.uid)))].join(", ")}`,
      ]
    : [];
  const stateOwner = uidOf(cfg.stateDir);
  const pgUid = cfg.pgOsUser ? osUserIds(cfg.pgOsUser)?.uid : undefined;
  if (me === 0 && stateOwner !== undefined && stateOwner !== 0 && stateOwner !== pgUid) {
    // root over a user's stack: the user's commands must stay the user's.
    const owner = userNameOf(stateOwner);
    throw new ToolkitError(
      "OWNED_BY_OTHER_USER",
      `stack ${cfg.stack} belongs to ${owner} (brought up without sudo), and this command runs as root: ${[...owned, ...running].join("; ")}`,
      `run it as ${owner}, without sudo: \`make …${stackArg}\` (make setup is the only target that needs root, and it asks sudo itself)`,
    );
  }
  const tops = [
    ...new Set(bad.map((b) => stackRoots(cfg).find((r) => b.path === r || b.path.startsWith(r + "/")) ?? b.path)),
  ].map(rel);
  const stop = procs.length ? `first \`sudo make dev-down${stackArg}\` (its processes run as another user), then ` : "";
  throw new ToolkitError(
    "OWNED_BY_OTHER_USER",
    `stack ${cfg.stack} has files of another user (a \`sudo make …\` ran here?): ${[...owned, ...running].join("; ")}; you are ${meName}`,
    `${stop}sudo chown -R ${meName}: ${tops.join(" ")}`,
  );
}
