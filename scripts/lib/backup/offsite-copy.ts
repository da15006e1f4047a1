/**
 * Logical dumps (and their manifest) copied to the off-site repository with
 * pgBackRest's own `repo-put` (so they go over the same TLS connection, with
 * the same key, and are encrypted with the same passphrase as the physical
 * backups: no second S3 client), then read back with `repo-get --raw` and
 * decrypted here to prove each file's sha256 against the manifest. repo-get
 * decrypts only pgBackRest's own files, hence --raw and decryptor(): the
 * stored format is OpenSSL's "Salted__" + salt, key and IV from
 * EVP_BytesToKey(SHA-1, 1 round) over the passphrase, AES-256-CBC.
 */
import { createDecipheriv, createHash, type Decipheriv } from "node:crypto";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { BACKUP_ID_RE } from "./common";
import { MANIFEST, sha256File, type Manifest } from "./manifest";
import { readOffsiteSecrets, runOffsiteRepo } from "./offsite";

/** Where a logical backup's files live in the off-site repository (relative to its path). */
export const offsiteLogicalPath = (id: string, file = "") => `logical/${id}${file ? `/${file}` : ""}`;

/** Pure: OpenSSL's EVP_BytesToKey (SHA-1, one round): 32-byte key + 16-byte IV for AES-256-CBC. */
export function bytesToKey(pass: Buffer, salt: Buffer): { key: Buffer; iv: Buffer } {
  let d = Buffer.alloc(0);
  let prev = Buffer.alloc(0);
  while (d.length < 48) {
    prev = createHash("sha1")
      .update(Buffer.concat([prev, pass, salt]))
      .digest();
    d = Buffer.concat([d, prev]);
  }
  return { key: d.subarray(0, 32), iv: d.subarray(32, 48) };
}

/** A streaming decryptor for one pgBackRest-encrypted file (plain passthrough when the repository is not encrypted). */
export function decryptor(pass: string | undefined): { push(c: Buffer): Buffer; end(): Buffer } {
  if (!pass) return { push: (c) => c, end: () => Buffer.alloc(0) };
  let head = Buffer.alloc(0);
  let d: Decipheriv | undefined;
  return {
    push(c) {
      if (d) return d.update(c);
      head = Buffer.concat([head, c]);
      if (head.length < 16) return Buffer.alloc(0);
      if (head.subarray(0, 8).toString("latin1") !== "Salted__")
        throw new ToolkitError(
          "OFFSITE_NOT_ENCRYPTED",
          "an off-site file is not in pgBackRest's encrypted format",
          "check BACKUP_OFFSITE_CIPHER and the passphrase in the secrets file",
        );
      const { key, iv } = bytesToKey(Buffer.from(pass), head.subarray(8, 16));
      d = createDecipheriv("aes-256-cbc", key, iv);
      return d.update(head.subarray(16));
    },
    end() {
      if (!d)
        throw new ToolkitError(
          "OFFSITE_TRUNCATED",
          "an off-site file is shorter than its encryption header",
          "the upload is broken: run `make backup` again",
        );
      try {
        return d.final();
      } catch {
        throw new ToolkitError(
          "OFFSITE_DECRYPT_FAILED",
          "an off-site file does not decrypt with BACKUP_OFFSITE_CIPHER_PASS",
          "the passphrase in the secrets file is not the one the repository was written with: restore it from where you keep its copy",
        );
      }
    },
  };
}

/** Read one off-site file, decrypted; feed it to `sink`; return its sha256 and size. */
export async function fetchOffsiteFile(
  cfg: Config,
  rel: string,
  sink?: (c: Buffer) => void,
): Promise<{ sha256: string; size: number }> {
  const pass = cfg.backup.offsite.cipher === "none" ? undefined : readOffsiteSecrets(cfg).cipherPass;
  const dec = decryptor(pass);
  const h = createHash("sha256");
  let size = 0;
  const take = (b: Buffer) => {
    if (!b.length) return;
    h.update(b);
    size += b.length;
    sink?.(b);
  };
  const r = await runOffsiteRepo(cfg, ["repo-get", "--raw", rel], {
    nothrow: true,
    timeoutMs: 6 * 3_600_000,
    onStdout: (c) => take(dec.push(c)),
  });
  if (r.code !== 0)
    throw new ToolkitError(
      "OFFSITE_GET_FAILED",
      `reading ${rel} from the off-site repository failed`,
      "see pgBackRest's error below; check the store and the key in the secrets file",
      pgbackrestError(r.stderr),
    );
  take(dec.end());
  return { sha256: h.digest("hex"), size };
}

/**
 * Pure: what failed, from pgBackRest's output: its ERROR line, what the store
 * answered (S3's <Code> and <Message>) and its HINTs; the rest (request dumps) is noise.
 */
export function pgbackrestError(out: string): string {
  const lines = out.split("\n").map((l) => l.trim());
  const error = lines.find((l) => /ERROR: \[\d+\]/.test(l));
  const code = /<Code>([^<]+)<\/Code>/.exec(out)?.[1];
  const msg = /<Message>([^<]+)<\/Message>/.exec(out)?.[1];
  const picked = [
    ...(error ? [error.replace(/^.*?(ERROR: )/, "$1")] : []),
    ...(code ? [`the store answered ${code}${msg ? `: ${msg}` : ""}`] : []),
    ...lines.filter((l) => /^HINT: /.test(l)),
  ];
  return picked.length ? picked.join("\n") : lines.filter(Boolean).slice(-3).join("\n");
}

export interface LogicalCopy {
  files: number;
  bytes: number;
  ms: number;
  /** every file read back, decrypted and matched against the manifest's sha256 */
  checked: boolean;
}

/** Upload every file of a logical backup plus its manifest, then prove each one by reading it back. */
export async function copyLogicalOffsite(cfg: Config, dir: string, m: Manifest): Promise<LogicalCopy> {
  const t0 = Date.now();
  const files = [
    ...m.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
    { path: MANIFEST, size: -1, sha256: await sha256File(join(dir, MANIFEST)) },
  ];
  for (const f of files) {
    const r = await runOffsiteRepo(cfg, ["repo-put", offsiteLogicalPath(m.id, f.path)], {
      nothrow: true,
      inputFile: join(dir, f.path),
      timeoutMs: 6 * 3_600_000,
    });
    if (r.code !== 0)
      throw new ToolkitError(
        "OFFSITE_PUT_FAILED",
        `uploading ${f.path} of backup ${m.id} failed`,
        "see pgBackRest's error below",
        pgbackrestError(r.stderr),
      );
  }
  let bytes = 0;
  for (const f of files) {
    const got = await fetchOffsiteFile(cfg, offsiteLogicalPath(m.id, f.path));
    if (got.sha256 !== f.sha256 || (f.size >= 0 && got.size !== f.size)) {
      throw new ToolkitError(
        "OFFSITE_CHECKSUM",
        `off-site copy of ${m.id}/${f.path} does not match: sha256 ${got.sha256.slice(0, 12)}…, ${got.size} bytes; expected ${f.sha256.slice(0, 12)}…, ${f.size} bytes`,
        "the upload is not trustworthy: run `make backup` again and check the store",
      );
    }
    bytes += got.size;
  }
  return { files: files.length, bytes, ms: Date.now() - t0, checked: true };
}

/** Download a logical backup from off-site into `into`/<id>/, checked file by file against its manifest. */
export async function fetchLogicalOffsite(cfg: Config, id: string, into: string): Promise<string> {
  const dir = join(into, id);
  const manifestChunks: Buffer[] = [];
  await fetchOffsiteFile(cfg, offsiteLogicalPath(id, MANIFEST), (c) => manifestChunks.push(c));
  const m = JSON.parse(Buffer.concat(manifestChunks).toString("utf8")) as Manifest;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const write = (rel: string, body: Buffer) => {
    mkdirSync(dirname(join(dir, rel)), { recursive: true, mode: 0o700 });
    const fd = openSync(join(dir, rel), "wx", 0o600);
    try {
      writeSync(fd, body);
    } finally {
      closeSync(fd);
    }
  };
  write(MANIFEST, Buffer.concat(manifestChunks));
  for (const f of m.files) {
    mkdirSync(dirname(join(dir, f.path)), { recursive: true, mode: 0o700 });
    const fd = openSync(join(dir, f.path), "wx", 0o600);
    try {
      const got = await fetchOffsiteFile(cfg, offsiteLogicalPath(id, f.path), (c) => writeSync(fd, c));
      if (got.sha256 !== f.sha256)
        throw new ToolkitError(
          "OFFSITE_CHECKSUM",
          `off-site ${id}/${f.path}: sha256 does not match its manifest`,
          "try another backup (FROM=<id>)",
        );
    } finally {
      closeSync(fd);
    }
  }
  return dir;
}

/** The logical backups the off-site repository holds (ids, oldest first). */
export async function listLogicalOffsite(cfg: Config): Promise<string[]> {
  const r = await runOffsiteRepo(cfg, ["repo-ls", "--output=json", "logical"], { nothrow: true, timeoutMs: 120_000 });
  if (r.code !== 0)
    throw new ToolkitError(
      "OFFSITE_LIST_FAILED",
      "listing the off-site repository failed",
      "see pgBackRest's error below",
      pgbackrestError(r.stderr),
    );
  return Object.entries(JSON.parse(r.stdout || "{}") as Record<string, { type: string }>)
    .filter(([k, v]) => BACKUP_ID_RE.test(k) && v.type === "path")
    .map(([k]) => k)
    .sort();
}
