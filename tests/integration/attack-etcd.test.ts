/**
 * Attacks on the DCS (issue 11, item 1): a local user who can reach etcd's
 * ports must get nothing. Before mutual TLS, a plain PUT to Patroni's /config
 * key set an archive_command that postgres would run, and a PUT to /leader
 * forced a failover past the REST API's password. Each test performs the
 * attack for real, as an unprivileged user it creates, and passes when etcd
 * refuses it and the keys are unchanged.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { etcdFetch } from "../../scripts/lib/etcd-client";
import { etcdTlsFiles } from "../../scripts/lib/etcd-tls";
import { patroniEtcdTlsFiles, nativeEtcdTlsDir } from "../../scripts/lib/stack-files";
import { createAttacker, removeAttacker, runAs, runRoot, type Attempt } from "./attacker-etcdsec";
import { runScript, testConfig, waitClusterHealthy } from "./stack";

const cfg = testConfig();
const ATTACKER = "pgp-etcdsec-attacker";
const keyPath = (k: string) => `/v2/keys${cfg.namespace}${cfg.clusterName}/${k}`;

/** The key's value as Patroni sees it (read with the toolkit's client certificate). */
async function keyValue(k: string): Promise<string> {
  for (const m of cfg.members) {
    try {
      const r = await etcdFetch(cfg, m, keyPath(k), { signal: AbortSignal.timeout(2000) });
      if (r.ok) return ((await r.json()) as { node: { value: string } }).node.value;
    } catch {}
  }
  throw new Error(`no etcd member answers ${k} even with the client certificate`);
}

/** curl every member on both schemes; -k: the attacker does not care who answers. */
function curlAll(user: string | undefined, args: string[], path: string): { url: string; r: Attempt }[] {
  const out = [];
  for (const m of cfg.members) {
    for (const scheme of ["http", "https"]) {
      const url = `${scheme}://${m.address}:${m.etcdClientPort}${path}`;
      const argv = ["curl", "-sS", "-k", "--max-time", "5", ...args, url];
      out.push({ url, r: user ? runAs(user, argv) : runRoot(argv) });
    }
  }
  return out;
}

/** The refusal etcd gives: plain HTTP gets no answer, TLS without a client certificate is cut at the handshake. */
function expectRefused(tries: { url: string; r: Attempt }[]) {
  for (const { url, r } of tries) {
    expect({ url, answered: r.stdout }).toEqual({ url, answered: "" });
    if (url.startsWith("http:"))
      expect({ url, code: r.code, err: r.stderr.trim() }).toEqual({
        url,
        code: 52,
        err: "curl: (52) Empty reply from server",
      });
    // TLS 1.3 sends the server's "certificate required" alert after the client's handshake ends, so
    // curl reports it as a failed send/receive (55/56) or a failed handshake (35), never an answer.
    else expect({ url, refusedAtTls: [35, 55, 56].includes(r.code) }).toEqual({ url, refusedAtTls: true });
  }
}

beforeAll(async () => {
  createAttacker(ATTACKER);
  await waitClusterHealthy(cfg);
});
afterAll(() => removeAttacker(ATTACKER));

describe("etcd refuses everyone without a certificate from the stack's CA", () => {
  test("attack: a local user PUTs an archive_command into Patroni's /config key", async () => {
    const before = await keyValue("config");
    const evil = JSON.stringify({
      ...JSON.parse(before),
      postgresql: { parameters: { archive_command: "touch /tmp/pgp-etcdsec-pwned" } },
    });
    expectRefused(curlAll(ATTACKER, ["-X", "PUT", "--data-urlencode", `value=${evil}`], keyPath("config")));
    expect(await keyValue("config")).toBe(before);
  });

  test("attack: a local user overwrites the leader key to force a failover", async () => {
    const leader = await keyValue("leader");
    const other = cfg.members.find((m) => m.name !== leader)!.name;
    expectRefused(curlAll(ATTACKER, ["-X", "PUT", "-d", `value=${other}`, "-d", "prevExist=true"], keyPath("leader")));
    expect(await keyValue("leader")).toBe(leader);
    expect((await waitClusterHealthy(cfg)).leader).toBe(leader);
  });

  test("attack: a local user reads the cluster's keys", () => {
    expectRefused(curlAll(ATTACKER, [], `${keyPath("")}?recursive=true`));
  });

  test("attack: root with curl but no client certificate is refused too", () => {
    expectRefused(curlAll(undefined, ["-X", "PUT", "-d", "value=pg1"], keyPath("leader")));
  });

  test("attack: a local user reads the keys that would let it in", () => {
    const tls = etcdTlsFiles(nativeEtcdTlsDir(cfg));
    const secrets = [
      tls.caKey,
      tls.client.key,
      ...cfg.members.map((m) => tls.member(m).key),
      ...cfg.members.map((m) => patroniEtcdTlsFiles(m).key),
      ...cfg.members.map((m) => join(m.dir, "patroni.yml")),
    ];
    for (const f of secrets) {
      const r = runAs(ATTACKER, ["cat", f]);
      expect({ f, code: r.code, out: r.stdout, denied: /Permission denied/.test(r.stderr) }).toEqual({
        f,
        code: 1,
        out: "",
        denied: true,
      });
    }
  });

  test("attack: a client that offers only TLS 1.1 is refused", () => {
    const m = cfg.members[0]!;
    const r = runAs(ATTACKER, ["openssl", "s_client", "-connect", `${m.address}:${m.etcdClientPort}`, "-tls1_1"], "");
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/alert protocol version|no protocols available|unsupported protocol/);
  });

  test("the toolkit's certificate is accepted (the refusals above are authentication, not a dead etcd)", async () => {
    expect(await keyValue("leader")).toMatch(/^pg[123]$/);
    // make status asks every etcd member with the client certificate.
    const r = runScript("status.ts", ["--json"]);
    expect(JSON.parse(r.stdout).etcd).toEqual(cfg.members.map((m) => ({ name: m.etcdName, healthy: true })));
  });
});
