/** deploy-client, pure parts: bundle rendering (golden files, secrets masked), settings, profile, compose, digest, commands. */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import YAML from "yaml";
import { validateCompose } from "../../scripts/lib/compose-schema";
import { ToolkitError } from "../../scripts/lib/errors";
import type { ClientSecrets } from "../../scripts/lib/deploy/client-secrets";
import { releaseDigest, renderBundleFiles, renderEnvFile, TOOLKIT_PATHS } from "../../scripts/lib/deploy/bundle";
import { releasesToPrune } from "../../scripts/lib/deploy/deploy";
import { neededPorts, parseListeners, portConflicts } from "../../scripts/lib/deploy/preflight";
import {
  SIZE_PROFILES,
  parseClientSettings,
  profileForMemory,
  renderClientEnv,
  stackConfig,
  type ClientSettings,
} from "../../scripts/lib/deploy/settings";
import {
  hostPattern,
  remoteCommand,
  scpCommand,
  sshCommand,
  sshErrorLine,
  sshFailure,
} from "../../scripts/lib/deploy/target";
import { ACME_ENV, GOLDEN_ROOT, acme, deployClientGoldens, fixedSecrets, readGolden } from "../golden";

const ROOT = resolve(import.meta.dir, "../..");
const GOLDEN = join(GOLDEN_ROOT, deployClientGoldens.dir);

describe("bundle rendering (golden files, secrets masked)", () => {
  const secrets = fixedSecrets();
  const files = renderBundleFiles(ROOT, acme(), secrets);

  test("the bundle has the stack env, the per-environment env files and nginx sites", () => {
    expect(files.map((f) => f.path)).toEqual([
      "client/.secrets.env",
      "client/client.env",
      "client/env/dev.env",
      "client/env/production.env",
      "client/env/staging.env",
      "client/manifest.json",
      "client/nginx/client-acme-dev.conf",
      "client/nginx/client-acme-production.conf",
      "client/nginx/client-acme-staging.conf",
      "envs/.secrets.client-acme.env",
      "envs/client-acme.env",
    ]);
    for (const f of files) expect(f.mode).toBe(/secrets|\/env\//.test(f.path) ? 0o600 : 0o644);
  });

  // Compared only: a missing golden fails (`make golden` is the one writer, see tests/golden.ts).
  for (const f of deployClientGoldens.files()) {
    test(`golden: ${f.name}`, () => {
      const golden = readGolden(deployClientGoldens.dir, f.name);
      expect(f.content).toBe(golden);
      // nothing secret survives masking in a golden file
      for (const v of Object.values(secrets)) expect(golden).not.toContain(v);
    });
  }

  test("a missing golden fails, naming the update command, and is not written by the test", () => {
    expect(() => readGolden(deployClientGoldens.dir, "client__no-such-file.env")).toThrow(
      "missing golden file tests/unit/golden/deploy-client/client__no-such-file.env: a test never writes goldens; review the output and run `make golden`, then commit the file",
    );
    expect(existsSync(join(GOLDEN, "client__no-such-file.env"))).toBe(false);
    // every produced file has its committed golden (none is created on the fly)
    expect(readdirSync(GOLDEN).sort()).toEqual(
      deployClientGoldens
        .files()
        .map((f) => f.name)
        .sort(),
    );
  });

  test("every golden file is still produced (no stale goldens)", () => {
    const produced = new Set(files.map((f) => f.path.replaceAll("/", "__")));
    for (const g of readdirSync(GOLDEN)) expect(produced.has(g)).toBe(true);
  });

  test("environment env files: seed ports, own database, own role, pooled DATABASE_URL and HAProxy DIRECT_URL", () => {
    const s = acme();
    const want = {
      dev: [6100, "orchestrator_ai_dev"],
      staging: [7100, "orchestrator_ai_staging"],
      production: [9000, "orchestrator_ai_production"],
    } as const;
    for (const [env, [port, db]] of Object.entries(want)) {
      const v = parseDotenv(Buffer.from(renderEnvFile(s, secrets, env as "dev")));
      expect(v.DB_NAME).toBe(db);
      expect(v.PUBLIC_URL).toBe(`https://${env === "production" ? "" : env + "."}acme.internal:${port}`);
      expect(v.APP_PORT).toBe(String(port + 1));
      const pw = secrets[`DB_PASSWORD_${env.toUpperCase()}` as keyof ClientSecrets];
      // pooled through the stack's pgbouncer (default POOL_PORT), direct to HAProxy's read-write port
      expect(v.DATABASE_URL).toBe(`postgresql://${db}_app:${pw}@127.0.0.1:6015/${db}`);
      expect(v.DIRECT_URL).toBe(`postgresql://${db}_app:${pw}@127.0.0.1:9012/${db}`);
    }
    // dev never gets the superuser password
    expect(parseDotenv(Buffer.from(renderEnvFile(s, secrets, "dev"))).POSTGRES_PASSWORD).toBeUndefined();
  });

  test("the stack env passes the one config loader", () => {
    const cfg = stackConfig(acme(), ROOT);
    expect(cfg.stack).toBe("client-acme");
    expect(cfg.databases).toEqual(["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production"]);
    expect(cfg.sharedBuffers).toBe("2GB"); // profile 32
    expect(cfg.stateDir).toBe("/opt/pgplatform/acme/state/client-acme"); // outside the releases: data survives them
  });

  test("release digest: same inputs give the same digest; a changed secret gives another", () => {
    const a = releaseDigest(ROOT, files, ["package.json"]);
    expect(releaseDigest(ROOT, renderBundleFiles(ROOT, acme(), fixedSecrets()), ["package.json"])).toBe(a);
    const other = { ...fixedSecrets(), DB_PASSWORD_DEV: "another-password-entirely-xyz" };
    expect(releaseDigest(ROOT, renderBundleFiles(ROOT, acme(), other), ["package.json"])).not.toBe(a);
  });
});

describe("client settings", () => {
  const bad: [string, string, RegExp][] = [
    ["PROFILE", "PROFILE=48\n", /PROFILE: must be 16, 32 or 64/],
    ["ACCESS", "ACCESS=open\n", /ACCESS: must be internal or public/],
    ["DOMAIN", "DOMAIN=Not A Domain\n", /DOMAIN: must be a DNS name/],
    ["unknown", "PORTS=1\n", /PORTS: unknown setting/],
    ["admin e-mail", "ACCESS=public\n", /ADMIN_EMAIL: is required with ACCESS=public/],
    ["duplicate port", "PORT_STAGING=6100\n", /PORT_STAGING: port 6100 is also used by PORT_DEV/],
    ["keep releases", "KEEP_RELEASES=1\n", /KEEP_RELEASES: must keep at least 2/],
  ];
  for (const [name, line, re] of bad) {
    test(`a bad ${name} names the key`, () => {
      // later lines win in dotenv? no: the first wins, so put the override first
      expect(() =>
        parseClientSettings(
          line +
            ACME_ENV.split("\n")
              .filter((l) => !l.startsWith(line.split("=")[0] + "="))
              .join("\n"),
          "clients/acme/client.env",
        ),
      ).toThrow(re);
    });
  }

  test("client.env renders every key with comments and reads back the same", () => {
    const s = acme();
    const text = renderClientEnv(s.raw);
    expect(text).toContain("# Size profile in GB of RAM");
    const back = parseClientSettings(text, "x");
    expect({ ...back, raw: {} }).toEqual({ ...s, raw: {} });
  });

  test("the committed example client is valid", () => {
    const s = parseClientSettings(
      readFileSync(join(ROOT, "clients/example/client.env"), "utf8"),
      "clients/example/client.env",
    );
    expect(s.name).toBe("example");
    // generated secrets and TLS keys of any client are never committed
    for (const f of ["clients/example/.secrets.env", "clients/acme/.tls/ca.key"]) {
      expect(Bun.spawnSync(["git", "check-ignore", "-q", f], { cwd: ROOT }).exitCode).toBe(0);
    }
    // client.env and the pinned ssh host keys (public) are committed
    for (const f of ["clients/example/client.env", "clients/example/known_hosts"])
      expect(Bun.spawnSync(["git", "check-ignore", "-q", f], { cwd: ROOT }).exitCode).toBe(1);
  });
});

describe("size profile", () => {
  test.each([
    [8 * 1024 * 1024, "16"],
    [16_318_540, "16"],
    [32_000_000, "32"],
    [65_500_000, "64"],
    [128 * 1024 * 1024, "64"],
  ])("%d kB -> %s GB profile", (kb, want) => expect(profileForMemory(kb)).toBe(want as "16"));

  test("the profile decides optional services and workers, recorded in the env files", () => {
    expect(SIZE_PROFILES["16"]).toMatchObject({ localModels: "off", workers: 1, composeProfiles: [] });
    expect(SIZE_PROFILES["32"].composeProfiles).toEqual(["local-models", "monitoring"]);
    expect(SIZE_PROFILES["64"].workers).toBe(4);
    const s16 = parseDotenv(
      Buffer.from(
        renderEnvFile(acme().profile === "32" ? { ...acme(), profile: "16" } : acme(), fixedSecrets(), "production"),
      ),
    );
    expect(s16.COMPOSE_PROFILES).toBe("");
    expect(s16.WORKERS).toBe("1");
  });
});

describe("compose files for the customer's staging and production", () => {
  for (const env of ["staging", "production"] as const) {
    const text = readFileSync(join(ROOT, `compose/client-${env}.yml`), "utf8");
    const vars = parseDotenv(Buffer.from(renderEnvFile(acme(), fixedSecrets(), env)));

    test(`${env}: valid against the Compose spec with the bundle's ${env}.env`, () => {
      expect(validateCompose(text, vars)).toEqual([]);
    });

    test(`${env}: a variable the env file lacks is reported by name`, () => {
      const { JWT_SECRET: _, ...rest } = vars;
      expect(validateCompose(text, rest)).toContain("variable ${JWT_SECRET} is not set");
    });

    test(`${env}: every image is pinned to a version (no latest)`, () => {
      const doc = YAML.parse(text, { merge: true });
      for (const [name, svc] of Object.entries<any>(doc.services)) {
        // IMAGE_<NAME> in the env file overrides; the default is the pinned image
        expect(svc.image, name).toMatch(/^\$\{IMAGE_[A-Z_]+:-[a-z0-9./-]+:[A-Za-z0-9._-]+\}$/);
        expect(svc.image, name).not.toMatch(/:latest$/);
      }
      expect(doc.services.ollama.profiles).toEqual(["local-models"]);
      expect(doc.services.grafana.profiles).toEqual(["monitoring"]);
    });
  }
});

describe("commands as data", () => {
  const s: ClientSettings = acme("SSH_PORT=2222\nSSH_IDENTITY=/keys/id\n");
  test("ssh quotes every remote argument", () => {
    expect(remoteCommand(["env", "-C", "/opt/x y", "A=it's", "ls"])).toBe(`env -C '/opt/x y' 'A=it'\\''s' ls`);
    // Host keys pinned in the client's own file (no global/personal known_hosts), unknown or changed keys refused,
    // nothing forwarded to the customer's server.
    const pinned =
      "-o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/c/acme/known_hosts -o GlobalKnownHostsFile=/dev/null -o HashKnownHosts=no -o ForwardAgent=no -o ForwardX11=no -o ConnectTimeout=10 -o ServerAliveInterval=15";
    const withFile = { ...s, sshKnownHosts: "/c/acme/known_hosts" };
    expect(sshCommand(withFile, ["uname", "-sm"]).join(" ")).toBe(
      `ssh ${pinned} -o IdentitiesOnly=yes -i /keys/id -p 2222 ops@acme-server -- uname -sm`,
    );
    expect(scpCommand(withFile, "/tmp/a.tar", "/opt/b.tar").join(" ")).toBe(
      `scp -q ${pinned} -o IdentitiesOnly=yes -i /keys/id -P 2222 /tmp/a.tar ops@acme-server:/opt/b.tar`,
    );
    // SSH_KNOWN_HOSTS empty: the bundle's own clients/<name>/known_hosts
    expect(sshCommand(s, ["true"])).toContain(
      `UserKnownHostsFile=${join(process.env.CLIENTS_DIR ?? join(ROOT, "clients"), "acme", "known_hosts")}`,
    );
    expect(hostPattern(s)).toBe("[acme-server]:2222");
    expect(hostPattern(acme())).toBe("acme-server");
  });

  test("an ssh failure is ssh's own line with the fix for its kind", () => {
    const s = acme("SSH_PORT=2222\nSSH_KNOWN_HOSTS=/c/acme/known_hosts\n");
    const cases: [string, string, string, RegExp][] = [
      [
        "ops@acme-server: Permission denied (publickey).\r\n",
        "SSH_FAILED",
        "ssh to ops@acme-server:2222 failed: ops@acme-server: Permission denied (publickey).",
        /ssh-copy-id -p 2222 ops@acme-server/,
      ],
      [
        "ssh: connect to host acme-server port 2222: Connection refused\r\n",
        "SSH_FAILED",
        "ssh to ops@acme-server:2222 failed: ssh: connect to host acme-server port 2222: Connection refused",
        /start sshd on the server, or fix HOST\/SSH_PORT in clients\/acme\/client.env/,
      ],
      [
        "ssh: Could not resolve hostname acme-server: Name or service not known\r\n",
        "SSH_FAILED",
        "ssh to ops@acme-server:2222 failed: ssh: Could not resolve hostname acme-server: Name or service not known",
        /fix HOST in clients\/acme\/client.env/,
      ],
      [
        "No ED25519 host key is known for [acme-server]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n",
        "HOST_KEY_UNKNOWN",
        "ssh to ops@acme-server:2222: no host key is pinned for [acme-server]:2222 in /c/acme/known_hosts; refusing a first-seen key without being asked; nothing was changed.",
        /TRUST_NEW_HOST=1/,
      ],
      [
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\nHost key for [acme-server]:2222 has changed and you have requested strict checking.\r\nHost key verification failed.\r\n",
        "HOST_KEY_CHANGED",
        "ssh to ops@acme-server:2222: the host key differs from the one pinned for [acme-server]:2222 in /c/acme/known_hosts: another machine may be answering (a man in the middle), or the server was reinstalled; nothing was changed.",
        /ssh-keygen -R '\[acme-server\]:2222' -f \/c\/acme\/known_hosts/,
      ],
    ];
    for (const [stderr, code, message, fix] of cases) {
      const e = sshFailure(s, stderr);
      expect({ code: e.code, message: e.message }).toEqual({ code, message });
      expect(e.fix).toMatch(fix);
    }
    expect(
      sshErrorLine(
        "Warning: Permanently added '[h]:22' (ED25519) to the list of known hosts.\r\nConnection closed by 127.0.0.1 port 22\r\n",
      ),
    ).toBe("Connection closed by 127.0.0.1 port 22");
  });
});

describe("preflight: ports", () => {
  const s = acme();
  const ss = `LISTEN 0 511 127.0.0.1:9000 0.0.0.0:* users:(("nginx",pid=10,fd=6))
LISTEN 0 4096 0.0.0.0:2379 0.0.0.0:* users:(("someetcd",pid=11,fd=3))
LISTEN 0 128 127.0.1.1:9012 0.0.0.0:* users:(("haproxy",pid=12,fd=3))`;
  test("parses ss and names each conflicting holder", () => {
    const l = parseListeners(ss);
    expect(l).toEqual([
      { address: "127.0.0.1", port: 9000, process: "nginx" },
      { address: "0.0.0.0", port: 2379, process: "someetcd" },
      { address: "127.0.1.1", port: 9012, process: "haproxy" },
    ]);
    const row = portConflicts(s, l, false);
    expect(row.status).toBe("fail");
    expect(row.detail).toContain("127.0.0.1:9000 (nginx production (TLS)) held by nginx");
    expect(row.detail).toContain("127.0.0.11:2379 (etcd client pg1) held by someetcd");
    expect(row.detail).not.toContain("9012"); // another address
  });
  test("a deployed client's own processes holding its ports pass", () => {
    const row = portConflicts(
      s,
      parseListeners(ss).filter((x) => x.process !== "someetcd"),
      true,
    );
    expect(row.status).toBe("pass");
    expect(neededPorts(s).length).toBe(19);
  });
  test("errors are ToolkitErrors", () => {
    expect(() => parseClientSettings("CLIENT_NAME=X\n", "f")).toThrow(ToolkitError);
  });
});

describe("releases", () => {
  test("keep the newest N, never the live one", () => {
    expect(releasesToPrune([1, 2, 3, 4, 5, 6], 3, 6)).toEqual([1, 2, 3]);
    expect(releasesToPrune([6, 1, 5, 2], 2, 6)).toEqual([1, 2]);
    // after a rollback the live release may be old: it stays
    expect(releasesToPrune([1, 2, 3, 4, 5], 2, 1)).toEqual([2, 3]);
    expect(releasesToPrune([1, 2], 5, 2)).toEqual([]);
  });
});

describe("the release ships what the target renders", () => {
  // A first deploy once died on the target with ENOENT for pgbouncer/pgbouncer.ini.tmpl: a new template
  // folder was rendered by dev-up but not shipped. Every top-level folder holding a template must ship.
  test("every top-level folder with a *.tmpl file is in TOOLKIT_PATHS", () => {
    const root = resolve(import.meta.dir, "../..");
    const folders = readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith(".") && d.name !== "node_modules" && d.name !== "tests")
      .filter((d) => readdirSync(join(root, d.name), { recursive: true }).some((f) => String(f).endsWith(".tmpl")))
      .map((d) => d.name)
      .sort();
    expect(folders.length).toBeGreaterThan(4);
    expect(folders.filter((f) => !TOOLKIT_PATHS.includes(f))).toEqual([]);
  });
});
