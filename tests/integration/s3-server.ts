/**
 * A real S3-compatible server for the off-site backup tests: @20minutes/s3rver
 * (a maintained fork of s3rver that checks AWS Signature V4, so a wrong secret
 * key is refused as a real store would refuse it), over TLS with a certificate
 * from a throwaway test CA, on an address of the stack's own block. Run as a
 * child process (`bun tests/integration/s3-server.ts <dir> <address> <port>`)
 * so the test can kill it by pid; it prints "ready" once listening.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

export const S3_KEY = "pgp-offsite-test-key";

/** This file as a child process (again: same data and certificates when restarted), once it listens. */
export async function startS3Server(
  dir: string,
  address: string,
  port: number,
  bucket: string,
  secret: string,
): Promise<ChildProcess> {
  const p = spawn(process.execPath, [import.meta.path, dir, address, String(port), bucket, secret], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((ok, fail) => {
    const t = setTimeout(() => fail(new Error("S3 server did not start in 30 s")), 30_000);
    p.stdout!.on("data", (d) => String(d).includes("ready") && (clearTimeout(t), ok()));
  });
  return p;
}

/** End a child started here, by its pid, and wait for it to be gone (its port free). */
export async function stopChild(p: ChildProcess | undefined): Promise<void> {
  if (!p?.pid || p.exitCode !== null) return;
  const gone = new Promise((ok) => p.once("exit", ok));
  process.kill(p.pid);
  await gone;
}

/** CA + server certificate for `address` (IP SAN), made with openssl. Returns the CA's path. */
export function makeTestCa(dir: string, address: string): { ca: string; cert: string; key: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => join(dir, f);
  const ossl = (args: string[]) => {
    const r = spawnSync("openssl", args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  if (!existsSync(p("server.crt"))) {
    ossl([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      p("ca.key"),
      "-out",
      p("ca.crt"),
      "-days",
      "2",
      "-subj",
      "/CN=pgplatform offsite test CA",
    ]);
    ossl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      p("server.key"),
      "-out",
      p("server.csr"),
      "-subj",
      `/CN=${address}`,
    ]);
    writeFileSync(
      p("ext.cnf"),
      `subjectAltName=IP:${address},DNS:${address}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`,
    );
    ossl([
      "x509",
      "-req",
      "-in",
      p("server.csr"),
      "-CA",
      p("ca.crt"),
      "-CAkey",
      p("ca.key"),
      "-CAcreateserial",
      "-out",
      p("server.crt"),
      "-days",
      "2",
      "-extfile",
      p("ext.cnf"),
    ]);
  }
  return { ca: p("ca.crt"), cert: p("server.crt"), key: p("server.key") };
}

/**
 * One fix to the server, made as it loads (the installed package stays untouched):
 * for a bucket-level request (ListObjectsV2: GET /bucket/?list-type=2) s3rver
 * signs "/bucket" where AWS, and pgBackRest, sign the path as sent, "/bucket/";
 * every list request was refused as SignatureDoesNotMatch. Object requests were right.
 */
const AUTH_BUG = "canonicalizedResource += `/${ctx.params.bucket}`";
function loadFixedAuthentication(): void {
  const path = require.resolve("@20minutes/s3rver/lib/middleware/authentication.js");
  const src = readFileSync(path, "utf8");
  if (!src.includes(AUTH_BUG))
    throw new Error(`${path}: the line this fix replaces is gone (s3rver changed): re-check the fix`);
  const fixed = src.replace(
    AUTH_BUG,
    "canonicalizedResource += `/${ctx.params.bucket}` + (!ctx.params.key && ctx.path.endsWith('/') ? '/' : '')",
  );
  const mod = { exports: {} as unknown };
  new Function("require", "module", "exports", fixed)(createRequire(path), mod, mod.exports);
  require.cache[path] = { id: path, filename: path, loaded: true, exports: mod.exports } as any;
}

if (import.meta.main) {
  const [dir, address, port, bucket, secret] = process.argv.slice(2);
  loadFixedAuthentication();
  const S3rver = require("@20minutes/s3rver");
  const Account = require("@20minutes/s3rver/lib/models/account");
  Account.DUMMY_ACCOUNT.revokeAccessKey("S3RVER");
  Account.DUMMY_ACCOUNT.createKeyPair(S3_KEY, secret);
  const tls = makeTestCa(join(dir!, "tls"), address!);
  const server = new S3rver({
    address,
    port: Number(port),
    silent: true,
    directory: join(dir!, "data"),
    key: readFileSync(tls.key),
    cert: readFileSync(tls.cert),
    configureBuckets: [{ name: bucket }],
  });
  await server.run();
  console.log("ready");
}
