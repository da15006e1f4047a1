/**
 * File operations root performs in folders another user controls (member dirs,
 * the pgBackRest home, anything postgres owns). Such a user can put a symlink
 * where we expect a file or folder, and a plain chown/chmod/write as root would
 * follow it to /etc or any root-owned folder. So:
 *  - the last path component is opened with O_NOFOLLOW and changed through
 *    that descriptor (fchown/fchmod), never by name;
 *  - a symlink anywhere on the path owned by anyone but root, us or the
 *    checkout's owner is refused with an error naming the path, and so is
 *    handing a third user's file or folder to the intended owner;
 *  - files are written to a fresh, unguessable temp name (O_CREAT|O_EXCL|O_NOFOLLOW)
 *    and renamed into place (rename replaces a symlink, it never follows it).
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, resolve, sep } from "node:path";
import { ToolkitError } from "./errors";

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = constants;

export interface Owner {
  uid: number;
  gid: number;
}

const unsafe = (path: string, why: string) =>
  new ToolkitError(
    "UNSAFE_PATH",
    `${path}: ${why}; refusing to change it as root`,
    `remove ${path} (someone other than root put it there) and re-run`,
  );

/** Every existing prefix of `path`, shortest first. */
function prefixes(path: string): string[] {
  const parts = resolve(path).split(sep).filter(Boolean);
  return parts.map((_, i) => sep + parts.slice(0, i + 1).join(sep));
}

/**
 * Who may own a symlink root follows: root (/var/run -> /run), ourselves, and the
 * owner of the checkout (the operator: they already control the code root runs).
 * Service users (postgres, etcd) and other local users are not trusted.
 */
const CHECKOUT_OWNER = statSync(resolve(import.meta.dir, "../..")).uid;
const trustedLinkOwner = (uid: number) => uid === 0 || uid === (process.getuid?.() ?? 0) || uid === CHECKOUT_OWNER;

/** Refuse a path on which an untrusted user planted a symlink. */
export function checkNoForeignSymlink(path: string): void {
  for (const p of prefixes(path)) {
    let st;
    try {
      st = lstatSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    if (st.isSymbolicLink() && !trustedLinkOwner(st.uid)) throw unsafe(p, `is a symlink owned by uid ${st.uid}`);
  }
}

function openNoFollow(path: string, flags: number, what: string): number {
  try {
    return openSync(path, flags | O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ELOOP" || (code === "ENOTDIR" && lstatSync(path).isSymbolicLink())) {
      // A link root or the operator made (logs -> /var/log/...) is theirs to make; anyone else's is refused.
      // Only in a folder no one else can write to, so the link cannot be swapped before the open.
      const link = lstatSync(path);
      if (trustedLinkOwner(link.uid) && trustedLinkOwner(lstatSync(dirname(path)).uid)) return openSync(path, flags);
      throw unsafe(path, "is a symlink");
    }
    if (code === "ENOTDIR") throw unsafe(path, `is not a ${what}`);
    throw err;
  }
}

/**
 * Apply owner and mode through an open descriptor. Handing something to `owner` is
 * refused when a third user owns it (we would give that user's file or folder away).
 */
function fixOwnerMode(fd: number, path: string, mode: number | undefined, owner: Owner | undefined): void {
  const st = fstatSync(fd);
  const me = process.getuid?.() ?? 0;
  if (owner && st.uid !== 0 && st.uid !== me && st.uid !== owner.uid)
    throw unsafe(path, `is owned by uid ${st.uid}, not root or the intended owner`);
  if (mode !== undefined && (st.mode & 0o7777) !== mode) fchmodSync(fd, mode);
  if (owner && (st.uid !== owner.uid || st.gid !== owner.gid)) fchownSync(fd, owner.uid, owner.gid);
}

/**
 * A folder with this mode (and owner), created if missing, never through a
 * symlink. Parents are created as plain root folders (they must not be
 * user-controlled). Returns whether it was created.
 */
export function ensureDirNoFollow(path: string, mode: number, owner?: Owner): boolean {
  checkNoForeignSymlink(path);
  let created = false;
  try {
    lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    mkdirSync(dirname(path), { recursive: true });
    checkNoForeignSymlink(path);
    try {
      mkdirSync(path, { mode }); // mkdir never follows a symlink in the last component (EEXIST)
      created = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
  const fd = openNoFollow(path, O_RDONLY | O_DIRECTORY, "folder");
  try {
    if (!fstatSync(fd).isDirectory()) throw unsafe(path, "is not a folder");
    fixOwnerMode(fd, path, mode, owner);
  } finally {
    closeSync(fd);
  }
  return created;
}

/**
 * Write `content` atomically unless the file already holds it; set mode and
 * owner through descriptors. A symlink at `path` (or a foreign one on its way)
 * is refused, never followed. Returns whether the content changed.
 */
export function writeFileNoFollow(
  path: string,
  content: string | Uint8Array,
  opts: { mode?: number; owner?: Owner } = {},
): boolean {
  checkNoForeignSymlink(path);
  // Without a mode, an existing file keeps its own and a new one gets 0644.
  let mode = opts.mode ?? 0o644;
  let fd: number | undefined;
  try {
    fd = openNoFollow(path, O_RDONLY, "file");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (fd !== undefined) {
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw unsafe(path, "is not a regular file");
      if (opts.mode === undefined) mode = st.mode & 0o7777;
      const now = readFileSync(fd);
      const want = Buffer.from(content);
      if (now.equals(want)) {
        fixOwnerMode(fd, path, opts.mode, opts.owner);
        return false;
      }
    } finally {
      closeSync(fd);
    }
  }
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
  const out = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    writeSync(out, Buffer.from(content));
    fixOwnerMode(out, tmp, mode, opts.owner);
  } catch (err) {
    closeSync(out);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(out);
  renameSync(tmp, path);
  return true;
}
