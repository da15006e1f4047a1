import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ToolkitError } from "../../scripts/lib/errors";
import { TIMING_PRESETS, parseClusterSettings } from "../../scripts/lib/cluster/settings";

const F = "clusters/crm/cluster.env";
const BASE = "CLUSTER_NAME=crm\nHOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3\nVIP=10.0.0.50\n";
const err = (text: string): ToolkitError => {
  try {
    parseClusterSettings(text, F);
  } catch (e) {
    return e as ToolkitError;
  }
  throw new Error("expected an error");
};

describe("cluster settings", () => {
  test("defaults and derived hosts", () => {
    const s = parseClusterSettings(BASE, F);
    expect(s.hosts).toEqual([
      { index: 1, name: "crm1", user: "ops", address: "10.0.0.1", ssh: "ops@10.0.0.1", root: "/" },
      { index: 2, name: "crm2", user: "ops", address: "10.0.0.2", ssh: "ops@10.0.0.2", root: "/" },
      { index: 3, name: "crm3", user: "ops", address: "10.0.0.3", ssh: "ops@10.0.0.3", root: "/" },
    ]);
    expect(s.timing).toEqual({
      name: "lan",
      ttl: 10,
      loopWait: 1,
      retryTimeout: 3,
      expectedRto: TIMING_PRESETS.lan.expectedRto,
    });
    expect(s.ports).toEqual({
      pg: 5432,
      patroni: 8008,
      etcdClient: 2379,
      etcdPeer: 2380,
      rw: 5000,
      ro: 5001,
      stats: 7000,
    });
    expect(s.vipInterface).toBe("eth0");
  });

  test("presets keep Patroni's rule loop_wait + 2*retry_timeout <= ttl", () => {
    expect(parseClusterSettings(BASE + "TIMING=wan\n", F).timing).toMatchObject({
      ttl: 30,
      loopWait: 10,
      retryTimeout: 10,
    });
    for (const t of Object.values(TIMING_PRESETS)) expect(t.loopWait + 2 * t.retryTimeout).toBeLessThanOrEqual(t.ttl);
  });

  test("HOST_ROOT's %i gives each lab host its own root", () => {
    expect(parseClusterSettings(BASE + "HOST_ROOT=/var/lib/pgplab/h%i/root\n", F).hosts.map((h) => h.root)).toEqual([
      "/var/lib/pgplab/h1/root",
      "/var/lib/pgplab/h2/root",
      "/var/lib/pgplab/h3/root",
    ]);
  });

  test("HOST_ROOT's %a keys a host's root by its address (a replacement never shares its predecessor's files)", () => {
    expect(parseClusterSettings(BASE + "HOST_ROOT=/var/lib/pgplab/%a/root\n", F).hosts.map((h) => h.root)).toEqual(
      parseClusterSettings(BASE, F).hosts.map((h) => `/var/lib/pgplab/${h.address}/root`),
    );
  });

  test("command-line values win over the file", () => {
    expect(parseClusterSettings(BASE, F, { VIP: "10.0.0.60" }).vip).toBe("10.0.0.60");
  });

  test("errors name file, key, value and the fix", () => {
    const e = err(BASE.replace("VIP=10.0.0.50", "VIP=10.0.0"));
    expect(e.message).toBe('clusters/crm/cluster.env: VIP: must be an IPv4 address like 127.0.0.11 (got "10.0.0")');
    expect(e.fix).toBe("the floating client address, a free address in the hosts' network, e.g. VIP=10.0.0.50");
  });

  test("a duplicate host is refused", () => {
    expect(err(BASE.replace("ops@10.0.0.3", "ops@10.0.0.1")).message).toBe(
      "clusters/crm/cluster.env: HOSTS: 10.0.0.1 is listed twice (hosts 1 and 3): two members on one machine are not HA",
    );
  });

  test("exactly three hosts, each user@address", () => {
    expect(err(BASE.replace(",ops@10.0.0.3", "")).message).toBe(
      'clusters/crm/cluster.env: HOSTS: must list exactly 3 hosts (one etcd + Patroni member each) (got "ops@10.0.0.1,ops@10.0.0.2")',
    );
    expect(err(BASE.replace("ops@10.0.0.2", "10.0.0.2")).message).toBe(
      'clusters/crm/cluster.env: HOSTS: each host must be user@address (got "ops@10.0.0.1,10.0.0.2,ops@10.0.0.3")',
    );
  });

  test("the VIP must be free and in the hosts' network", () => {
    expect(err(BASE.replace("VIP=10.0.0.50", "VIP=10.0.0.2")).message).toBe(
      "clusters/crm/cluster.env: VIP: 10.0.0.2 is one of the hosts' own addresses",
    );
    expect(err(BASE.replace("VIP=10.0.0.50", "VIP=10.0.1.50")).message).toBe(
      "clusters/crm/cluster.env: VIP: 10.0.1.50 is not in the network of host 10.0.0.1 (/24): the floating address must be reachable on every host's link",
    );
  });

  test("unknown keys, missing keys, clashing ports", () => {
    expect(err(BASE + "VIPP=1\n").message).toBe("clusters/crm/cluster.env: VIPP: unknown setting");
    expect(err("CLUSTER_NAME=crm\nVIP=10.0.0.50\n").message).toBe("clusters/crm/cluster.env: HOSTS: is missing");
    expect(err(BASE + "HAPROXY_RO_PORT=5000\n").message).toBe(
      "clusters/crm/cluster.env: HAPROXY_RO_PORT: port 5000 is also used by HAPROXY_RW_PORT",
    );
    expect(err(BASE + "TIMING=fast\n").message).toBe(
      'clusters/crm/cluster.env: TIMING: must be lan or wan (got "fast")',
    );
  });

  test("the committed example is valid", () => {
    const text = readFileSync(join(import.meta.dir, "../../clusters/example/cluster.env"), "utf8");
    expect(parseClusterSettings(text, "clusters/example/cluster.env").vipInterface).toBe("ens10");
  });
});
