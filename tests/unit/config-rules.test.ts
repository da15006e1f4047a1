/**
 * Config rules that config.test.ts leaves open (found by make mutation): the
 * whole Config an env file becomes, each rule's edge and exact message, where
 * member dirs go when we are root, STACK names, and loadConfig's files.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, defaultMemberRoot, loadConfig, parseConfig, ROOT_DIR, stackName } from "../../scripts/lib/config";
import { ToolkitError } from "../../scripts/lib/errors";

// Every value distinct, so a field read from the wrong key shows.
const ENV: Record<string, string> = {
  CLUSTER_NAME: "pgp-rules",
  MEMBER_ADDRESSES: "10.20.30.41, 10.20.30.42 ,127.100.255.43",
  PG_PORT: "5433",
  PATRONI_PORT: "8009",
  ETCD_CLIENT_PORT: "2381",
  ETCD_PEER_PORT: "2382",
  HAPROXY_ADDRESS: "10.1.2.3",
  HAPROXY_RW_PORT: "7012",
  HAPROXY_RO_PORT: "7013",
  HAPROXY_STATS_PORT: "7014",
  HAPROXY_CHECK_INTER_MS: "1500",
  HAPROXY_CHECK_FALL: "3",
  HAPROXY_CHECK_RISE: "4",
  API_ADDRESS: "10.1.2.4",
  API_PORT: "7010",
  PATRONI_TTL: "20",
  PATRONI_LOOP_WAIT: "2",
  PATRONI_RETRY_TIMEOUT: "5",
  PATRONI_MAX_LAG_ON_FAILOVER: "99",
  SYNCHRONOUS_MODE: "true",
  FAILSAFE_MODE: "false",
  PG_HBA_CIDR: "10.0.0.0/8",
  PG_BIN_DIR: "/opt/pg/bin",
  PG_SHARED_BUFFERS: "256MB",
  DATABASES: "app_db,other_db",
  RUNTIME: "native",
  STATE_DIR: "st",
  BACKUP_RETENTION_DAILY: "5",
  BACKUP_RETENTION_WEEKLY: "3",
  BACKUP_FULL_EVERY_DAYS: "6",
  BACKUP_JOBS: "9",
  BACKUP_LOCK_WAIT_SECONDS: "17",
  BACKUP_ALERT_URL: "https://ops.example/hook",
  BACKUP_ALERT_COMMAND: "/usr/bin/logger -t pgp",
  BACKUP_SCHEDULE: "0 3 * * 1",
  BACKUP_ARCHIVE_TIMEOUT: "0",
};
const text = (over: Record<string, string | null> = {}) =>
  Object.entries({ ...ENV, ...over })
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
const opts = { file: "envs/rules.env", stack: "rules", rootDir: "/repo", isRoot: false };

function configError(envText: string): ConfigError {
  try {
    parseConfig(envText, opts);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("the Config an env file becomes", () => {
  test("every field, exactly", () => {
    const cfg = parseConfig(text(), { ...opts, secrets: { POSTGRES_PASSWORD: "p".repeat(20) } });
    const member = (i: number, address: string) => ({
      name: `pg${i + 1}`,
      index: i,
      address,
      pgPort: 5433,
      restPort: 8009,
      etcdName: `etcd${i + 1}`,
      etcdClientPort: 2381,
      etcdPeerPort: 2382,
      dir: `/repo/st/rules/members/pg${i + 1}`,
      dataDir: `/repo/st/rules/members/pg${i + 1}/data`,
      socketDir: `/tmp/pgp-${process.getuid!()}/rules/pg${i + 1}`,
    });
    expect(cfg as unknown).toEqual({
      stack: "rules",
      file: "envs/rules.env",
      rootDir: "/repo",
      clusterName: "pgp-rules",
      namespace: "/pgplatform/",
      members: [member(0, "10.20.30.41"), member(1, "10.20.30.42"), member(2, "127.100.255.43")],
      haproxy: { address: "10.1.2.3", rwPort: 7012, roPort: 7013, statsPort: 7014, interMs: 1500, fall: 3, rise: 4 },
      api: { address: "10.1.2.4", port: 7010 },
      apiKeyTtlDays: 365,
      pool: {
        address: "10.1.2.3",
        defaultPoolSize: 20,
        maxClientConn: 1000,
        maxDbConnections: 50,
        pauseTimeoutS: 10,
        port: 6015,
        reservePoolSize: 5,
      },
      access: {
        allowRemote: false,
        credentialsFile: "/etc/cloudflared/<tunnel-id>.json",
        originAddress: "127.0.0.1",
        originPort: 7016,
        publicDomain: "",
        tailnet: "none",
        tailnetHostname: "",
        tunnel: "none",
        tunnelId: "",
      },
      // left out of the file: the defaults (off, standard ports, 15 s), on HAProxy's address
      monitoring: {
        enabled: false,
        address: "10.1.2.3",
        prometheusPort: 9090,
        alertmanagerPort: 9093,
        nodeExporterPort: 9110,
        postgresExporterPort: 9187,
        intervalSeconds: 15,
      },
      docker: {
        images: {},
        siteUrl: "http://127.0.0.1:6100",
        smtp: { host: "", port: 587, user: "", adminEmail: "admin@example.com", senderName: "pgplatform" },
        services: "all",
        // DOCKER_PUBLISH_MEMBERS=auto: not on macOS
        publishMembers: process.platform !== "darwin",
      },
      // left out of the file: every component's log capped at 10 MB, 2 rotated copies
      logs: { maxSizeKb: 10240, keep: 2 },
      timing: {
        ttl: 20,
        loopWait: 2,
        retryTimeout: 5,
        maximumLagOnFailover: 99,
        synchronousMode: true,
        failsafeMode: false,
      },
      pgHbaCidr: "10.0.0.0/8",
      pgBinDir: "/opt/pg/bin",
      sharedBuffers: "256MB",
      databases: ["app_db", "other_db"],
      appPortPlan: {},
      runtime: "native",
      stateDir: "/repo/st/rules",
      runtimeDir: `/tmp/pgp-${process.getuid!()}/rules`,
      memberRoot: "/repo/st/rules/members",
      logsDir: "/repo/st/rules/logs",
      reportsDir: "/repo/st/rules/reports",
      renderedDir: "/repo/st/rules/rendered",
      secretsFile: "/repo/envs/.secrets.rules.env",
      pgOsUser: undefined,
      secrets: { POSTGRES_PASSWORD: "p".repeat(20) },
      backup: {
        dir: "/repo/st/rules/backups",
        pgbackrestHome: "/repo/st/rules/members/pgbackrest",
        repoDir: "/repo/st/rules/members/pgbackrest/repo",
        stanza: "pgp-rules",
        retentionDaily: 5,
        retentionWeekly: 3,
        fullEveryDays: 6,
        jobs: 9,
        lockWaitSeconds: 17,
        alertUrl: "https://ops.example/hook",
        alertCommand: "/usr/bin/logger -t pgp",
        schedule: "0 3 * * 1",
        archiveTimeout: 0,
        scratchAddress: "10.1.2.21",
        offsite: {
          kind: "none",
          path: "/pgplatform/pgp-rules",
          s3: { bucket: "", region: "", endpoint: "", port: 443, uriStyle: "host", caFile: "" },
          ssh: {
            host: "",
            port: 22,
            user: "pgbackrest",
            hostKey: "",
            remoteConfig: "/pgplatform/pgp-rules-conf/pgbackrest.conf",
            pgPort: 22,
            pgKnownHosts: "",
          },
          cipher: "aes-256-cbc",
          retentionFull: 8,
          retentionDiff: 7,
          drillSchedule: "45 3 * * 0",
        },
      },
    });
  });

  test("explicit folders and scratch address win; relative ones are below the checkout; root runs Postgres as postgres", () => {
    const cfg = parseConfig(
      text({
        MEMBER_ROOT: "/srv/members",
        BACKUP_DIR: "bk",
        BACKUP_REPO_DIR: "/srv/repo",
        BACKUP_SCRATCH_ADDRESS: "10.9.9.9",
        STATE_DIR: "/var/st",
        FAILSAFE_MODE: "true",
      }),
      { ...opts, isRoot: true },
    );
    expect([
      cfg.memberRoot,
      cfg.stateDir,
      cfg.backup.dir,
      cfg.backup.repoDir,
      cfg.backup.pgbackrestHome,
      cfg.backup.scratchAddress,
    ]).toEqual(["/srv/members", "/var/st/rules", "/repo/bk", "/srv/repo", "/srv/members/pgbackrest", "10.9.9.9"]);
    expect(cfg.pgOsUser).toBe("postgres");
    expect(cfg.timing.failsafeMode).toBe(true);
    expect(cfg.secrets as unknown).toEqual({});
    // Without isRoot, the process's own uid decides.
    expect(parseConfig(text({ MEMBER_ROOT: "/srv/members" }), { ...opts, isRoot: undefined }).pgOsUser).toBe(
      process.getuid!() === 0 ? "postgres" : undefined,
    );
  });
});

describe("each rule's edge, with its exact message", () => {
  test.each([
    [
      "MEMBER_ADDRESSES",
      "127.0.0.11a,127.0.0.12,127.0.0.13",
      `must be an IPv4 address like 127.0.0.11 (got "127.0.0.11a,127.0.0.12,127.0.0.13")`,
    ],
    [
      "MEMBER_ADDRESSES",
      "x127.0.0.11,127.0.0.12,127.0.0.13",
      `must be an IPv4 address like 127.0.0.11 (got "x127.0.0.11,127.0.0.12,127.0.0.13")`,
    ],
    [
      "MEMBER_ADDRESSES",
      "127.0.0.256,127.0.0.12,127.0.0.13",
      `each part of an IPv4 address must be 0-255 (got "127.0.0.256,127.0.0.12,127.0.0.13")`,
    ],
    ["PG_PORT", "0", `must be 1-65535 (got "0")`],
    ["PATRONI_TTL", "20.5", `must be a whole number of seconds (got "20.5")`],
    ["DATABASES", "app_db,app-db", `database names must match ^[a-z][a-z0-9_]{1,30}$ (got "app_db,app-db")`],
    ["FAILSAFE_MODE", "", `must be true or false (got "")`],
  ])("%s=%s", (key, value, message) => {
    const e = configError(text({ [key]: value }));
    expect([e.code, e.key, e.message]).toEqual(["BAD_CONFIG", key, `envs/rules.env: ${key}: ${message}`]);
  });

  test("a repeated port names the second key and the fix", () => {
    const cases: [Record<string, string>, string, string][] = [
      [
        { HAPROXY_STATS_PORT: "7012" },
        "HAPROXY_STATS_PORT: port 7012 is also used by HAPROXY_RW_PORT",
        "give each HAProxy listener its own port",
      ],
      [
        { HAPROXY_STATS_PORT: "7013" },
        "HAPROXY_STATS_PORT: port 7013 is also used by HAPROXY_RO_PORT",
        "give each HAProxy listener its own port",
      ],
      [
        { ETCD_CLIENT_PORT: "5433" },
        "ETCD_CLIENT_PORT: port 5433 is also used by PG_PORT",
        "each member service needs its own port",
      ],
      [
        { ETCD_PEER_PORT: "8009" },
        "ETCD_PEER_PORT: port 8009 is also used by PATRONI_PORT",
        "each member service needs its own port",
      ],
      [
        { ETCD_PEER_PORT: "2381" },
        "ETCD_PEER_PORT: port 2381 is also used by ETCD_CLIENT_PORT",
        "each member service needs its own port",
      ],
    ];
    for (const [over, message, fix] of cases) {
      const e = configError(text(over));
      expect([e.message, e.fix]).toEqual([`envs/rules.env: ${message}`, fix]);
    }
  });

  test("an unknown key: the nearest known one within 3 edits (the first listed on a tie), else where the keys are listed", () => {
    const fixFor = (key: string) => configError(text() + `\n${key}=1`).fix;
    expect(fixFor("HAPROXY_RX_PORT")).toBe("did you mean HAPROXY_RW_PORT?");
    expect(fixFor("PG_PORTXYZ")).toBe("did you mean PG_PORT?");
    expect(fixFor("PG_PORTWXYZ")).toBe("remove it; known keys are listed in envs/README.md");
    expect(configError(text() + "\nPG_PORTWXYZ=1").message).toBe("envs/rules.env: PG_PORTWXYZ: unknown setting");
  });
});

describe("customer stacks stay inside the firewall", () => {
  const remote = { TUNNEL: "cloudflare", PUBLIC_DOMAIN: "acme.example", CLOUDFLARE_TUNNEL_ID: "t-acme" };
  const onStack = (stack: string, over: Record<string, string>) => {
    try {
      return parseConfig(text(over), { ...opts, stack });
    } catch (e) {
      if (e instanceof ConfigError) return [e.code, e.key, e.message, e.fix];
      throw e;
    }
  };
  test("a client-* stack refuses a tunnel or a tailnet unless ALLOW_REMOTE_ACCESS=true", () => {
    expect(onStack("client-acme", remote)).toEqual([
      "BAD_CONFIG",
      "TUNNEL",
      'envs/rules.env: TUNNEL: customer stacks stay inside the firewall (got "cloudflare")',
      "set TUNNEL=none, or ALLOW_REMOTE_ACCESS=true if the customer agreed in writing",
    ]);
    expect(onStack("client-acme", { TAILNET: "tailscale" })).toEqual([
      "BAD_CONFIG",
      "TAILNET",
      'envs/rules.env: TAILNET: customer stacks stay inside the firewall (got "tailscale")',
      "set TAILNET=none, or ALLOW_REMOTE_ACCESS=true if the customer agreed in writing",
    ]);
    const allowed = onStack("client-acme", { ...remote, TAILNET: "tailscale", ALLOW_REMOTE_ACCESS: "true" });
    expect(
      Array.isArray(allowed) ? allowed : [allowed.access.tunnel, allowed.access.tailnet, allowed.access.allowRemote],
    ).toEqual(["cloudflare", "tailscale", true]);
    const own = onStack("acme-client-x", { ...remote, TAILNET: "tailscale" });
    expect(Array.isArray(own) ? own : [own.access.tunnel, own.access.tailnet, own.access.allowRemote]).toEqual([
      "cloudflare",
      "tailscale",
      false,
    ]);
    const none = onStack("client-acme", {});
    expect(Array.isArray(none) ? none : none.access.tunnel).toBe("none");
  });
  test("the tunnel's origin is the API address when it is loopback, else 127.0.0.1", () => {
    expect(parseConfig(text({ API_ADDRESS: "127.0.0.5" }), opts).access.originAddress).toBe("127.0.0.5");
    expect(parseConfig(text({ API_ADDRESS: "10.127.0.5" }), opts).access.originAddress).toBe("127.0.0.1");
  });
});

describe("member dirs when we are root", () => {
  let tmp: string | undefined;
  afterEach(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    tmp = undefined;
  });
  const fresh = () => (tmp = mkdtempSync(join(tmpdir(), "member-root-")));
  let t: string;

  test("not root: below the state dir", () => {
    expect(defaultMemberRoot("/nowhere/st/x", "x", false, "/nowhere")).toBe("/nowhere/st/x/members");
  });

  test("root with a checkout every user can traverse: below the state dir", () => {
    const repo = join((t = fresh()), "repo");
    mkdirSync(repo);
    chmodSync(t, 0o755);
    expect(defaultMemberRoot(join(repo, ".state/x"), "x", true, repo)).toBe(join(repo, ".state/x/members"));
  });

  test("root with a private ancestor of the checkout (like /root): /var/lib/pgplatform/<stack>", () => {
    const repo = join((t = fresh()), "home/repo");
    mkdirSync(repo, { recursive: true });
    chmodSync(t, 0o755);
    chmodSync(join(t, "home"), 0o700);
    expect(defaultMemberRoot(join(repo, ".state/x"), "x", true, repo)).toBe("/var/lib/pgplatform/x");
    // Not root: Postgres runs as ourselves, who can reach our own checkout.
    expect(defaultMemberRoot(join(repo, ".state/x"), "x", false, repo)).toBe(join(repo, ".state/x/members"));
  });

  test("only the checkout's ancestors decide for a state dir inside it, however private the state dir is", () => {
    const repo = join((t = fresh()), "repo");
    mkdirSync(repo);
    mkdirSync(join(repo, ".state"), { mode: 0o700 });
    chmodSync(join(repo, ".state"), 0o700);
    chmodSync(t, 0o755);
    expect(defaultMemberRoot(join(repo, ".state/x"), "x", true, repo)).toBe(join(repo, ".state/x/members"));
  });

  test("a state dir outside the checkout (even one whose name starts like it) is judged by its own ancestors, the first existing one up", () => {
    const repo = join((t = fresh()), "repo");
    const outside = join(t, "repox/.state");
    mkdirSync(repo);
    mkdirSync(outside, { recursive: true });
    chmodSync(t, 0o755);
    chmodSync(outside, 0o700);
    expect(defaultMemberRoot(join(outside, "not/yet/x"), "x", true, repo)).toBe("/var/lib/pgplatform/x");
  });
});

describe("STACK", () => {
  const saved = process.env.STACK;
  afterEach(() => {
    if (saved === undefined) delete process.env.STACK;
    else process.env.STACK = saved;
  });

  test("defaults to dev; lowercase letter first, then up to 30 letters, digits or dashes", () => {
    delete process.env.STACK;
    expect(stackName()).toBe("dev");
    for (const ok of ["a", "local-mutation", "x" + "9".repeat(30)]) {
      process.env.STACK = ok;
      expect(stackName()).toBe(ok);
    }
    for (const bad of ["", "Dev", "1dev", "-dev", "dev!", "dev x", "x" + "9".repeat(31), "dev_1"]) {
      process.env.STACK = bad;
      let err: unknown;
      try {
        stackName();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ToolkitError);
      const e = err as ToolkitError;
      expect([e.code, e.message, e.fix]).toEqual([
        "BAD_STACK",
        `STACK=${JSON.stringify(bad)} is not a valid stack name`,
        "use lowercase letters, digits and dashes, e.g. STACK=dev",
      ]);
    }
  });
});

describe("loadConfig", () => {
  let root: string;
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  test("reads envs/<stack>.env below the given root and only the known, non-empty secrets beside it", () => {
    root = mkdtempSync(join(tmpdir(), "load-config-"));
    mkdirSync(join(root, "envs"));
    writeFileSync(join(root, "envs/rules.env"), text({ MEMBER_ROOT: "/srv/m" }));
    const none = loadConfig("rules", root);
    expect([none.file, none.stack, none.rootDir, none.stateDir]).toEqual([
      "envs/rules.env",
      "rules",
      root,
      join(root, "st/rules"),
    ]);
    expect(none.secrets as unknown).toEqual({});
    writeFileSync(
      join(root, "envs/.secrets.rules.env"),
      `POSTGRES_PASSWORD=${"a".repeat(20)}\nREWIND_PASSWORD=\nNOT_A_SECRET=x\n`,
    );
    expect(loadConfig("rules", root).secrets as unknown).toEqual({ POSTGRES_PASSWORD: "a".repeat(20) });
  });

  test("a missing env file: NO_ENV_FILE naming it", () => {
    root = mkdtempSync(join(tmpdir(), "load-config-"));
    let err: unknown;
    try {
      loadConfig("nosuch", root);
    } catch (e) {
      err = e;
    }
    const e = err as ToolkitError;
    expect([e.code, e.message, e.fix]).toEqual([
      "NO_ENV_FILE",
      "envs/nosuch.env does not exist",
      "create it from envs/dev.env, or pick an existing stack with STACK=<name>",
    ]);
  });

  test("ROOT_DIR is the checkout", () => {
    expect(readFileSync(join(ROOT_DIR, "scripts/lib/config.ts"), "utf8")).toContain("export const ROOT_DIR");
  });
});
