/**
 * Each env-file rule's edge, with its exact message (found by make mutation on
 * scripts/lib/settings/env.ts): value rules of the later keys (backups, access,
 * pooling, monitoring) and the cross-key rules among them.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ConfigError, parseConfig, type Config } from "../../scripts/lib/config";

// dev.env: HAProxy and nginx both on 127.0.0.1; API 6010, HAProxy 6012-6014, pool 6015, no alert command.
const DEV = readFileSync(`${import.meta.dir}/../../envs/dev.env`, "utf8");
const opts = { file: "envs/dev.env", stack: "dev", rootDir: "/repo", isRoot: false };
const env = (over: Record<string, string>) => {
  const lines = DEV.split("\n").filter((l) => !Object.keys(over).some((k) => l.startsWith(`${k}=`)));
  return [...lines, ...Object.entries(over).map(([k, v]) => `${k}=${v}`)].join("\n");
};
/** The Config, or [key, message, fix] of the refusal. */
const load = (over: Record<string, string>): Config | string[] => {
  try {
    return parseConfig(env(over), opts);
  } catch (e) {
    if (e instanceof ConfigError) return [e.key, e.message.replace("envs/dev.env: ", ""), e.fix ?? ""];
    throw e;
  }
};
const refusal = (over: Record<string, string>) => {
  const r = load(over);
  return Array.isArray(r) ? r : "loaded";
};

describe("value rules", () => {
  const at = (key: string, value: string) => {
    const r = refusal({ [key]: value });
    return r === "loaded" ? "ok" : r[1]!.replace(`${key}: `, "").replace(/ \(got .*\)$/, "");
  };
  test.each([
    ["PG_BIN_DIR", ["/usr/lib/postgresql/15/bin", ""], ["ok", "must not be empty"]],
    ["STATE_DIR", ["st", ""], ["ok", "must not be empty"]],
    [
      "APP_PORT_PLAN",
      ["", "notes:9500", "Notes:9500", "notes", "notes:95000x"],
      ["ok", "ok", ...Array(3).fill("each entry must be app:port, e.g. hyperarchy:9100")],
    ],
    [
      "PG_SHARED_BUFFERS",
      ["128MB", "1GB", "512kB", "x128MB", "128MBx", "128"],
      ["ok", "ok", "ok", "must be a size like 128MB", "must be a size like 128MB", "must be a size like 128MB"],
    ],
    ["BACKUP_JOBS", ["64", "65", "0"], ["ok", "must be at most 64", "must be at least 1"]],
    ["POOL_MAX_CLIENT_CONN", ["100000", "100001", "9"], ["ok", "must be at most 100000", "must be at least 10"]],
    [
      "BACKUP_ALERT_URL",
      ["", "http://h/x", "https://h/x", "ftp://h/x", "xhttps://h", "https://h x"],
      [
        "ok",
        "ok",
        "ok",
        "must be an http(s) URL or empty",
        "must be an http(s) URL or empty",
        "must be an http(s) URL or empty",
      ],
    ],
    [
      "BACKUP_SCHEDULE",
      ["10 12 10 11 1-5", "1 2 3 4 5 6", "1 2 3 4"],
      ["ok", "must be a 5-field cron schedule", "must be a 5-field cron schedule"],
    ],
    [
      "API_KEY_TTL_DAYS",
      ["1", "1825", "0", "1826", "x", "1.5"],
      [
        "ok",
        "ok",
        "must be at least 1 day",
        "must be at most 1825 days (5 years)",
        "must be a number of days",
        "must be a whole number of days",
      ],
    ],
    [
      "PUBLIC_DOMAIN",
      ["", "example.com", "Example.com", "nodot"],
      ["ok", "ok", "must be a DNS name like example.com, or empty", "must be a DNS name like example.com, or empty"],
    ],
    [
      "TAILNET_HOSTNAME",
      [
        "",
        "a",
        "server",
        "ab.c",
        "a-b.c-d",
        "server.tail1234.ts.net",
        "-a",
        "a-",
        "a..b",
        "a.-b",
        "a.b-",
        "A",
        "x y",
        "a.b.",
        "x-",
      ],
      [
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
        ...Array(9).fill("must be a hostname like server.tail1234.ts.net, or empty"),
      ],
    ],
    [
      "CLOUDFLARE_CREDENTIALS_FILE",
      ["", "/etc/cf/t.json", "/ab.json", "etc/t.json", "x/etc/t.json", "/etc/t.jsonx", "/a b.json", "/.json"],
      ["ok", "ok", "ok", ...Array(5).fill("must be an absolute path to the tunnel's .json credentials")],
    ],
  ] as [string, string[], string[]][])("%s", (key, values, want) => {
    expect(values.map((v) => at(key, v))).toEqual(want);
  });
});

describe("pool sizes", () => {
  test("default + reserve may equal max_db_connections, not exceed it", () => {
    expect(refusal({ POOL_DEFAULT_POOL_SIZE: "45", POOL_RESERVE_POOL_SIZE: "5", POOL_MAX_DB_CONNECTIONS: "50" })).toBe(
      "loaded",
    );
    expect(
      refusal({ POOL_DEFAULT_POOL_SIZE: "46", POOL_RESERVE_POOL_SIZE: "5", POOL_MAX_DB_CONNECTIONS: "50" }),
    ).toEqual([
      "POOL_DEFAULT_POOL_SIZE",
      "POOL_DEFAULT_POOL_SIZE: POOL_DEFAULT_POOL_SIZE + POOL_RESERVE_POOL_SIZE (46 + 5) exceeds POOL_MAX_DB_CONNECTIONS (50)",
      "lower the pool sizes or raise POOL_MAX_DB_CONNECTIONS",
    ]);
  });
});

describe("pgbouncer's port", () => {
  test("is not one of HAProxy's on the same address", () => {
    expect(refusal({ POOL_PORT: "6013" })).toEqual([
      "POOL_PORT",
      "POOL_PORT: port 6013 is also used by HAPROXY_RO_PORT",
      "give pgbouncer its own port on HAPROXY_ADDRESS",
    ]);
  });
});

describe("the app port plan", () => {
  test("app:port pairs become a map; empty is no plan", () => {
    const plan = (v: string) => {
      const r = load({ APP_PORT_PLAN: v });
      return Array.isArray(r) ? r : r.appPortPlan;
    };
    expect([plan(""), plan("notes:9500, crm_x:9600")]).toEqual([{}, { notes: 9500, crm_x: 9600 }]);
  });
});

describe("a Cloudflare tunnel needs a domain and a tunnel id", () => {
  test("each named in turn", () => {
    expect(refusal({ TUNNEL: "cloudflare" })).toEqual([
      "PUBLIC_DOMAIN",
      "PUBLIC_DOMAIN: is required with TUNNEL=cloudflare",
      "set PUBLIC_DOMAIN=example.com (public apps get <app>.example.com), or TUNNEL=none",
    ]);
    expect(refusal({ TUNNEL: "cloudflare", PUBLIC_DOMAIN: "example.com" })).toEqual([
      "CLOUDFLARE_TUNNEL_ID",
      "CLOUDFLARE_TUNNEL_ID: is required with TUNNEL=cloudflare",
      "create the tunnel with `cloudflared tunnel create <name>` and set its UUID here",
    ]);
    expect(refusal({ TUNNEL: "cloudflare", PUBLIC_DOMAIN: "example.com", CLOUDFLARE_TUNNEL_ID: "t1" })).toBe("loaded");
    expect(refusal({ TUNNEL: "none", CLOUDFLARE_TUNNEL_ID: "" })).toBe("loaded");
  });
});

describe("the tunnel's origin port", () => {
  test("defaults to API_PORT + 6; any port already taken on the API side is refused, naming its owner", () => {
    const cfg = load({});
    expect(Array.isArray(cfg) ? cfg : cfg.access.originPort).toBe(6016);
    for (const [port, owner] of [
      ["6010", "API_PORT"],
      ["6012", "HAPROXY_RW_PORT"],
      ["6013", "HAPROXY_RO_PORT"],
      ["6014", "HAPROXY_STATS_PORT"],
      ["6015", "POOL_PORT"],
    ]) {
      expect(refusal({ TUNNEL_ORIGIN_PORT: port! })).toEqual([
        "TUNNEL_ORIGIN_PORT",
        `TUNNEL_ORIGIN_PORT: port ${port} is also used by ${owner}`,
        "set TUNNEL_ORIGIN_PORT to a free port",
      ]);
    }
    expect(refusal({ API_PORT: "6009" })).toEqual([
      "TUNNEL_ORIGIN_PORT",
      "TUNNEL_ORIGIN_PORT: port 6015 is also used by POOL_PORT",
      "set TUNNEL_ORIGIN_PORT to a free port",
    ]);
    expect(refusal({ TUNNEL_ORIGIN_PORT: "6020" })).toBe("loaded");
  });
});

describe("monitoring listeners share HAProxy's address", () => {
  const fix = "give each monitoring listener its own port";
  test("only when MONITORING=true", () => {
    expect(refusal({ MONITORING: "false", PROMETHEUS_PORT: "6012" })).toBe("loaded");
    expect(refusal({ MONITORING: "true", PROMETHEUS_PORT: "6012" })).toEqual([
      "PROMETHEUS_PORT",
      "PROMETHEUS_PORT: port 6012 is also used by HAPROXY_RW_PORT",
      fix,
    ]);
    expect(refusal({ MONITORING: "true" })).toBe("loaded");
  });
  test("each of its own ports, and HAProxy's", () => {
    const cases: [Record<string, string>, string, string][] = [
      [{ PROMETHEUS_PORT: "6013" }, "PROMETHEUS_PORT", "HAPROXY_RO_PORT"],
      [{ PROMETHEUS_PORT: "6014" }, "PROMETHEUS_PORT", "HAPROXY_STATS_PORT"],
      [{ ALERTMANAGER_PORT: "9090" }, "ALERTMANAGER_PORT", "PROMETHEUS_PORT"],
      [{ NODE_EXPORTER_PORT: "9093" }, "NODE_EXPORTER_PORT", "ALERTMANAGER_PORT"],
      [{ POSTGRES_EXPORTER_PORT: "9110" }, "POSTGRES_EXPORTER_PORT", "NODE_EXPORTER_PORT"],
    ];
    for (const [over, key, owner] of cases) {
      const port = Object.values(over)[0];
      expect(refusal({ MONITORING: "true", ...over })).toEqual([
        key,
        `${key}: port ${port} is also used by ${owner}`,
        fix,
      ]);
    }
  });
  test("nginx's API port only when nginx listens on the same address", () => {
    expect(refusal({ MONITORING: "true", PROMETHEUS_PORT: "6010" })).toEqual([
      "PROMETHEUS_PORT",
      "PROMETHEUS_PORT: port 6010 is also used by API_PORT",
      fix,
    ]);
    expect(refusal({ MONITORING: "true", PROMETHEUS_PORT: "6010", API_ADDRESS: "127.0.0.2" })).toBe("loaded");
  });
  test("the alert relay (ALERTMANAGER_PORT + 1) only with BACKUP_ALERT_COMMAND", () => {
    const relay = "ALERTMANAGER_PORT+1 (the alert relay for BACKUP_ALERT_COMMAND)";
    expect(refusal({ MONITORING: "true", NODE_EXPORTER_PORT: "9094" })).toBe("loaded");
    expect(refusal({ MONITORING: "true", NODE_EXPORTER_PORT: "9094", BACKUP_ALERT_COMMAND: "/bin/true" })).toEqual([
      relay,
      `${relay}: port 9094 is also used by NODE_EXPORTER_PORT`,
      fix,
    ]);
    expect(refusal({ MONITORING: "true", NODE_EXPORTER_PORT: "9092", BACKUP_ALERT_COMMAND: "/bin/true" })).toBe(
      "loaded",
    );
  });
});
