/**
 * deploy-client when ssh fails (issue 10, item 14): the user sees ssh's own
 * error line and the fix for its kind, never a guess ("cannot read the
 * memory of ..."), and nothing of the new client is written. A throwaway
 * sshd on 127.0.7.4:22 (the deploy block) that accepts only a key the
 * operator does not have; nothing listens on 127.0.7.9:22.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { keygen, startSshd, type Sshd } from "./sshd";

const ROOT = resolve(import.meta.dir, "../..");
const tmp = mkdtempSync(join(tmpdir(), "pgp-deploy-ssh-"));
const clientsDir = join(tmp, "clients");
let sshd: Sshd | undefined;

/** A new client from flags, as `make deploy-client CLIENT=... HOST=... DOMAIN=... ACCESS=internal PLAN=1` runs it (no PROFILE: it is detected over ssh). */
const newClient = (name: string, host: string, extra: string[] = []) => {
  const r = spawnSync(
    process.execPath,
    [
      "scripts/deploy-client.ts",
      "--client",
      name,
      "--host",
      host,
      "--domain",
      `${name}.internal`,
      "--access",
      "internal",
      "--plan",
      ...extra,
    ],
    {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, CLIENTS_DIR: clientsDir, CI: "true" },
      timeout: 120_000,
    },
  );
  return { code: r.status ?? -1, stderr: r.stderr ?? "" };
};

beforeAll(async () => {
  sshd = await startSshd(tmp, "127.0.7.4", 22, `${keygen(join(tmp, "someone-else"))}.pub`);
}, 30_000);

afterAll(async () => {
  await sshd?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("deploy-client: ssh failures are ssh's own error line with a fix", () => {
  test("a refused connection", () => {
    const r = newClient("refused7", "root@127.0.7.9");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "error [SSH_FAILED]: ssh to root@127.0.7.9:22 failed: ssh: connect to host 127.0.7.9 port 22: Connection refused\n",
    );
    expect(r.stderr).toContain(
      "fix: nothing accepts ssh at root@127.0.7.9:22: start sshd on the server, or fix HOST/SSH_PORT in clients/refused7/client.env",
    );
    expect(r.stderr).not.toContain("cannot read the memory");
    expect(existsSync(join(clientsDir, "refused7"))).toBe(false);
  }, 60_000);

  test("an unknown host key, then (first contact allowed) a key the server does not accept", () => {
    const unknown = newClient("denied7", "root@127.0.7.4");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(
      "error [HOST_KEY_UNKNOWN]: ssh to root@127.0.7.4:22: no host key is pinned for 127.0.7.4 in ",
    );
    expect(existsSync(join(clientsDir, "denied7"))).toBe(false);

    const denied = newClient("denied7", "root@127.0.7.4", ["--trust-new-host"]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain(
      "error [SSH_FAILED]: ssh to root@127.0.7.4:22 failed: root@127.0.7.4: Permission denied (publickey).\n",
    );
    expect(denied.stderr).toContain(
      "fix: authorize the operator's key on the server (ssh-copy-id -p 22 root@127.0.7.4), or set SSH_IDENTITY in clients/denied7/client.env to a key it accepts",
    );
    expect(denied.stderr).not.toContain("cannot read the memory");
    expect(existsSync(join(clientsDir, "denied7", "client.env"))).toBe(false);
    // the host key was verified before authentication failed: pinned as asked
    expect(readFileSync(join(clientsDir, "denied7", "known_hosts"), "utf8").trim()).toBe(`127.0.7.4 ${sshd!.hostKey}`);
  }, 60_000);
});
