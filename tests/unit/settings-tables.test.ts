/**
 * The three settings tables on the one engine: the generated pages match them,
 * the customer file judges addresses like the env file (the drift issue 12
 * found), and clusters/<name>/cluster.env (issue 14) has its schema.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseClientSettings } from "../../scripts/lib/deploy/settings";
import { ToolkitError } from "../../scripts/lib/errors";
import { parseClusterSettings, sameNetwork, TIMING_PRESETS } from "../../scripts/lib/settings/cluster";
import { SETTINGS_PAGES } from "../../scripts/lib/settings/docs";
import { timingProblem } from "../../scripts/lib/settings/env";

const ROOT = join(import.meta.dir, "../..");
const caught = (f: () => unknown): ToolkitError => {
  try {
    f();
  } catch (e) {
    if (e instanceof ToolkitError) return e;
    throw e;
  }
  throw new Error("expected a ToolkitError");
};
const said = (e: ToolkitError) => [e.code, e.message, e.fix];

describe("settings pages", () => {
  for (const p of SETTINGS_PAGES) {
    test(`${p.path} is the table (regenerate: make settings-docs)`, () => {
      expect(readFileSync(join(ROOT, p.path), "utf8")).toBe(p.text());
    });
  }
  test("the env page lists every key of the committed dev env file", () => {
    const page = readFileSync(join(ROOT, "envs/README.md"), "utf8");
    const keys = readFileSync(join(ROOT, "envs/dev.env"), "utf8").match(/^[A-Z_]+(?==)/gm) ?? [];
    expect(keys.filter((k) => !page.includes(`| \`${k}\` |`))).toEqual([]);
    expect(page).toContain("| `PG_PORT` | required | Postgres port on every member, e.g. 5432 |");
    expect(page).toContain("| `BACKUP_JOBS` | `2` | parallel jobs for pg_dump/pg_restore/pgBackRest, e.g. 2 |");
  });
});

describe("client.env judges addresses like an env file", () => {
  const ACME = "CLIENT_NAME=acme\nHOST=local\nDOMAIN=acme.internal\nACCESS=internal\nPROFILE=16\nREMOTE_DIR=/opt/pgplatform/acme\nMEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13\nHAPROXY_ADDRESS=127.0.0.1\nAPI_ADDRESS=127.0.0.1\n";
  const F = "clients/acme/client.env";
  test("an address part over 255 is refused (it was accepted)", () => {
    expect(said(caught(() => parseClientSettings(ACME.replace("HAPROXY_ADDRESS=127.0.0.1", "HAPROXY_ADDRESS=127.0.0.300"), F)))).toEqual([
      "BAD_CLIENT_CONFIG",
      `${F}: HAPROXY_ADDRESS: each part of an IPv4 address must be 0-255 (got "127.0.0.300")`,
      "where HAProxy listens on the target",
    ]);
  });
  test("member addresses: exactly three distinct IPv4 addresses, in client.env itself", () => {
    const bad = (v: string) => caught(() => parseClientSettings(ACME.replace("MEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13", `MEMBER_ADDRESSES=${v}`), F)).message;
    expect([bad("127.0.0.11,127.0.0.12"), bad("127.0.0.11,127.0.0.11,127.0.0.13"), bad("pg1,pg2,pg3")]).toEqual([
      `${F}: MEMBER_ADDRESSES: must list exactly 3 addresses (got "127.0.0.11,127.0.0.12")`,
      `${F}: MEMBER_ADDRESSES: addresses must differ (got "127.0.0.11,127.0.0.11,127.0.0.13")`,
      `${F}: MEMBER_ADDRESSES: must be an IPv4 address like 127.0.0.11 (got "pg1,pg2,pg3")`,
    ]);
    expect(parseClientSettings(ACME.replace("127.0.0.11,", " 127.0.0.11 , "), F).memberAddresses).toEqual(["127.0.0.11", "127.0.0.12", "127.0.0.13"]);
  });
  test("a typo gets a suggestion (it got the whole key list)", () => {
    expect(said(caught(() => parseClientSettings(ACME + "SSH_PROT=22\n", F)))).toEqual(["BAD_CLIENT_CONFIG", `${F}: SSH_PROT: unknown setting`, "did you mean SSH_PORT?"]);
    expect(caught(() => parseClientSettings(ACME + "WHATEVER_ELSE=1\n", F)).fix).toBe("remove it; known keys are listed in clients/README.md");
  });
});

describe("clusters/<name>/cluster.env", () => {
  const F = "clusters/crm/cluster.env";
  const BASE = "CLUSTER_NAME=crm\nHOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3\nVIP=10.0.0.50\n";
  const bad = (text: string) => said(caught(() => parseClusterSettings(text, F)));

  test("defaults and derived hosts", () => {
    expect(parseClusterSettings(BASE, F)).toEqual({
      name: "crm",
      file: F,
      hosts: [1, 2, 3].map((i) => ({ index: i, name: `crm${i}`, user: "ops", address: `10.0.0.${i}`, ssh: `ops@10.0.0.${i}`, root: "/" })),
      vip: "10.0.0.50",
      vipPrefix: 24,
      vipInterface: "eth0",
      timing: { name: "lan", ttl: 10, loopWait: 1, retryTimeout: 3, expectedRto: TIMING_PRESETS.lan.expectedRto },
      ssh: { port: 22, identity: "", knownHosts: "" },
      ports: { pg: 5432, patroni: 8008, etcdClient: 2379, etcdPeer: 2380, rw: 5000, ro: 5001, stats: 7000 },
      sharedBuffers: "128MB",
      pgBinDir: "/usr/lib/postgresql/15/bin",
    });
  });

  test("presets: wan is 30/10/10, and both keep loop_wait + 2*retry_timeout <= ttl", () => {
    expect(parseClusterSettings(BASE + "TIMING=wan\n", F).timing).toEqual({ name: "wan", ttl: 30, loopWait: 10, retryTimeout: 10, expectedRto: "up to 40 s (ttl 30 + loop_wait 10)" });
    expect(Object.values(TIMING_PRESETS).map((t) => timingProblem(t))).toEqual([undefined, undefined]);
  });

  test("HOST_ROOT's %i gives each lab host its own root; command-line values win over the file", () => {
    expect(parseClusterSettings(BASE + "HOST_ROOT=/var/lib/pgplab/h%i/root\n", F).hosts.map((h) => h.root)).toEqual(["/var/lib/pgplab/h1/root", "/var/lib/pgplab/h2/root", "/var/lib/pgplab/h3/root"]);
    expect(parseClusterSettings(BASE, F, { VIP: "10.0.0.60", HOSTS: undefined, TIMING: "" }).vip).toBe("10.0.0.60");
  });

  test("HOSTS: exactly three, each user@IPv4, no machine twice", () => {
    expect(bad(BASE.replace(",ops@10.0.0.3", ""))).toEqual(["CLUSTER_SETTING", `${F}: HOSTS: must list exactly 3 hosts (one etcd + Patroni member each) (got "ops@10.0.0.1,ops@10.0.0.2")`, "three ssh destinations, e.g. HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3"]);
    expect(bad(BASE.replace("ops@10.0.0.2", "10.0.0.2"))[1]).toBe(`${F}: HOSTS: each host must be user@address (got "ops@10.0.0.1,10.0.0.2,ops@10.0.0.3")`);
    expect(bad(BASE.replace("ops@10.0.0.2", "ops@10.0.0.256"))[1]).toBe(`${F}: HOSTS: each host's address must be IPv4 (0-255 each part) (got "ops@10.0.0.1,ops@10.0.0.256,ops@10.0.0.3")`);
    expect(bad(BASE.replace("ops@10.0.0.3", "root@10.0.0.1"))).toEqual(["CLUSTER_SETTING", `${F}: HOSTS: 10.0.0.1 is listed twice (hosts 1 and 3): two members on one machine are not HA`, "list three different machines"]);
  });

  test("the VIP: an IPv4 address, free, in every host's network", () => {
    expect(bad(BASE.replace("VIP=10.0.0.50", "VIP=10.0.0"))).toEqual(["CLUSTER_SETTING", `${F}: VIP: must be an IPv4 address like 127.0.0.11 (got "10.0.0")`, "the floating client address, a free address in the hosts' network, e.g. VIP=10.0.0.50"]);
    expect(bad(BASE.replace("VIP=10.0.0.50", "VIP=10.0.0.2"))).toEqual(["CLUSTER_SETTING", `${F}: VIP: 10.0.0.2 is one of the hosts' own addresses`, "pick a free address in the hosts' network"]);
    expect(bad(BASE.replace("VIP=10.0.0.50", "VIP=10.0.1.50"))).toEqual([
      "CLUSTER_SETTING",
      `${F}: VIP: 10.0.1.50 is not in the network of host 10.0.0.1 (/24): the floating address must be reachable on every host's link`,
      "pick an address of the hosts' private network, or fix VIP_PREFIX",
    ]);
    expect(parseClusterSettings(BASE.replace("VIP=10.0.0.50", "VIP=10.0.1.50") + "VIP_PREFIX=16\n", F).vip).toBe("10.0.1.50");
    expect([sameNetwork("10.0.0.1", "10.0.0.254", 24), sameNetwork("10.0.0.1", "10.0.1.1", 24), sameNetwork("10.0.0.1", "10.0.1.1", 23), sameNetwork("10.0.0.1", "10.0.0.2", 32)]).toEqual([true, false, true, false]);
  });

  test("unknown keys, missing keys, clashing ports, a bad preset", () => {
    expect(bad(BASE + "VIPP=1\n")).toEqual(["CLUSTER_SETTING", `${F}: VIPP: unknown setting`, "did you mean VIP?"]);
    expect(bad("CLUSTER_NAME=crm\nVIP=10.0.0.50\n")).toEqual(["CLUSTER_SETTING", `${F}: HOSTS: is missing`, "add a line HOSTS=... (three ssh destinations, e.g. HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3)"]);
    expect(bad(BASE + "HAPROXY_RO_PORT=5000\n")).toEqual(["CLUSTER_SETTING", `${F}: HAPROXY_RO_PORT: port 5000 is also used by HAPROXY_RW_PORT`, "give each listener a port of its own"]);
    expect(bad(BASE + "TIMING=fast\n")[1]).toBe(`${F}: TIMING: must be lan or wan (got "fast")`);
    expect(bad(BASE.replace("crm", "Crm"))[1]).toBe(`${F}: CLUSTER_NAME: must be 2-21 lowercase letters/digits, starting with a letter (got "Crm")`);
  });
});
