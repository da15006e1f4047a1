/**
 * Issue 11's render-side guarantees, checked on the rendered files (both
 * runtimes) and with the real openssl: etcd mutual TLS, Patroni's etcd TLS
 * settings, compose mounts, HAProxy's user, nginx's loopback-only plain HTTP
 * and the TLS profile; and the no-follow file writes root uses in folders
 * another user owns.
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { parseConfig, type Config } from "../../scripts/lib/config";
import { nativePoolWhere } from "../../scripts/lib/pool";
import { IMAGE_POSTGRES_IDS, writeDockerTls } from "../../scripts/lib/docker";
import { ensureEtcdTls, etcdTlsFiles, memberSans } from "../../scripts/lib/etcd-tls";
import { run } from "../../scripts/lib/exec";
import { renderSites } from "../../scripts/lib/deploy/nginx";
import { parseClientSettings } from "../../scripts/lib/deploy/settings";
import { ensureDirNoFollow, writeFileNoFollow } from "../../scripts/lib/safe-fs";
import { SECRET_KEYS } from "../../scripts/lib/secrets";
import { nativeEtcdTlsDir, renderStack } from "../../scripts/lib/stack-files";

const root = `${import.meta.dir}/../..`;
const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}-0123456789`]));
const envText = readFileSync(`${root}/envs/dev.env`, "utf8");
const load = (text: string, isRoot = true) =>
  parseConfig(text, { file: "envs/dev.env", stack: "dev", rootDir: root, isRoot, secrets });
const cfg = load(envText);
const tmp = mkdtempSync(join(tmpdir(), "pgp-etcdsec-"));
const isRoot = process.getuid?.() === 0;
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const file = (kind: "native" | "docker", path: string, c = cfg) =>
  renderStack(c, kind).find((f) => f.path === path)!.content;

describe("etcd: mutual TLS on client and peer URLs", () => {
  test("native: https everywhere, client certificates required on both URLs, the member's own pair", () => {
    const e = YAML.parse(file("native", "etcd/etcd2.yml"));
    const tls = join(cfg.memberRoot, "etcd", "tls");
    expect(tls).toBe(nativeEtcdTlsDir(cfg));
    expect([
      e["listen-client-urls"],
      e["advertise-client-urls"],
      e["listen-peer-urls"],
      e["initial-advertise-peer-urls"],
    ]).toEqual([
      "https://127.0.0.12:2379",
      "https://127.0.0.12:2379",
      "https://127.0.0.12:2380",
      "https://127.0.0.12:2380",
    ]);
    expect(e["initial-cluster"]).toBe(
      "etcd1=https://127.0.0.11:2380,etcd2=https://127.0.0.12:2380,etcd3=https://127.0.0.13:2380",
    );
    const pair = {
      "cert-file": `${tls}/etcd2.crt`,
      "key-file": `${tls}/etcd2.key`,
      "trusted-ca-file": `${tls}/ca.crt`,
      "client-cert-auth": true,
    };
    expect(e["client-transport-security"]).toEqual(pair);
    expect(e["peer-transport-security"]).toEqual(pair);
    expect(e["cipher-suites"]).toEqual([
      "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
      "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
      "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    ]);
    expect(e["data-dir"]).toBe(join(cfg.memberRoot, "etcd", "etcd2"));
  });

  test("docker: the same, with the paths compose mounts", () => {
    const e = YAML.parse(file("docker", "etcd/etcd1.yml"));
    expect(e["listen-client-urls"]).toBe("https://0.0.0.0:2379");
    expect(e["advertise-client-urls"]).toBe("https://etcd1:2379");
    expect(e["initial-cluster"]).toBe("etcd1=https://etcd1:2380,etcd2=https://etcd2:2380,etcd3=https://etcd3:2380");
    const pair = {
      "cert-file": "/etc/etcd/tls/server.crt",
      "key-file": "/etc/etcd/tls/server.key",
      "trusted-ca-file": "/etc/etcd/tls/ca.crt",
      "client-cert-auth": true,
    };
    expect(e["client-transport-security"]).toEqual(pair);
    expect(e["peer-transport-security"]).toEqual(pair);
  });

  test("Patroni's etcd section: https with the CA, its client certificate and key (native: in the member dir)", () => {
    const m = cfg.members[0]!;
    expect(YAML.parse(file("native", "pg1/patroni.yml")).etcd).toEqual({
      hosts: "127.0.0.11:2379,127.0.0.12:2379,127.0.0.13:2379",
      protocol: "https",
      cacert: `${m.dir}/etcd-ca.crt`,
      cert: `${m.dir}/etcd-client.crt`,
      key: `${m.dir}/etcd-client.key`,
    });
    expect(YAML.parse(file("docker", "pg1/patroni.yml")).etcd).toEqual({
      hosts: "etcd1:2379,etcd2:2379,etcd3:2379",
      protocol: "https",
      cacert: "/etc/patroni/tls/ca.crt",
      cert: "/etc/patroni/tls/client.crt",
      key: "/etc/patroni/tls/client.key",
    });
  });

  test("compose/dev.yml mounts each member's pair and the CA, Patroni's client pair, and health-checks with a certificate", () => {
    const c = YAML.parse(readFileSync(`${root}/compose/dev.yml`, "utf8"), { merge: true });
    for (const i of [1, 2, 3]) {
      expect(c.services[`etcd${i}`].volumes).toEqual([
        `\${RENDERED_DIR}/etcd/etcd${i}.yml:/etc/etcd/etcd.yml:ro`,
        "${RENDERED_DIR}/tls/ca.crt:/etc/etcd/tls/ca.crt:ro",
        `\${RENDERED_DIR}/tls/etcd${i}.crt:/etc/etcd/tls/server.crt:ro`,
        `\${RENDERED_DIR}/tls/etcd${i}.key:/etc/etcd/tls/server.key:ro`,
        `etcd${i}:/etcd-data`,
      ]);
      expect(c.services[`pg${i}`].volumes).toEqual([
        `\${RENDERED_DIR}/pg${i}/patroni.yml:/etc/patroni/patroni.yml:ro`,
        "${RENDERED_DIR}/tls/ca.crt:/etc/patroni/tls/ca.crt:ro",
        "${RENDERED_DIR}/tls/client.crt:/etc/patroni/tls/client.crt:ro",
        "${RENDERED_DIR}/tls/patroni-client.key:/etc/patroni/tls/client.key:ro",
        `pg${i}:/home/postgres/data`,
        "pgbackrest:/home/pgbackrest",
        "${RENDERED_DIR}/pgbackrest/pgbackrest.conf:/home/pgbackrest/pgbackrest.conf:ro",
      ]);
      expect(c.services[`etcd${i}`].healthcheck.test).toEqual([
        "CMD",
        "etcdctl",
        "--endpoints=https://127.0.0.1:2379",
        "--cacert=/etc/etcd/tls/ca.crt",
        "--cert=/etc/etcd/tls/server.crt",
        "--key=/etc/etcd/tls/server.key",
        "endpoint",
        "health",
      ]);
    }
  });

  test("the Patroni image has what https to etcd needs (python3-idna for urllib3)", () => {
    expect(readFileSync(`${root}/compose/patroni/Dockerfile`, "utf8")).toMatch(
      /apt-get install -y --no-install-recommends [^\n]*\bpython3-idna\b/,
    );
  });

  test("the stack CA (real openssl): member certificates carry the member's names, verify, and keys are 0600", async () => {
    const files = etcdTlsFiles(join(tmp, "tls"));
    const made = await ensureEtcdTls(cfg, files);
    expect(made).toEqual([
      "etcd CA",
      "certificate etcd1",
      "certificate etcd2",
      "certificate etcd3",
      "certificate etcd-client",
    ]);
    for (const m of cfg.members) {
      const pair = files.member(m);
      expect((await run(["openssl", "verify", "-CAfile", files.ca, pair.cert])).stdout.trim()).toBe(`${pair.cert}: OK`);
      const san = (
        await run(["openssl", "x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage", "-in", pair.cert])
      ).stdout;
      expect(san).toContain(
        memberSans(m)
          .map((s) => s.replace(/^IP:/, "IP Address:"))
          .join(", "),
      );
      expect(san).toContain("TLS Web Server Authentication, TLS Web Client Authentication");
      expect(statSync(pair.key).mode & 0o777).toBe(0o600);
    }
    expect(statSync(files.caKey).mode & 0o777).toBe(0o600);
    expect(statSync(files.client.key).mode & 0o777).toBe(0o600);
    expect(statSync(files.dir).mode & 0o777).toBe(0o711);
    // Idempotent: nothing re-issued on a second run.
    expect(await ensureEtcdTls(cfg, files)).toEqual([]);
  });

  test("docker TLS: Patroni's client key belongs to the image's postgres user (999), 0600", async () => {
    const dir = join(tmp, "rendered-docker");
    await writeDockerTls(cfg, dir);
    const k = statSync(join(dir, "tls", "patroni-client.key"));
    expect({ uid: k.uid, gid: k.gid, mode: k.mode & 0o777 }).toEqual({
      uid: process.getuid!() === 0 ? IMAGE_POSTGRES_IDS.uid : process.getuid!(),
      gid: process.getuid!() === 0 ? IMAGE_POSTGRES_IDS.gid : k.gid,
      mode: 0o600,
    });
  });
});

describe("service users", () => {
  test("native as root: HAProxy drops to the haproxy user; the image's haproxy needs no setuid", () => {
    expect(file("native", "haproxy/haproxy.cfg")).toContain(
      "global\n    maxconn 1000\n    log stdout format raw local0 notice\n    user haproxy\n    group haproxy\n",
    );
    expect(file("docker", "haproxy/haproxy.cfg")).not.toMatch(/^\s*user haproxy/m);
  });

  test("native: pgbouncer's way in is HAProxy's read-write Unix socket, postgres's alone (0600), on one thread", () => {
    const rw = (c: Config, kind: "native" | "docker") =>
      file(kind, "haproxy/haproxy.cfg", c).split("listen postgres_rw\n")[1]!.split("\n\n")[0]!;
    const dir = "/run/pgplatform/dev/haproxy";
    expect(
      rw(cfg, "native")
        .match(/^ *bind .*$/gm)!
        .map((l) => l.trim()),
    ).toEqual([
      `bind ${cfg.haproxy.address}:${cfg.haproxy.rwPort}`,
      `bind unix@${dir}/.s.PGSQL.${cfg.haproxy.rwPort} mode 600 user postgres thread 1`,
    ]);
    // pgbouncer's [databases] name that folder and port (libpq's convention: <host>/.s.PGSQL.<port>).
    expect(nativePoolWhere(cfg)).toMatchObject({ upstreamHost: dir, upstreamPort: cfg.haproxy.rwPort });
    // Without root nothing changes owner: the socket is ours, like every process of the stack.
    const mine = load(envText, false);
    expect(rw(mine, "native")).toMatch(
      /^ {4}bind unix@\/tmp\/pgp-\d+\/dev\/haproxy\/\.s\.PGSQL\.\d+ mode 600 thread 1$/m,
    );
    // The pgbouncer container reaches HAProxy over the compose network: no socket there.
    expect(rw(cfg, "docker")).not.toContain("unix@");
  });
});

describe("nginx", () => {
  test("the plain-HTTP stack server binds loopback even when API_ADDRESS is not", () => {
    const pub = load(envText.replace(/^API_ADDRESS=.*$/m, "API_ADDRESS=10.20.30.40"));
    const conf = file("native", "nginx/nginx.conf", pub);
    expect(conf.match(/^\s*listen .*$/gm)!.map((l) => l.trim())).toEqual([`listen 127.0.0.1:${pub.api.port};`]);
    expect(
      file("native", "nginx/nginx.conf")
        .match(/^\s*listen .*$/gm)!
        .map((l) => l.trim()),
    ).toEqual([`listen ${cfg.api.address}:${cfg.api.port};`]);
  });

  test("nginx logs go to the stack's log folder", () => {
    const conf = file("native", "nginx/nginx.conf");
    expect(conf).toContain(`error_log ${cfg.logsDir}/nginx-error.log warn;`);
    expect(conf).toContain(`access_log ${cfg.logsDir}/nginx-access.log;`);
  });

  test("TLS sites use Mozilla's intermediate profile: TLS 1.2/1.3 and its cipher list", () => {
    const s = parseClientSettings(
      "CLIENT_NAME=acme\nHOST=local\nDOMAIN=acme.internal\nPROFILE=16\nREMOTE_DIR=/opt/pgplatform/acme\nMEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13\nHAPROXY_ADDRESS=127.0.0.1\nAPI_ADDRESS=10.20.30.40\nACCESS=internal\n",
      "acme",
    );
    const sites = renderSites(root, s, { tlsCert: "/x/server.crt", tlsKey: "/x/server.key" } as never);
    const tlsSites = sites.filter((f) => f.content.includes(" ssl "));
    expect(tlsSites.length).toBe(3);
    for (const f of tlsSites) {
      const lines = f.content.split("\n").map((l) => l.trim());
      expect(lines).toContain("ssl_protocols TLSv1.2 TLSv1.3;");
      expect(lines).toContain(
        "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384;",
      );
      expect(lines).toContain("ssl_prefer_server_ciphers off;");
      // The TLS site reaches the stack's gateway on loopback, where the plain-HTTP server now listens.
      expect(f.content).toMatch(/server 127\.0\.0\.1:\d+;/);
    }
  });
});

describe("root never follows a symlink another user planted", () => {
  const victim = join(tmp, "victim");
  const owned = join(tmp, "owned");
  const fresh = () => {
    rmSync(victim, { recursive: true, force: true });
    rmSync(owned, { recursive: true, force: true });
    mkdirSync(victim, { mode: 0o755 });
    writeFileSync(join(victim, "file"), "victim\n", { mode: 0o644 });
    mkdirSync(owned, { mode: 0o700 });
  };

  // Links made by another user (nobody, 65534): root, ourselves and the checkout's owner are trusted.
  const plant = (target: string, link: string) => {
    symlinkSync(target, link);
    lchownSync(link, 65534, 65534);
  };

  test.if(isRoot)("writeFileNoFollow refuses a symlink at the path and leaves its target alone", () => {
    fresh();
    plant(join(victim, "file"), join(owned, "patroni.yml"));
    expect(() =>
      writeFileNoFollow(join(owned, "patroni.yml"), "evil\n", { mode: 0o600, owner: { uid: 65534, gid: 65534 } }),
    ).toThrow(`${join(owned, "patroni.yml")}: is a symlink owned by uid 65534; refusing to change it as root`);
    const st = statSync(join(victim, "file"));
    expect({ content: readFileSync(join(victim, "file"), "utf8"), mode: st.mode & 0o777, uid: st.uid }).toEqual({
      content: "victim\n",
      mode: 0o644,
      uid: process.getuid!(),
    });
  });

  test.if(isRoot)("ensureDirNoFollow refuses a symlinked folder and does not chmod/chown its target", () => {
    fresh();
    plant(victim, join(owned, "run"));
    expect(() => ensureDirNoFollow(join(owned, "run"), 0o700, { uid: 65534, gid: 65534 })).toThrow(
      `${join(owned, "run")}: is a symlink owned by uid 65534; refusing to change it as root`,
    );
    const st = statSync(victim);
    expect({ mode: st.mode & 0o777, uid: st.uid }).toEqual({ mode: 0o755, uid: process.getuid!() });
  });

  test.if(isRoot)("a symlink owned by another user higher up the path is refused too", () => {
    fresh();
    const link = join(owned, "repo");
    plant(victim, link);
    expect(() => ensureDirNoFollow(join(link, "sub"), 0o750, { uid: 65534, gid: 65534 })).toThrow(
      `${link}: is a symlink owned by uid 65534; refusing to change it as root`,
    );
    expect(lstatSync(join(victim)).isDirectory()).toBe(true);
    expect(() => statSync(join(victim, "sub"))).toThrow();
  });

  test("a symlink root itself made is followed (an operator's logs -> /var/log/...)", () => {
    fresh();
    symlinkSync(victim, join(owned, "logs"));
    expect(ensureDirNoFollow(join(owned, "logs"), 0o700)).toBe(false);
    expect(statSync(victim).mode & 0o777).toBe(0o700);
  });

  test("ordinary writes: created with the mode and owner, unchanged content reports no change", () => {
    fresh();
    const p = join(owned, "conf");
    expect(writeFileNoFollow(p, "a\n", { mode: 0o640 })).toBe(true);
    expect(writeFileNoFollow(p, "a\n", { mode: 0o640 })).toBe(false);
    expect(statSync(p).mode & 0o777).toBe(0o640);
    expect(ensureDirNoFollow(join(owned, "d"), 0o750)).toBe(true);
    expect(ensureDirNoFollow(join(owned, "d"), 0o750)).toBe(false);
  });
});
