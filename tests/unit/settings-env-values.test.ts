/**
 * The value rules of the env keys added by the off-site backup, docker runtime and log rounds
 * (scripts/lib/settings/env.ts), each edge with its exact message (found by make mutation):
 * what each pattern accepts, and that a valid part followed or preceded by something else is refused.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ConfigError, parseConfig } from "../../scripts/lib/config";

const DEV = readFileSync(`${import.meta.dir}/../../envs/dev.env`, "utf8");
const opts = { file: "envs/dev.env", stack: "dev", rootDir: "/repo", isRoot: false };
/** "ok", or the refusal's message without the file, key and got-value around it. */
const at = (over: Record<string, string>): string => {
  const lines = DEV.split("\n").filter((l) => !Object.keys(over).some((k) => l.startsWith(`${k}=`)));
  try {
    parseConfig([...lines, ...Object.entries(over).map(([k, v]) => `${k}=${v}`)].join("\n"), opts);
    return "ok";
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return `${e.key}: ${e.message
      .replace("envs/dev.env: ", "")
      .replace(`${e.key}: `, "")
      .replace(/ \(got .*\)$/, "")}`;
  }
};

describe("each key: what it accepts, and what it refuses with its message", () => {
  test.each([
    ["BACKUP_LOCK_WAIT_SECONDS", ["86400", "1"], ["86401"], "must be at most 86400"],
    [
      "BACKUP_OFFSITE_PATH",
      ["", "/", "/pgplatform/prod", "/a-b_c.d"],
      ["pgplatform", "x/pgplatform", "/a b", "/a$b"],
      "must be an absolute path like /pgplatform/prod, or empty",
    ],
    [
      "BACKUP_OFFSITE_S3_BUCKET",
      ["", "abc", "acme-backups", "a.b-c", "a".repeat(63)],
      ["ab", "Acme", "-acme", "acme-", "x_acme", "acme_x", "a".repeat(64)],
      "must be an S3 bucket name (3-63 lowercase letters, digits, dots, dashes)",
    ],
    [
      "BACKUP_OFFSITE_S3_REGION",
      ["", "fsn1", "eu-central-1", "a".repeat(32)],
      ["x", "EU-fsn1", "fsn1_x", "x_fsn1", "a".repeat(33)],
      "must be a region name like eu-central or fsn1",
    ],
    [
      "BACKUP_OFFSITE_S3_ENDPOINT",
      ["", "fsn1.your-objectstorage.com", "minio.local:9000", "s3:1"],
      ["https://x.com", "host:123456", "host:", "h_x", "x_h"],
      "must be host or host:port, without https://",
    ],
    ["BACKUP_OFFSITE_S3_URI_STYLE", ["host", "path"], ["virtual"], "must be host or path"],
    [
      "BACKUP_OFFSITE_S3_CA_FILE",
      ["", "/etc/ssl/ca.pem"],
      ["ca.pem", "ca/x.pem", "/a b", "/"],
      "must be an absolute path or empty",
    ],
    ["BACKUP_OFFSITE_CIPHER", ["aes-256-cbc", "none"], ["aes-128-cbc"], "must be aes-256-cbc or none"],
    [
      "BACKUP_OFFSITE_DRILL_SCHEDULE",
      ["45 3 * * 0", "*/5 10-12 1,15 1-6 1-5"],
      ["45 3 * *", "x 45 3 * * 0", "45 3 * * 0 x"],
      "must be a 5-field cron schedule",
    ],
    [
      "SUPABASE_SITE_URL",
      ["http://127.0.0.1:6100", "https://app.example.com", "https://app.example.com/x/y"],
      ["ftp://app.example.com", "xhttp://app.example.com", "http://app.example.com/x y", "http:///x"],
      "must be an http(s) URL",
    ],
    ["SMTP_HOST", ["", "smtp.example.com", "S1"], ["smtp_x", "x_smtp"], "must be a host name or empty"],
    [
      "SMTP_ADMIN_EMAIL",
      ["admin@example.com"],
      ["admin", "a b@example.com", "admin@example.com x", "a@b@c"],
      "must be an e-mail address",
    ],
    [
      "DOCKER_SERVICES",
      ["all", "cluster", "cluster+nginx"],
      ["supabase", "nginx", "cluster+"],
      "must be all, cluster or cluster+nginx",
    ],
    ["DOCKER_PUBLISH_MEMBERS", ["auto", "true", "false"], ["yes", ""], "must be auto, true or false"],
    ["LOG_MAX_SIZE_KB", ["1048576", "64"], ["1048577"], "must be at most 1048576 (1 GB)"],
    ["LOG_KEEP", ["20", "1"], ["21"], "must be at most 20"],
  ] as [string, string[], string[], string][])("%s", (key, good, bad, message) => {
    expect(good.map((v) => at({ [key]: v }))).toEqual(good.map(() => "ok"));
    expect(bad.map((v) => at({ [key]: v }))).toEqual(bad.map(() => `${key}: ${message}`));
  });
});

describe("BACKUP_OFFSITE", () => {
  const s3 = {
    BACKUP_OFFSITE_S3_BUCKET: "acme-backups",
    BACKUP_OFFSITE_S3_REGION: "fsn1",
    BACKUP_OFFSITE_S3_ENDPOINT: "fsn1.your-objectstorage.com",
  };
  test("s3 with its bucket, region and endpoint loads; ssh needs its host (and host key); anything else by the value rule", () => {
    expect(at({ BACKUP_OFFSITE: "s3", ...s3 })).toBe("ok");
    expect(at({ BACKUP_OFFSITE: "ssh" })).toBe("BACKUP_OFFSITE_SSH_HOST: is required with BACKUP_OFFSITE=ssh");
    expect(at({ BACKUP_OFFSITE: "ftp" })).toBe("BACKUP_OFFSITE: must be s3, ssh or none");
  });
});
