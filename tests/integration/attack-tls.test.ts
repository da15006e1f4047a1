/**
 * Attack on the TLS sites' profile (issue 11, item 12): the real nginx serves a
 * rendered environment site (nginx/client-site.conf.tmpl) on the stack's
 * address block, and a client tries to talk it down to TLS 1.1 or to a CBC,
 * non-AEAD cipher. Before the cipher list, nginx's default (HIGH:!aNULL:!MD5)
 * accepted ECDHE with AES-CBC-SHA1 on TLS 1.2. Mozilla's intermediate profile
 * must refuse both and still speak TLS 1.2 (AEAD) and 1.3.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderSites, wrapperConfig } from "../../scripts/lib/deploy/nginx";
import { parseClientSettings } from "../../scripts/lib/deploy/settings";
import { ensureInternalTls } from "../../scripts/lib/deploy/tls";
import { portFree } from "../../scripts/lib/ports";
import { runRoot } from "./attacker-etcdsec";
import { testConfig } from "./stack";

const cfg = testConfig();
// The stack's own block (x.y.z.3): nothing of the stack listens there.
const ADDRESS = cfg.api.address.split(".").slice(0, 3).join(".") + ".3";
const PORT = 16443;
const tmp = mkdtempSync(join(tmpdir(), "pgp-etcdsec-tls-"));
let nginx: ChildProcess | undefined;

beforeAll(async () => {
  const s = parseClientSettings(
    `CLIENT_NAME=acme\nHOST=local\nDOMAIN=acme.internal\nPROFILE=16\nREMOTE_DIR=${tmp}\nMEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13\nHAPROXY_ADDRESS=127.0.0.1\nAPI_ADDRESS=${ADDRESS}\nPORT_DEV=${PORT}\nACCESS=internal\n`,
    "acme",
  );
  const tls = await ensureInternalTls(join(tmp, "tls"), s);
  const site = renderSites(join(import.meta.dir, "../.."), s, {
    tlsCert: tls.paths.cert,
    tlsKey: tls.paths.key,
    webroot: join(tmp, "webroot"),
  }).find((f) => f.name === "client-acme-dev.conf")!;
  mkdirSync(join(tmp, "tmp"), { recursive: true });
  writeFileSync(join(tmp, site.name), site.content);
  writeFileSync(join(tmp, "nginx.conf"), wrapperConfig(tmp, [join(tmp, site.name)]));
  nginx = spawn("nginx", ["-p", tmp, "-c", join(tmp, "nginx.conf"), "-g", "daemon off;"], { stdio: "ignore" });
  for (let i = 0; i < 100 && (await portFree(ADDRESS, PORT)); i++) await Bun.sleep(50);
  if (await portFree(ADDRESS, PORT)) throw new Error(`nginx did not listen on ${ADDRESS}:${PORT}`);
});
afterAll(() => {
  nginx?.kill("SIGTERM");
  rmSync(tmp, { recursive: true, force: true });
});

/** One TLS handshake with openssl s_client; the client offers exactly what the arguments say (SECLEVEL 0: it would accept anything). */
function handshake(...args: string[]) {
  const r = runRoot([
    "openssl",
    "s_client",
    "-connect",
    `${ADDRESS}:${PORT}`,
    "-servername",
    "dev.acme.internal",
    ...args,
  ]);
  const out = r.stdout + r.stderr;
  // s_client exits 1 at EOF on stdin even after a good handshake: judge by the negotiated cipher.
  return {
    ok: /Cipher is (?!\(NONE\))/.test(out),
    protocol: out.match(/^\s*Protocol\s*:\s*(\S+)/m)?.[1] ?? out.match(/^New, (TLSv[\d.]+),/m)?.[1],
    cipher: out.match(/Cipher is (\S+)/)?.[1],
    out,
  };
}

describe("the TLS sites speak Mozilla's intermediate profile only", () => {
  test("attack: a client that offers only TLS 1.1 is refused", () => {
    const h = handshake("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0");
    expect(h.ok).toBe(false);
    expect(h.out).toMatch(/alert protocol version|no protocols available|unsupported protocol/);
  });

  test("attack: a client that offers only CBC (non-AEAD) suites on TLS 1.2 is refused", () => {
    const h = handshake(
      "-tls1_2",
      "-cipher",
      "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:AES128-SHA:AES256-SHA:@SECLEVEL=0",
    );
    expect({ ok: h.ok, refused: /handshake failure|no shared cipher/.test(h.out) }).toEqual({
      ok: false,
      refused: true,
    });
  });

  test("TLS 1.2 with an AEAD suite and TLS 1.3 work", () => {
    const h12 = handshake("-tls1_2");
    expect({ ok: h12.ok, cipher: h12.cipher }).toEqual({
      ok: true,
      cipher: expect.stringMatching(/^ECDHE-(ECDSA|RSA)-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$/),
    });
    const h13 = handshake("-tls1_3");
    expect(h13.ok).toBe(true);
    expect(h13.out).toContain("TLSv1.3");
  });
});
