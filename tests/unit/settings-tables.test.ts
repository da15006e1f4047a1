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
  const ACME =
    "CLIENT_NAME=acme\nHOST=local\nDOMAIN=acme.internal\nACCESS=internal\nPROFILE=16\nREMOTE_DIR=/opt/pgplatform/acme\nMEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13\nHAPROXY_ADDRESS=127.0.0.1\nAPI_ADDRESS=127.0.0.1\n";
  const F = "clients/acme/client.env";
  test("an address part over 255 is refused (it was accepted)", () => {
    expect(
      said(
        caught(() => parseClientSettings(ACME.replace("HAPROXY_ADDRESS=127.0.0.1", "HAPROXY_ADDRESS=127.0.0.300"), F)),
      ),
    ).toEqual([
      "BAD_CLIENT_CONFIG",
      `${F}: HAPROXY_ADDRESS: each part of an IPv4 address must be 0-255 (got "127.0.0.300")`,
      "where HAProxy listens on the target",
    ]);
  });
  test("member addresses: exactly three distinct IPv4 addresses, in client.env itself", () => {
    const bad = (v: string) =>
      caught(() =>
        parseClientSettings(
          ACME.replace("MEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13", `MEMBER_ADDRESSES=${v}`),
          F,
        ),
      ).message;
    expect([bad("127.0.0.11,127.0.0.12"), bad("127.0.0.11,127.0.0.11,127.0.0.13"), bad("pg1,pg2,pg3")]).toEqual([
      `${F}: MEMBER_ADDRESSES: must list exactly 3 addresses (got "127.0.0.11,127.0.0.12")`,
      `${F}: MEMBER_ADDRESSES: addresses must differ (got "127.0.0.11,127.0.0.11,127.0.0.13")`,
      `${F}: MEMBER_ADDRESSES: must be an IPv4 address like 127.0.0.11 (got "pg1,pg2,pg3")`,
    ]);
    expect(parseClientSettings(ACME.replace("127.0.0.11,", " 127.0.0.11 , "), F).memberAddresses).toEqual([
      "127.0.0.11",
      "127.0.0.12",
      "127.0.0.13",
    ]);
  });
  test("a typo gets a suggestion (it got the whole key list)", () => {
    expect(said(caught(() => parseClientSettings(ACME + "SSH_PROT=22\n", F)))).toEqual([
      "BAD_CLIENT_CONFIG",
      `${F}: SSH_PROT: unknown setting`,
      "did you mean SSH_PORT?",
    ]);
    expect(caught(() => parseClientSettings(ACME + "WHATEVER_ELSE=1\n", F)).fix).toBe(
      "remove it; known keys are listed in clients/README.md",
    );
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
      hosts: [1, 2, 3].map((i) => ({
        index: i,
        name: `crm${i}`,
        user: "ops",
        address: `10.0.0.${i}`,
        ssh: `ops@10.0.0.${i}`,
        root: "/",
      })),
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
    expect(parseClusterSettings(BASE + "TIMING=wan\n", F).timing).toEqual({
      name: "wan",
      ttl: 30,
      loopWait: 10,
      retryTimeout: 10,
      expectedRto: "up to 40 s (ttl 30 + loop_wait 10)",
    });
    expect(Object.values(TIMING_PRESETS).map((t) => timingProblem(t))).toEqual([undefined, undefined]);
    // the same check refuses a timing that breaks the rule (so the line above is not true of a check that says nothing)
    expect(timingProblem({ ttl: 10, loopWait: 10, retryTimeout: 10 })).toBe(
      "loop_wait + 2*retry_timeout must be <= ttl (10 + 2*10 = 30 > 10)",
    );
  });

  test("HOST_ROOT's %i gives each lab host its own root; command-line values win over the file", () => {
    expect(parseClusterSettings(BASE + "HOST_ROOT=/var/lib/pgplab/h%i/root\n", F).hosts.map((h) => h.root)).toEqual([
      "/var/lib/pgplab/h1/root",
      "/var/lib/pgplab/h2/root",
      "/var/lib/pgplab/h3/root",
    ]);
    expect(parseClusterSettings(BASE, F, { VIP: "10.0.0.60", HOSTS: undefined, TIMING: "" }).vip).toBe("10.0.0.60");
  });

  test("HOSTS: exactly three, each user@IPv4, no machine twice", () => {
    expect(bad(BASE.replace(",ops@10.0.0.3", ""))).toEqual([
      "CLUSTER_SETTING",
      `${F}: HOSTS: must list exactly 3 hosts (one etcd + Patroni member each) (got "ops@10.0.0.1,ops@10.0.0.2")`,
      "three ssh destinations, e.g. HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3",
    ]);
    expect(bad(BASE.replace("ops@10.0.0.2", "10.0.0.2"))[1]).toBe(
      `${F}: HOSTS: each host must be user@address (got "ops@10.0.0.1,10.0.0.2,ops@10.0.0.3")`,
    );
    expect(bad(BASE.replace("ops@10.0.0.2", "ops@10.0.0.256"))[1]).toBe(
      `${F}: HOSTS: each host's address must be IPv4 (0-255 each part) (got "ops@10.0.0.1,ops@10.0.0.256,ops@10.0.0.3")`,
    );
    expect(bad(BASE.replace("ops@10.0.0.3", "root@10.0.0.1"))).toEqual([
      "CLUSTER_SETTING",
      `${F}: HOSTS: 10.0.0.1 is listed twice (hosts 1 and 3): two members on one machine are not HA`,
      "list three different machines",
    ]);
  });

  test("the VIP: an IPv4 address, free, in every host's network", () => {
    expect(bad(BASE.replace("VIP=10.0.0.50", "VIP=10.0.0"))).toEqual([
      "CLUSTER_SETTING",
      `${F}: VIP: must be an IPv4 address like 127.0.0.11 (got "10.0.0")`,
      "the floating client address, a free address in the hosts' network, e.g. VIP=10.0.0.50",
    ]);
    expect(bad(BASE.replace("VIP=10.0.0.50", "VIP=10.0.0.2"))).toEqual([
      "CLUSTER_SETTING",
      `${F}: VIP: 10.0.0.2 is one of the hosts' own addresses`,
      "pick a free address in the hosts' network",
    ]);
    expect(bad(BASE.replace("VIP=10.0.0.50", "VIP=10.0.1.50"))).toEqual([
      "CLUSTER_SETTING",
      `${F}: VIP: 10.0.1.50 is not in the network of host 10.0.0.1 (/24): the floating address must be reachable on every host's link`,
      "pick an address of the hosts' private network, or fix VIP_PREFIX",
    ]);
    expect(parseClusterSettings(BASE.replace("VIP=10.0.0.50", "VIP=10.0.1.50") + "VIP_PREFIX=16\n", F).vip).toBe(
      "10.0.1.50",
    );
    expect([
      sameNetwork("10.0.0.1", "10.0.0.254", 24),
      sameNetwork("10.0.0.1", "10.0.1.1", 24),
      sameNetwork("10.0.0.1", "10.0.1.1", 23),
      sameNetwork("10.0.0.1", "10.0.0.2", 32),
    ]).toEqual([true, false, true, false]);
  });

  test("unknown keys, missing keys, clashing ports, a bad preset", () => {
    expect(bad(BASE + "VIPP=1\n")).toEqual(["CLUSTER_SETTING", `${F}: VIPP: unknown setting`, "did you mean VIP?"]);
    expect(bad("CLUSTER_NAME=crm\nVIP=10.0.0.50\n")).toEqual([
      "CLUSTER_SETTING",
      `${F}: HOSTS: is missing`,
      "add a line HOSTS=... (three ssh destinations, e.g. HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3)",
    ]);
    expect(bad(BASE + "HAPROXY_RO_PORT=5000\n")).toEqual([
      "CLUSTER_SETTING",
      `${F}: HAPROXY_RO_PORT: port 5000 is also used by HAPROXY_RW_PORT`,
      "give each listener a port of its own",
    ]);
    expect(bad(BASE + "TIMING=fast\n")[1]).toBe(`${F}: TIMING: must be lan or wan (got "fast")`);
    expect(bad(BASE.replace("crm", "Crm"))[1]).toBe(
      `${F}: CLUSTER_NAME: must be 2-21 lowercase letters/digits, starting with a letter (got "Crm")`,
    );
  });
});

describe("client.env: each rule's edge, with its exact message", () => {
  const ACME =
    "CLIENT_NAME=acme\nHOST=local\nDOMAIN=acme.internal\nACCESS=internal\nPROFILE=16\nREMOTE_DIR=/opt/pgplatform/acme\nMEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13\nHAPROXY_ADDRESS=127.0.0.1\nAPI_ADDRESS=127.0.0.1\n";
  const F = "clients/acme/client.env";
  const withKeys = (over: Record<string, string>) =>
    ACME.split("\n")
      .filter((l) => !Object.keys(over).some((k) => l.startsWith(`${k}=`)))
      .concat(Object.entries(over).map(([k, v]) => `${k}=${v}`))
      .join("\n");
  const refusal = (over: Record<string, string>) => {
    try {
      parseClientSettings(withKeys(over), F);
      return "ok";
    } catch (e) {
      if (!(e instanceof ToolkitError)) throw e;
      return [e.message.replace(`${F}: `, "").replace(/ \(got .*\)$/, ""), e.fix];
    }
  };
  const at = (key: string, value: string) => {
    const r = refusal({ [key]: value });
    return r === "ok" ? "ok" : String(r[0]).replace(`${key}: `, "");
  };
  test.each([
    ["CLIENT_NAME", ["acme", "Acme"], ["ok", "must be 2-21 lowercase letters/digits, starting with a letter"]],
    [
      "HOST",
      ["local", "ops@acme-server", "a b", "localx y"],
      ["ok", "ok", "must be local or [user@]host", "must be local or [user@]host"],
    ],
    ["DOMAIN", ["acme.internal", "nodot"], ["ok", "must be a DNS name like acme.internal"]],
    ["ACCESS", ["internal", "open"], ["ok", "must be internal or public"]],
    [
      "ADMIN_EMAIL",
      ["", "ops@acme.com", "x", "a@b@c", "a b@c", "@a@b", "a@b@"],
      ["ok", "ok", ...Array(5).fill("must be an e-mail address")],
    ],
    ["PROFILE", ["64", "48"], ["ok", "must be 16, 32 or 64 (GB)"]],
    ["REMOTE_DIR", ["/opt/x", "rel/dir", "x/opt", "/opt/a b"], ["ok", ...Array(3).fill("must be an absolute path")]],
    [
      "KEEP_RELEASES",
      ["2", "50", "1", "51"],
      ["ok", "ok", "must keep at least 2 (one to roll back to)", "must be at most 50"],
    ],
    [
      "PG_SHARED_BUFFERS",
      ["", "1GB", "12MB", "x1GB", "1GBx", "GB"],
      ["ok", "ok", "ok", ...Array(3).fill("must be a size like 1GB")],
    ],
    ["RUNTIME", ["native", "podman"], ["ok", "must be auto, native or docker"]],
    ["TUNNEL", ["none", "x"], ["ok", "must be cloudflare or none"]],
    ["TAILNET", ["none", "x"], ["ok", "must be tailscale or none"]],
  ] as [string, string[], string[]][])("%s", (key, values, want) => {
    expect(values.map((v) => at(key, v))).toEqual(want);
  });

  test("rules across keys: firewall, tunnel id, admin e-mail, one port per listener", () => {
    const inside = (k: string) => `set ${k}=none, or ALLOW_REMOTE_ACCESS=true if the customer agreed in writing`;
    expect(refusal({ TAILNET: "tailscale" })).toEqual([
      "TAILNET: customer servers stay inside their firewall",
      inside("TAILNET"),
    ]);
    expect(refusal({ TUNNEL: "cloudflare", TAILNET: "tailscale", CLOUDFLARE_TUNNEL_ID: "t" })).toEqual([
      "TUNNEL: customer servers stay inside their firewall",
      inside("TUNNEL"),
    ]);
    expect(refusal({ TUNNEL: "cloudflare", ALLOW_REMOTE_ACCESS: "true" })).toEqual([
      "CLOUDFLARE_TUNNEL_ID: is required with TUNNEL=cloudflare",
      "create the tunnel with `cloudflared tunnel create <name>` and set its UUID here",
    ]);
    expect(
      refusal({ TUNNEL: "cloudflare", TAILNET: "tailscale", ALLOW_REMOTE_ACCESS: "true", CLOUDFLARE_TUNNEL_ID: "t" }),
    ).toBe("ok");
    expect(refusal({ ACCESS: "public" })).toEqual([
      "ADMIN_EMAIL: is required with ACCESS=public",
      "Let's Encrypt needs an account e-mail: ADMIN_EMAIL=ops@acme.com",
    ]);
    expect(refusal({ ACCESS: "public", ADMIN_EMAIL: "ops@acme.com" })).toBe("ok");
    const fix = "give each environment its own port";
    expect(refusal({ PORT_DEV: "9010" })).toEqual(["PORT_DEV: port 9010 is also used by API_PORT", fix]);
    expect(refusal({ PORT_STAGING: "6100" })).toEqual(["PORT_STAGING: port 6100 is also used by PORT_DEV", fix]);
    expect(refusal({ PORT_PRODUCTION: "7100" })).toEqual([
      "PORT_PRODUCTION: port 7100 is also used by PORT_STAGING",
      fix,
    ]);
  });
});

describe("cluster.env: each rule's edge, with its exact message", () => {
  const F = "clusters/crm/cluster.env";
  const BASE = "CLUSTER_NAME=crm\nHOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3\nVIP=10.0.0.50\n";
  const at = (key: string, value: string) => {
    try {
      parseClusterSettings(
        BASE.split("\n")
          .filter((l) => !l.startsWith(`${key}=`))
          .join("\n") + `\n${key}=${value}\n`,
        F,
      );
      return "ok";
    } catch (e) {
      if (!(e instanceof ToolkitError)) throw e;
      return e.message.replace(`${F}: ${key}: `, "").replace(/ \(got .*\)$/, "");
    }
  };
  test.each([
    [
      "HOSTS",
      ["Ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3", "ops@10.0.0.1x,ops@10.0.0.2,ops@10.0.0.3"],
      ["each host must be user@address", "each host must be user@address"],
    ],
    [
      "VIP_PREFIX",
      ["8", "32", "7", "33"],
      [
        "ok",
        "clusters/crm/cluster.env: VIP: 10.0.0.50 is not in the network of host 10.0.0.1 (/32): the floating address must be reachable on every host's link",
        "must be 8-32",
        "must be 8-32",
      ],
    ],
    [
      "VIP_INTERFACE",
      ["ens10", "eth0!", "!eth0", "a".repeat(16)],
      ["ok", ...Array(3).fill("must be a network interface name")],
    ],
    [
      "HOST_ROOT",
      ["/var/lib/h%i", "rel", "x/abs", "/a b"],
      ["ok", ...Array(3).fill("must be an absolute path (%i: the host's number, %a: its address)")],
    ],
    ["PG_SHARED_BUFFERS", ["2GB", "x1GB", "1GBx"], ["ok", "must be a size like 1GB", "must be a size like 1GB"]],
    ["PG_BIN_DIR", ["/usr/lib/postgresql/15/bin", "usr/lib"], ["ok", "must be an absolute path"]],
  ] as [string, string[], string[]][])("%s", (key, values, want) => {
    expect(values.map((v) => at(key, v))).toEqual(want);
  });

  test("every listener's port is its own; an unknown key far from all names points to the page", () => {
    for (const [key, port, owner] of [
      ["PATRONI_PORT", "5432", "PG_PORT"],
      ["ETCD_CLIENT_PORT", "8008", "PATRONI_PORT"],
      ["ETCD_PEER_PORT", "2379", "ETCD_CLIENT_PORT"],
      ["HAPROXY_RW_PORT", "2380", "ETCD_PEER_PORT"],
      ["HAPROXY_STATS_PORT", "5001", "HAPROXY_RO_PORT"],
    ]) {
      expect(at(key!, port!)).toBe(`port ${port} is also used by ${owner}`);
    }
    expect(caught(() => parseClusterSettings(BASE + "ZZZZZZZZZZ=1\n", F)).fix).toBe(
      "remove it; known keys are listed in clusters/README.md",
    );
  });

  test("network arithmetic across an octet boundary", () => {
    expect([
      sameNetwork("10.0.0.250", "10.0.1.5", 23),
      sameNetwork("10.0.0.250", "10.0.2.5", 23),
      sameNetwork("10.0.0.0", "10.0.0.1", 24),
    ]).toEqual([true, false, true]);
  });
});
