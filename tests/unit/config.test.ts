import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ConfigError, parseConfig, timingProblem } from "../../scripts/lib/config";

const DEV = readFileSync(`${import.meta.dir}/../../envs/dev.env`, "utf8");
const opts = { file: "envs/dev.env", stack: "dev", rootDir: "/repo", isRoot: false };
const withLine = (key: string, value: string | null) =>
  DEV.split("\n")
    .filter((l) => !l.startsWith(`${key}=`))
    .concat(value === null ? [] : [`${key}=${value}`])
    .join("\n");

describe("config loader", () => {
  test("the committed dev and test env files load", () => {
    const cfg = parseConfig(DEV, opts);
    expect(cfg.members.map((m) => m.address)).toEqual(["127.0.0.11", "127.0.0.12", "127.0.0.13"]);
    expect(
      cfg.members.every(
        (m) => m.pgPort === 5432 && m.restPort === 8008 && m.etcdClientPort === 2379 && m.etcdPeerPort === 2380,
      ),
    ).toBe(true);
    expect(cfg.haproxy.rwPort).toBe(6012);
    expect(cfg.api.port).toBe(6010);
    expect(cfg.timing).toEqual({
      ttl: 10,
      loopWait: 1,
      retryTimeout: 3,
      maximumLagOnFailover: 1048576,
      synchronousMode: true,
      failsafeMode: true,
    });
    expect(cfg.databases).toEqual(["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production"]);
    expect(cfg.stateDir).toBe("/repo/.state/dev");
    expect(cfg.secretsFile).toBe("/repo/envs/.secrets.dev.env");
    const test = parseConfig(readFileSync(`${import.meta.dir}/../../envs/test.env`, "utf8"), {
      ...opts,
      stack: "test",
    });
    // The test stack must never share an address with the dev stack.
    const devAddrs = new Set([...cfg.members.map((m) => m.address), cfg.haproxy.address, cfg.api.address]);
    for (const a of [...test.members.map((m) => m.address), test.haproxy.address, test.api.address])
      expect(devAddrs.has(a)).toBe(false);
  });

  // [key, bad value, what the message must say]
  const bad: [string, string | null, RegExp][] = [
    ["PG_PORT", "abc", /PG_PORT: must be a number \(got "abc"\)/],
    ["PG_PORT", "70000", /PG_PORT: must be 1-65535/],
    ["PG_PORT", "54.5", /PG_PORT: must be a whole number/],
    ["HAPROXY_RW_PORT", null, /HAPROXY_RW_PORT: is missing/],
    ["MEMBER_ADDRESSES", "127.0.0.11,127.0.0.12", /must list exactly 3 addresses/],
    ["MEMBER_ADDRESSES", "127.0.0.11,127.0.0.11,127.0.0.13", /addresses must differ/],
    ["MEMBER_ADDRESSES", "127.0.0.11,127.0.0.300,127.0.0.13", /0-255/],
    ["MEMBER_ADDRESSES", "pg1,pg2,pg3", /must be an IPv4 address/],
    ["SYNCHRONOUS_MODE", "yes", /SYNCHRONOUS_MODE: must be true or false/],
    ["RUNTIME", "podman", /RUNTIME: must be auto, native or docker/],
    ["PATRONI_TTL", "30s", /PATRONI_TTL: must be a number of seconds/],
    ["PATRONI_LOOP_WAIT", "0", /PATRONI_LOOP_WAIT: must be at least 1/],
    ["PATRONI_RETRY_TIMEOUT", "5", /PATRONI_TTL: loop_wait \+ 2\*retry_timeout must be <= ttl \(1 \+ 2\*5 = 11 > 10\)/],
    ["DATABASES", "orchestrator_ai_dev,Bad-Name", /database names must match/],
    ["DATABASES", "", /must list at least one database/],
    ["PG_HBA_CIDR", "0.0.0.0", /must be an IPv4 CIDR/],
    ["PG_SHARED_BUFFERS", "lots", /must be a size like 128MB/],
    ["HAPROXY_RO_PORT", "6012", /HAPROXY_RO_PORT: port 6012 is also used by HAPROXY_RW_PORT/],
    ["PATRONI_PORT", "5432", /PATRONI_PORT: port 5432 is also used by PG_PORT/],
    ["CLUSTER_NAME", "My Cluster", /CLUSTER_NAME: must be lowercase/],
  ];
  for (const [key, value, want] of bad) {
    test(`${key}=${value ?? "(missing)"} is rejected naming the file and key`, () => {
      let err: unknown;
      try {
        parseConfig(withLine(key, value), opts);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.message).toStartWith("envs/dev.env: ");
      expect(e.message).toMatch(want);
      expect(e.fix).toBeTruthy(); // every error says what to do
    });
  }

  test("an unknown key is an error with a suggestion for a typo", () => {
    expect(() => parseConfig(DEV + "\nPATRONI_TLL=10\n", opts)).toThrow(/PATRONI_TLL: unknown setting/);
    try {
      parseConfig(DEV + "\nPATRONI_TLL=10\n", opts);
    } catch (e) {
      expect((e as ConfigError).fix).toBe("did you mean PATRONI_TTL?");
    }
  });

  test("a key with a default may be left out", () => {
    expect(parseConfig(withLine("MEMBER_ROOT", null), opts).memberRoot).toBe("/repo/.state/dev/members");
  });
});

describe("HA timing rule: loop_wait + 2*retry_timeout <= ttl", () => {
  test.each([
    [10, 1, 3, true],
    [10, 2, 4, true],
    [10, 1, 5, false],
    [30, 10, 10, true],
    [30, 10, 11, false],
  ])("ttl %d, loop_wait %d, retry_timeout %d -> ok=%p", (ttl, loopWait, retryTimeout, ok) => {
    expect(timingProblem({ ttl, loopWait, retryTimeout }) === undefined).toBe(ok);
  });
});
