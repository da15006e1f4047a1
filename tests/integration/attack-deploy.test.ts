/**
 * Attacks on make deploy-client (issue 11 items 6 and 13). The "customer's
 * server" is this machine, reached over ssh through a throwaway sshd on
 * 127.0.7.2:2228 (the deploy block); the attacker is an unprivileged local
 * user created here. Each test passes when the attack fails. No cluster is
 * started: the deploy is driven up to (and including) the upload.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ToolkitError } from "../../scripts/lib/errors";
import { deployClient, planRelease, prepareRemoteDirs, uploadRelease } from "../../scripts/lib/deploy/deploy";
import { loadClientSettings, remoteLayout } from "../../scripts/lib/deploy/settings";
import { openTarget, type Target } from "../../scripts/lib/deploy/target";
import { asUser, keygen, makeUser, startSshd, writeTestClientEnv, type Sshd } from "./sshd";

const ROOT = resolve(import.meta.dir, "../..");
const NAME = "at7";
const ADDR = "127.0.7.2";
const PORT = 2228;
const ATTACKER = "pgp-deploy-attacker";
const REMOTE_DIR = `/var/tmp/pgplatform-clients/${NAME}`;
const tmp = mkdtempSync(join(tmpdir(), "pgp-attack-deploy-"));
const clientsDir = join(tmp, "clients");
const key = join(tmp, "id_ed25519");
const knownHosts = join(clientsDir, NAME, "known_hosts");
let sshd: Sshd | undefined;
let removeUser = () => {};

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8).padStart(4, "0");
const settings = () => loadClientSettings(NAME, clientsDir);
const failure = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => undefined,
    (x) => x,
  );
  if (!(e instanceof ToolkitError))
    throw new Error(`expected a ToolkitError, got ${e === undefined ? "success" : String(e)}`);
  return e;
};

beforeAll(async () => {
  rmSync(REMOTE_DIR, { recursive: true, force: true });
  keygen(key);
  sshd = await startSshd(tmp, ADDR, PORT, `${key}.pub`);
  writeTestClientEnv(clientsDir, {
    name: NAME,
    addr: ADDR,
    port: PORT,
    key,
    remoteDir: REMOTE_DIR,
    members: "127.0.7.21,127.0.7.22,127.0.7.23",
  });
  removeUser = await makeUser(ATTACKER);
}, 60_000);

afterAll(async () => {
  await sshd?.stop();
  removeUser();
  rmSync(REMOTE_DIR, { recursive: true, force: true });
  rmSync(join(ROOT, ".state", "clients", NAME), { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe("deploy-client: ssh host keys (issue 11, item 13)", () => {
  test("attack: a first-seen host key is refused without TRUST_NEW_HOST, before anything changes", async () => {
    const e = await failure(deployClient(settings(), { clientsBase: clientsDir, sourceDir: ROOT, planOnly: true })); // PLAN: even a broken guard cannot deploy here
    expect(e.code).toBe("HOST_KEY_UNKNOWN");
    expect(e.message).toStartWith(
      `ssh to root@${ADDR}:${PORT}: no host key is pinned for [${ADDR}]:${PORT} in ${knownHosts}; refusing a first-seen key without being asked; nothing was changed. The server now offers ED25519 SHA256:`,
    );
    expect(e.fix).toContain("TRUST_NEW_HOST=1");
    expect(e.detail).toBe(`No ED25519 host key is known for [${ADDR}]:${PORT} and you have requested strict checking.`);
    // nothing pinned, nothing generated here, nothing made there
    expect(existsSync(knownHosts)).toBe(false);
    expect(existsSync(join(clientsDir, NAME, ".secrets.env"))).toBe(false);
    expect(existsSync(join(ROOT, ".state", "clients", NAME))).toBe(false);
    expect(existsSync(REMOTE_DIR)).toBe(false);
  }, 60_000);

  test("attack: after first contact pinned the key, an impostor sshd with another key on the same address is refused", async () => {
    // First contact, asked for explicitly: recorded in the client's own file and reported.
    const t = openTarget(settings(), { trustNewHost: true });
    const first = await t.connect().finally(() => t.close());
    expect(first.recorded).toStartWith(`recorded the host key of [${ADDR}]:${PORT} (ED25519 SHA256:`);
    expect(first.recorded).toContain(
      `in ${knownHosts}: first contact, trusted because TRUST_NEW_HOST was given; commit the file`,
    );
    const pinned = readFileSync(knownHosts, "utf8");
    expect(pinned.trim()).toBe(`[${ADDR}]:${PORT} ${sshd!.hostKey}`);
    // Known now: no flag needed, nothing re-recorded.
    const again = openTarget(settings());
    expect(await again.connect().finally(() => again.close())).toEqual({});

    // The impostor: same address and port, its own host key (a man in the middle, or a swapped server).
    await sshd!.stop();
    const impostor = await startSshd(tmp, ADDR, PORT, `${key}.pub`, "impostor");
    try {
      for (const trustNewHost of [false, true]) {
        const e = await failure(
          deployClient(settings(), { clientsBase: clientsDir, sourceDir: ROOT, trustNewHost, planOnly: true }),
        );
        expect(e.code).toBe("HOST_KEY_CHANGED");
        expect(e.message).toStartWith(
          `ssh to root@${ADDR}:${PORT}: the host key differs from the one pinned for [${ADDR}]:${PORT} in ${knownHosts}: another machine may be answering (a man in the middle), or the server was reinstalled; nothing was changed.`,
        );
        expect(e.fix).toContain(`ssh-keygen -R '[${ADDR}]:${PORT}' -f ${knownHosts}`);
      }
      expect(readFileSync(knownHosts, "utf8")).toBe(pinned);
      expect(existsSync(REMOTE_DIR)).toBe(false);
    } finally {
      await impostor.stop();
      sshd = await startSshd(tmp, ADDR, PORT, `${key}.pub`); // the real server again (its key is kept in tmp/sshd)
    }
  }, 60_000);
});

describe("deploy-client: the release tarball on the customer's server (issue 11, item 6)", () => {
  test("attack: a local user reads the tarball (every secret, the TLS key) in incoming/ during the upload, and incoming/ after", async () => {
    const s = settings();
    const l = remoteLayout(s);
    // incoming/ as an older toolkit left it: world-readable, with a stale tarball in it
    mkdirSync(l.incoming, { recursive: true, mode: 0o755 });
    writeFileSync(join(l.incoming, "release-stale.tar"), "stale secrets", { mode: 0o644 });
    const t = openTarget(s, { trustNewHost: true }); // stands alone: pins the key if the test above did not run
    const seen: {
      remote: string;
      local: string;
      modes: Record<string, string>;
      reads: Record<string, { code: number; out: string }>;
    }[] = [];
    // The deploy's own target, observed at the moment each tarball has fully arrived and is not yet unpacked.
    const observed: Target = {
      ...t,
      put: async (local, remote) => {
        await t.put(local, remote);
        seen.push({
          remote,
          local,
          modes: {
            remote: mode(remote),
            incoming: mode(l.incoming),
            local: mode(local),
            localDir: mode(join(local, "..")),
          },
          reads: {
            remote: asUser(ATTACKER, ["cat", remote]),
            incoming: asUser(ATTACKER, ["ls", l.incoming]),
            stale: asUser(ATTACKER, ["cat", join(l.incoming, "release-stale.tar")]),
          },
        });
      },
    };
    try {
      await prepareRemoteDirs(observed, s);
      const { plan } = await planRelease(s, { clientsBase: clientsDir, sourceDir: ROOT });
      await uploadRelease(observed, s, plan, 1, ROOT, () => {});
    } finally {
      await t.close();
    }
    const release = seen.find((x) => x.remote.endsWith(".tar") && x.remote.includes("/release-"))!;
    expect(release).toBeDefined();
    expect(release.reads).toEqual({
      remote: { code: 1, out: `cat: ${release.remote}: Permission denied` },
      incoming: { code: 2, out: `ls: cannot open directory '${l.incoming}': Permission denied` },
      stale: { code: 1, out: `cat: ${join(l.incoming, "release-stale.tar")}: Permission denied` },
    });
    expect(release.modes).toEqual({ remote: "0600", incoming: "0700", local: "0600", localDir: "0700" });
    for (const x of seen) expect(x.modes.remote).toBe("0600"); // node_modules' tarball too
    // After: the tarball is gone, incoming/ and the release stay closed to the attacker.
    expect(existsSync(release.remote)).toBe(false);
    expect(mode(l.incoming)).toBe("0700");
    expect(mode(`${l.releases}/1`)).toBe("0700");
    expect(asUser(ATTACKER, ["ls", l.incoming])).toEqual({
      code: 2,
      out: `ls: cannot open directory '${l.incoming}': Permission denied`,
    });
    expect(asUser(ATTACKER, ["cat", `${l.releases}/1/client/tls/server.key`])).toEqual({
      code: 1,
      out: `cat: ${l.releases}/1/client/tls/server.key: Permission denied`,
    });
  }, 300_000);
});
