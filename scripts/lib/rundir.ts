/**
 * The short runtime folder for every Unix socket the toolkit creates (member
 * Postgres, backup-verification and restore-pitr scratch instances, HAProxy's
 * read-write socket for pgbouncer). A socket path must fit sun_path (107 bytes), and a checkout under
 * /home/<user>/<projects>/... easily exceeds that once .state/<stack>/members/
 * scratch/<name>/run/.s.PGSQL.5432 is appended. So sockets never live in the
 * checkout:
 *
 *   as root:   /run/pgplatform/<stack>   (/run is root's: nobody else can create it first)
 *   otherwise: /tmp/pgp-<uid>/<stack>    (/tmp is shared: another local user could create
 *                                         it first, so ownership and mode are checked)
 *
 * Every level is checked before use: a real directory (not a symlink), owned
 * by the expected user, not writable by group or others. The base and stack
 * levels are 0711 as root (postgres must traverse to its own dirs) and 0700
 * otherwise; each socket dir is 0700 and owned by the user Postgres runs as.
 * A folder that fails a check is never used: the error names its owner and
 * mode. /tmp's sticky bit keeps another user from renaming or deleting ours.
 * The longest path is /tmp/pgp-<10 digits>/<31-char stack>/<11>/.s.PGSQL.NNNNN.lock,
 * about 90 bytes, whatever the checkout's depth.
 */
import { createHash } from "node:crypto";
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ToolkitError } from "./errors";

/** Where a stack's sockets live: pure, so config can compute it. */
export function runtimeDirFor(stack: string, root: boolean, uid = process.getuid?.() ?? 0): string {
  return root ? join("/run/pgplatform", stack) : join(`/tmp/pgp-${uid}`, stack);
}

/** A fixed-length socket folder name for a scratch instance (its own name holds two timestamps). */
export const scratchSocketName = (name: string) => `s-${createHash("sha256").update(name).digest("hex").slice(0, 10)}`;

/** The longest socket file Postgres makes in `dir` (its lock file), in bytes. */
export const socketPathBytes = (dir: string, port: number) => Buffer.byteLength(join(dir, `.s.PGSQL.${port}.lock`));
export const SUN_PATH_MAX = 107;

const userName = (uid: number): string => {
  try {
    const line = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((l) => l.split(":")[2] === String(uid));
    return line ? `${line.split(":")[0]} (uid ${uid})` : `uid ${uid}`;
  } catch {
    return `uid ${uid}`;
  }
};

/**
 * Make `dir` (one level; its parent must exist) or check the existing one:
 * a directory, not a symlink, owned by `owner`, mode exactly `mode`. A folder
 * we own with a looser mode is tightened; anything else is refused.
 */
export function ensureSafeDir(
  dir: string,
  mode: number,
  owner: { uid: number; gid: number } | undefined,
  asRoot: boolean,
): void {
  const me = process.getuid?.() ?? 0;
  const want = owner?.uid ?? me;
  try {
    mkdirSync(dir, { mode });
    if (owner && asRoot) chownSync(dir, owner.uid, owner.gid);
    chmodSync(dir, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  const st = lstatSync(dir);
  const fix = `if you did not make it, find out who did; then remove it (\`sudo rm -rf ${dir}\`) and re-run`;
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new ToolkitError(
      "UNSAFE_RUNTIME_DIR",
      `${dir} is ${st.isSymbolicLink() ? "a symlink" : "not a directory"}: refusing to put sockets there`,
      fix,
    );
  }
  if (st.uid !== want) {
    // root may take over a folder it made for postgres in an earlier layout; anyone else's is refused.
    if (asRoot && st.uid === me) chownSync(dir, want, owner?.gid ?? st.gid);
    else {
      throw new ToolkitError(
        "UNSAFE_RUNTIME_DIR",
        `${dir} is owned by ${userName(st.uid)}, not ${userName(want)}: another user could read or replace the sockets in it`,
        fix,
      );
    }
  }
  // Ours (or root's to fix): a looser mode, e.g. from a umask, is tightened rather than trusted.
  if ((st.mode & 0o777) !== mode) chmodSync(dir, mode);
}

/** The stack's runtime folder, made and checked (both levels). Returns it. */
export function ensureRuntimeDir(runtimeDir: string, asRoot: boolean): string {
  const base = join(runtimeDir, "..");
  const mode = asRoot ? 0o711 : 0o700;
  ensureSafeDir(base, mode, undefined, asRoot);
  ensureSafeDir(runtimeDir, mode, undefined, asRoot);
  return runtimeDir;
}

/** A socket `dir/.s.PGSQL.<port>` (and Postgres' lock file beside it) must fit sun_path. */
function checkSocketPath(dir: string, port: number): void {
  if (socketPathBytes(dir, port) > SUN_PATH_MAX)
    throw new ToolkitError(
      "SOCKET_PATH_TOO_LONG",
      `${dir}: a Unix socket path there would be ${socketPathBytes(dir, port)} bytes (limit ${SUN_PATH_MAX})`,
      "use a shorter stack name",
    );
}

/**
 * HAProxy's folder for the read-write socket pgbouncer connects through (native one-box stacks).
 * HAProxy binds it as root before dropping to `haproxy` and hands the socket to postgres (mode
 * 0600), so the folder is root's, 0711 (postgres traverses it); without root everything is ours, 0700.
 */
export const haproxySocketDir = (runtimeDir: string) => join(runtimeDir, "haproxy");

export function ensureHaproxySocketDir(runtimeDir: string, asRoot: boolean, port: number): string {
  const dir = haproxySocketDir(runtimeDir);
  checkSocketPath(dir, port);
  ensureRuntimeDir(runtimeDir, asRoot);
  ensureSafeDir(dir, asRoot ? 0o711 : 0o700, undefined, asRoot);
  return dir;
}

/** A socket dir for a process run as `owner` (postgres as root, else ourselves): 0700, checked. */
export function ensureSocketDir(
  runtimeDir: string,
  dir: string,
  owner: { uid: number; gid: number } | undefined,
  asRoot: boolean,
  port: number,
): void {
  checkSocketPath(dir, port);
  ensureRuntimeDir(runtimeDir, asRoot);
  ensureSafeDir(dir, 0o700, owner, asRoot);
}
