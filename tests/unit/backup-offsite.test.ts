/** Off-site backups (issue 17): settings, the rendered repository, decryption, error lines, cron. Pure. */
import { describe, expect, test } from "bun:test";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig, ROOT_DIR, type Config } from "../../scripts/lib/config";
import { cronLine, DRILL_JOB } from "../../scripts/lib/backup/cron";
import { offsiteOnlyConf, offsiteRepoLines, offsiteSecretProblems } from "../../scripts/lib/backup/offsite";
import { sshProblem } from "../../scripts/lib/backup/offsite-host";
import {
  memberKnownHosts,
  pgCmdWrapper,
  pgpassLine,
  pinnedHostKey,
  remoteConf,
  remotePgbackrest,
  sshClientConfig,
  sshRepoArgs,
  sshWrapper,
} from "../../scripts/lib/backup/offsite-ssh";
import { bytesToKey, decryptor, pgbackrestError } from "../../scripts/lib/backup/offsite-copy";
import { drillTarget } from "../../scripts/lib/backup/offsite-drill";
import { parseSource } from "../../scripts/lib/backup/offsite-restore";
import { offsiteTarget, passphraseWarning, unreadableInfo } from "../../scripts/lib/backup/offsite-run";
import { renderPgbackrestConf } from "../../scripts/lib/backup/pgbackrest";

const TEST_ENV = readFileSync(join(ROOT_DIR, "envs/test.env"), "utf8");
const S3 =
  "\nBACKUP_OFFSITE=s3\nBACKUP_OFFSITE_S3_BUCKET=acme-backups\nBACKUP_OFFSITE_S3_REGION=fsn1\nBACKUP_OFFSITE_S3_ENDPOINT=fsn1.your-objectstorage.com\n";
const load = (extra: string): Config =>
  parseConfig(TEST_ENV + extra, { file: "envs/test.env", stack: "test", isRoot: false });
const SSH =
  "\nBACKUP_OFFSITE=ssh\nBACKUP_OFFSITE_SSH_HOST=backup1.example.com\nBACKUP_OFFSITE_SSH_PORT=2222\nBACKUP_OFFSITE_SSH_HOST_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\nBACKUP_OFFSITE_PATH=/srv/pgp/repo\nBACKUP_OFFSITE_SSH_CONFIG=/srv/pgp/conf/pgbackrest.conf\n";
const SECRETS = { key: "AKID", secret: "s3cr3t", cipherPass: "pass-phrase" };

describe("off-site settings", () => {
  test("defaults: none, aes-256-cbc, 8 full / 7 diff, path from the cluster name, weekly drill", () => {
    expect(load("").backup.offsite).toEqual({
      kind: "none",
      path: "/pgplatform/pgplatform-test",
      s3: { bucket: "", region: "", endpoint: "", port: 443, uriStyle: "host", caFile: "" },
      ssh: {
        host: "",
        port: 22,
        user: "pgbackrest",
        hostKey: "",
        remoteConfig: "/pgplatform/pgplatform-test-conf/pgbackrest.conf",
        pgPort: 22,
        pgKnownHosts: "",
      },
      cipher: "aes-256-cbc",
      retentionFull: 8,
      retentionDiff: 7,
      drillSchedule: "45 3 * * 0",
    });
  });

  test("s3 needs bucket, region and endpoint, each named with its fix", () => {
    expect(() => load("\nBACKUP_OFFSITE=s3\n")).toThrow(
      "envs/test.env: BACKUP_OFFSITE_S3_BUCKET: is required with BACKUP_OFFSITE=s3",
    );
    expect(() => load("\nBACKUP_OFFSITE=s3\nBACKUP_OFFSITE_S3_BUCKET=acme-backups\n")).toThrow(
      "BACKUP_OFFSITE_S3_REGION: is required",
    );
    expect(() =>
      load(
        S3.replace("BACKUP_OFFSITE_S3_ENDPOINT=fsn1.your-objectstorage.com", "BACKUP_OFFSITE_S3_ENDPOINT=https://x"),
      ),
    ).toThrow("BACKUP_OFFSITE_S3_ENDPOINT: must be host or host:port, without https://");
    expect(() => load("\nBACKUP_OFFSITE=ftp\n")).toThrow("BACKUP_OFFSITE: must be s3, ssh or none");
    expect(() => load(S3 + "BACKUP_OFFSITE_S3_CA_FILE=ca.pem\n")).toThrow(
      "BACKUP_OFFSITE_S3_CA_FILE: must be an absolute path or empty",
    );
  });

  test("ssh needs the backup host and its pinned host key, each named with its fix", () => {
    expect(() => load("\nBACKUP_OFFSITE=ssh\n")).toThrow(
      "envs/test.env: BACKUP_OFFSITE_SSH_HOST: is required with BACKUP_OFFSITE=ssh",
    );
    const fixOf = (text: string) => {
      try {
        load(text);
      } catch (e) {
        return (e as { fix?: string }).fix;
      }
    };
    expect(fixOf("\nBACKUP_OFFSITE=ssh\nBACKUP_OFFSITE_SSH_HOST=backup1.example.com\n")).toBe(
      "set it (e.g. BACKUP_OFFSITE_SSH_HOST_KEY=ssh-ed25519 AAAA... (the backup host's /etc/ssh/ssh_host_ed25519_key.pub)), or BACKUP_OFFSITE=none",
    );
    expect(() => load(`${SSH}BACKUP_OFFSITE_SSH_HOST_KEY=AAAA\n`)).toThrow(
      "BACKUP_OFFSITE_SSH_HOST_KEY: must be a public key like `ssh-ed25519 AAAA...` or an absolute file path",
    );
    expect(fixOf("\nBACKUP_OFFSITE=s3\n")).toBe(
      "set it (e.g. BACKUP_OFFSITE_S3_BUCKET=acme-backups), or BACKUP_OFFSITE=none",
    );
  });

  test("ssh: repo2 is a repository host reached through our cmd-ssh wrapper (ssh -F, pinned key under an alias)", () => {
    const cfg = load(SSH);
    const home = cfg.backup.pgbackrestHome;
    expect(offsiteRepoLines(cfg, 2, SECRETS).slice(2)).toEqual([
      "repo2-host=backup1.example.com",
      "repo2-host-port=2222",
      "repo2-host-user=pgbackrest",
      "repo2-host-config=/srv/pgp/conf/pgbackrest.conf",
      "repo2-path=/srv/pgp/repo",
      `cmd-ssh=${home}/offsite-ssh/ssh`,
    ]);
    expect(sshWrapper(`${home}/offsite-ssh/ssh_config`)).toContain(
      `exec /usr/bin/ssh -F ${home}/offsite-ssh/ssh_config "$@"`,
    );
    const conf = sshClientConfig(cfg);
    for (const l of [
      "Host backup1.example.com",
      "  Port 2222",
      `  IdentityFile ${home}/offsite-ssh/id_ed25519`,
      `  UserKnownHostsFile ${home}/offsite-ssh/known_hosts`,
      "  GlobalKnownHostsFile /dev/null",
      "  StrictHostKeyChecking yes",
      "  HostKeyAlias pgplatform-offsite-pgplatform-test",
    ])
      expect(conf.split("\n")).toContain(l);
    // Only backup and expire run on the backup host; --repo=1 of our callers is the repository's own index there.
    expect(remotePgbackrest(cfg, ["--stanza=s", "backup"])).toEqual([
      `${home}/offsite-ssh/ssh`,
      "pgbackrest@backup1.example.com",
      "pgbackrest",
      "--config=/srv/pgp/conf/pgbackrest.conf",
      "--stanza=s",
      "backup",
    ]);
    expect(sshRepoArgs(["--output=json", "--repo=1", "info"])).toEqual(["--output=json", "--repo=2", "info"]);
    const remote = remoteConf(cfg, "pass-phrase", "postgres").split("\n");
    for (const l of [
      "repo2-path=/srv/pgp/repo",
      "repo2-cipher-type=aes-256-cbc",
      "repo2-cipher-pass=pass-phrase",
      "repo2-retention-full=8",
      "log-path=/srv/pgp/conf/log",
      "cmd-ssh=/srv/pgp/conf/ssh/ssh",
      `pg1-host=${cfg.members[0]!.address}`,
      "pg1-host-user=postgres",
      `pg1-host-config=${home}/pgbackrest.conf`,
      `pg3-path=${cfg.members[2]!.dataDir}`,
    ])
      expect(remote).toContain(l);
    expect(offsiteOnlyConf("repo1-path=/l\nrepo2-host=h\nrepo2-path=/r\n", true)).toBe("repo2-host=h\nrepo2-path=/r\n");
    expect(memberKnownHosts(cfg, "ssh-ed25519 AAAA")).toBe(
      cfg.members.map((m) => `${m.address} ssh-ed25519 AAAA\n`).join(""),
    );
  });

  test("ssh problems are named: the pinned key, our key to install, an unreachable host", () => {
    const cfg = load(SSH);
    expect(sshProblem(cfg, "Host key verification failed.\r\n")?.message).toBe(
      "the backup host pgbackrest@backup1.example.com:2222 did not present the pinned host key (BACKUP_OFFSITE_SSH_HOST_KEY=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsa… in envs/test.env); nothing was sent to it",
    );
    expect(sshProblem(cfg, "pgbackrest@x: Permission denied (publickey).", "ssh-ed25519 KEY c")?.fix).toBe(
      "append this line to ~pgbackrest/.ssh/authorized_keys on the backup host: ssh-ed25519 KEY c",
    );
    expect(sshProblem(cfg, "ssh: connect to host x port 2222: Connection refused")?.code).toBe("OFFSITE_SSH_CONNECT");
    expect(sshProblem(cfg, "ERROR: [082]: WAL segment")).toBeUndefined();
    // The backup host's hop back to a member is told apart (pgBackRest names the remote's host).
    const member = sshProblem(
      cfg,
      "ERROR: [056]: raised from remote-0 ssh protocol on '127.0.1.12': postgres@127.0.1.12: Permission denied (publickey).",
    );
    expect(member?.code).toBe("OFFSITE_SSH_MEMBER");
    expect(member?.message).toBe(
      "the backup host could not log in to member 127.0.1.12:22 as postgres: Permission denied (publickey)",
    );
  });

  test("ssh: the members' pgBackRest for the backup host reads the password from a pgpass file; a host key file is read", () => {
    expect(pgpassLine("postgres", "a:b\\c")).toBe("*:*:*:postgres:a\\:b\\\\c\n");
    expect(pgCmdWrapper("/h/offsite-ssh/pgpass")).toContain(
      'PGPASSFILE=/h/offsite-ssh/pgpass exec /usr/bin/pgbackrest "$@"',
    );
    const dir = mkdtempSync("/tmp/pgp-sshkey-");
    try {
      const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
      writeFileSync(join(dir, "k.pub"), `${key} root@backup1\n`);
      writeFileSync(join(dir, "known"), `# pinned\n[backup1]:2222 ${key}\n`);
      writeFileSync(join(dir, "bad"), "not a key\n");
      const at = (f: string) =>
        load(SSH.replace(/BACKUP_OFFSITE_SSH_HOST_KEY=.*\n/, `BACKUP_OFFSITE_SSH_HOST_KEY=${join(dir, f)}\n`));
      expect(pinnedHostKey(at("k.pub"))).toBe(key);
      expect(pinnedHostKey(at("known"))).toBe(key);
      expect(() => pinnedHostKey(at("bad"))).toThrow(
        `BACKUP_OFFSITE_SSH_HOST_KEY: ${join(dir, "bad")} holds no public key`,
      );
      expect(() => pinnedHostKey(at("gone"))).toThrow(
        `BACKUP_OFFSITE_SSH_HOST_KEY: file ${join(dir, "gone")} does not exist`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an endpoint's port is split off; 443 without one", () => {
    expect(load(S3.replace("objectstorage.com", "objectstorage.com:9443")).backup.offsite.s3).toMatchObject({
      endpoint: "fsn1.your-objectstorage.com",
      port: 9443,
    });
  });
});

describe("the off-site repository in pgbackrest.conf", () => {
  const cfg = load(
    S3 +
      "BACKUP_OFFSITE_S3_URI_STYLE=path\nBACKUP_OFFSITE_S3_CA_FILE=/etc/ssl/store-ca.pem\nBACKUP_OFFSITE_RETENTION_FULL=12\n",
  );

  test("repo2: s3, TLS against the CA file, key, encryption on, its own retention", () => {
    expect(offsiteRepoLines(cfg, 2, SECRETS).slice(1)).toEqual([
      "repo2-type=s3",
      "repo2-path=/pgplatform/pgplatform-test",
      "repo2-s3-bucket=acme-backups",
      "repo2-s3-endpoint=fsn1.your-objectstorage.com",
      "repo2-s3-region=fsn1",
      "repo2-s3-uri-style=path",
      "repo2-storage-port=443",
      "repo2-storage-ca-file=/etc/ssl/store-ca.pem",
      "repo2-s3-key=AKID",
      "repo2-s3-key-secret=s3cr3t",
      "repo2-cipher-type=aes-256-cbc",
      "repo2-cipher-pass=pass-phrase",
      "repo2-bundle=y",
      "repo2-retention-full-type=count",
      "repo2-retention-full=12",
      "repo2-retention-diff=7",
    ]);
  });

  test("BACKUP_OFFSITE_CIPHER=none leaves the cipher out; none at all renders nothing", () => {
    expect(
      offsiteRepoLines(load(S3 + "BACKUP_OFFSITE_CIPHER=none\n"), 2, SECRETS).some((l) => l.includes("cipher-")),
    ).toBe(false);
    expect(offsiteRepoLines(load(""), 2, SECRETS)).toEqual([]);
    expect(renderPgbackrestConf(load(""))).not.toContain("repo2-");
  });

  test("the off-site-only config has the off-site repository as repo1 and no local repository", () => {
    const main = [
      "[global]",
      "repo1-path=/local/repo",
      "repo1-retention-full=4",
      ...offsiteRepoLines(cfg, 2, SECRETS),
      "compress-type=lz4",
      "",
      "[pgplatform-test]",
      "pg1-path=/x",
    ].join("\n");
    const only = offsiteOnlyConf(main);
    expect(only).not.toContain("/local/repo");
    expect(only).not.toContain("repo2-");
    expect(only).toContain("repo1-type=s3\nrepo1-path=/pgplatform/pgplatform-test\n");
    expect(only).toContain("repo1-retention-full=12\n");
    expect(only).toContain("compress-type=lz4\n\n[pgplatform-test]\npg1-path=/x");
  });

  test("missing secrets are named: key and secret for s3, the passphrase when encrypted", () => {
    expect(offsiteSecretProblems(cfg, { key: "", secret: "", cipherPass: "" })).toEqual([
      "BACKUP_OFFSITE_S3_KEY (the store's access key id)",
      "BACKUP_OFFSITE_S3_KEY_SECRET (the store's secret key)",
      "BACKUP_OFFSITE_CIPHER_PASS (generated by make backup)",
    ]);
    expect(offsiteSecretProblems(cfg, SECRETS)).toEqual([]);
  });

  test("target and warning name no secret", () => {
    expect(offsiteTarget(cfg)).toBe("s3://acme-backups/pgplatform/pgplatform-test at fsn1.your-objectstorage.com:443");
    expect(passphraseWarning(cfg)).toContain(`\`grep BACKUP_OFFSITE_CIPHER_PASS ${cfg.secretsFile}\``);
    expect(passphraseWarning(load(S3 + "BACKUP_OFFSITE_CIPHER=none\n"))).toBeUndefined();
  });
});

describe("reading back what pgBackRest encrypted", () => {
  // pgBackRest's format: "Salted__" + 8-byte salt + AES-256-CBC, key and IV by EVP_BytesToKey(SHA-1, 1 round).
  const encrypt = (pass: string, plain: Buffer, salt = randomBytes(8)) => {
    const { key, iv } = bytesToKey(Buffer.from(pass), salt);
    const c = createCipheriv("aes-256-cbc", key, iv);
    return Buffer.concat([Buffer.from("Salted__"), salt, c.update(plain), c.final()]);
  };

  test("EVP_BytesToKey matches OpenSSL's (openssl enc -aes-256-cbc -md sha1 -S 0102030405060708 -k pass -P)", () => {
    const { key, iv } = bytesToKey(Buffer.from("pass"), Buffer.from("0102030405060708", "hex"));
    const r = Bun.spawnSync([
      "openssl",
      "enc",
      "-aes-256-cbc",
      "-md",
      "sha1",
      "-S",
      "0102030405060708",
      "-k",
      "pass",
      "-P",
    ]);
    const out = r.stdout.toString();
    expect(out).toContain(`key=${key.toString("hex").toUpperCase()}`);
    expect(out).toContain(`iv =${iv.toString("hex").toUpperCase()}`);
  });

  test("decrypts in chunks of any size, the header split across them", () => {
    const plain = randomBytes(100_000);
    const enc = encrypt("pw", plain);
    const d = decryptor("pw");
    const parts: Buffer[] = [];
    for (let i = 0; i < enc.length; i += 7) parts.push(d.push(enc.subarray(i, i + 7)));
    parts.push(d.end());
    expect(createHash("sha256").update(Buffer.concat(parts)).digest("hex")).toBe(
      createHash("sha256").update(plain).digest("hex"),
    );
  });

  test("a wrong passphrase or a plain file is a named error, never garbage", () => {
    // A fixed salt: a wrong key fails CBC's padding check except by chance (then the sha256 check catches it).
    const enc = encrypt("right", Buffer.from("x".repeat(64)), Buffer.from("0102030405060708", "hex"));
    const d = decryptor("wrong");
    d.push(enc);
    expect(() => d.end()).toThrow("does not decrypt with BACKUP_OFFSITE_CIPHER_PASS");
    expect(() => decryptor("pw").push(Buffer.from("plain text, not encrypted"))).toThrow(
      "not in pgBackRest's encrypted format",
    );
  });
});

describe("small pieces", () => {
  test("pgBackRest's error: its ERROR line, the store's code and message, hints; not the request dump", () => {
    const out = [
      "P00 INFO: backup command begin",
      "ERROR: [039]: HTTP request failed with 403 (Forbidden):",
      "  *** Request Headers ***:",
      "  authorization: <redacted>",
      "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>",
      "       HINT: has a stanza-create been performed?",
    ].join("\n");
    expect(pgbackrestError(out)).toBe(
      "ERROR: [039]: HTTP request failed with 403 (Forbidden):\nthe store answered SignatureDoesNotMatch: The request signature we calculated does not match\nHINT: has a stanza-create been performed?",
    );
  });

  test("SOURCE is local or offsite", () => {
    expect(parseSource(undefined)).toBe("local");
    expect(parseSource("offsite")).toBe("offsite");
    expect(() => parseSource("far")).toThrow('SOURCE="far" must be local or offsite');
  });

  test("the drill's target is a second ago, in restore-pitr's form", () => {
    expect(drillTarget(new Date("2026-11-30T20:00:00.500Z"))).toBe("2026-11-30 19:59:59+00");
  });

  test("the drill's cron line", () => {
    expect(cronLine(load(S3), "/b", DRILL_JOB)).toBe(
      `45 3 * * 0 cd ${ROOT_DIR} && STACK=test /b ${ROOT_DIR}/scripts/backup-drill.ts >> ${ROOT_DIR}/.state/test/logs/drill-cron.log 2>&1 # pgplatform drill test`,
    );
  });
});

describe("a wrong passphrase is told from a store that fails (pgBackRest 2.45's own lines)", () => {
  const info =
    "unable to load info file '/pgplatform/pgplatform-test/backup/pgplatform-test/backup.info' or '/pgplatform/pgplatform-test/backup/pgplatform-test/backup.info.copy':";
  test("either error a wrong passphrase raises is a wrong passphrase", () => {
    expect(unreadableInfo(`[CryptoError] ${info}\nHINT: is or was the repo encrypted?`)).toBe(true);
    expect(unreadableInfo(`[FormatError] ${info}\nFormatError: key/value found outside of section at line 1`)).toBe(
      true,
    );
  });
  test("a store that does not answer, or refuses the key, is not", () => {
    expect(unreadableInfo("[HostConnectError] unable to connect to '127.0.1.30:19443': [111] Connection refused")).toBe(
      false,
    );
    expect(
      unreadableInfo(
        `[ProtocolError] ${info}\nProtocolError: S3 request failed with 403: Forbidden\n*** Response Content ***:\n<Code>SignatureDoesNotMatch</Code>`,
      ),
    ).toBe(false);
  });
});
