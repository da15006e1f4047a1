/** Prometheus's UI behind nginx with basic auth: the rendered server, the address rule, the files. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../scripts/lib/config";
import { isRoot, run } from "../../scripts/lib/exec";
import {
  isPublicAddress,
  monitoringListeners,
  monitoringUiFiles,
  monitoringUiPassword,
  renderMonitoringUi,
  writeMonitoringUi,
} from "../../scripts/lib/monitoring";
import { SECRET_KEYS } from "../../scripts/lib/secrets";

const root = `${import.meta.dir}/../..`;
const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}-0123456789`]));
const scratch = mkdtempSync(join(tmpdir(), "pgp-mon-ui-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const env =
  readFileSync(`${root}/envs/test.env`, "utf8").replace("MONITORING=false", "MONITORING=true") +
  `\nSTATE_DIR=${scratch}/state\nMEMBER_ROOT=${scratch}/members\n`;
const load = (text: string) =>
  parseConfig(text, { file: "envs/test.env", stack: "test", rootDir: root, isRoot: false, secrets });
const cfg = load(env);

describe("Prometheus's UI behind nginx", () => {
  test("one server on the stack's address, PROMETHEUS_PORT + 5, basic auth from the hash file, proxied to Prometheus without the password", () => {
    const f = monitoringUiFiles(cfg);
    const conf = renderMonitoringUi(cfg);
    expect(
      conf
        .match(/^\s*(listen|auth_basic|auth_basic_user_file|proxy_pass|proxy_set_header Authorization) .*$/gm)!
        .map((l) => l.trim()),
    ).toEqual([
      "listen 127.0.1.1:9095;",
      'auth_basic "pgplatform monitoring (test)";',
      `auth_basic_user_file ${f.htpasswd};`,
      "proxy_pass http://127.0.1.1:9090;",
      'proxy_set_header Authorization "";',
    ]);
    expect(monitoringListeners(cfg).at(-1)).toEqual({
      name: "prometheus-ui (nginx)",
      address: "127.0.1.1",
      port: 9095,
    });
  });

  test("public addresses are refused; loopback, RFC 1918 and tailnet ones are not", async () => {
    expect(
      ["127.0.1.1", "10.0.0.5", "172.16.0.1", "172.31.255.1", "192.168.1.10", "100.64.0.1", "100.127.1.1"].filter(
        isPublicAddress,
      ),
    ).toEqual([]);
    expect(["8.8.8.8", "172.32.0.1", "192.169.0.1", "100.128.0.1", "11.0.0.1"].filter(isPublicAddress)).toEqual([
      "8.8.8.8",
      "172.32.0.1",
      "192.169.0.1",
      "100.128.0.1",
      "11.0.0.1",
    ]);
    const pub = load(
      env
        .replace(/^HAPROXY_ADDRESS=.*$/m, "HAPROXY_ADDRESS=203.0.113.7")
        .replace(/^API_ADDRESS=.*$/m, "API_ADDRESS=203.0.113.7"),
    );
    await expect(writeMonitoringUi(pub)).rejects.toThrow(
      "MONITORING=true would serve Prometheus's UI on 203.0.113.7, a public address (HAPROXY_ADDRESS in envs/test.env)",
    );
  });

  test("the password is generated once (0600); nginx gets a bcrypt hash of it; a re-run changes nothing", async () => {
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(scratch, "members", "monitoring"), { recursive: true });
    mkdirSync(join(scratch, "state", "nginx", "apps"), { recursive: true });
    expect(await writeMonitoringUi(cfg)).toBe(true);
    const f = monitoringUiFiles(cfg);
    const pw = monitoringUiPassword(cfg);
    expect(pw).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(statSync(f.password).mode & 0o777).toBe(0o600);
    const [user, hash] = readFileSync(f.htpasswd, "utf8").trim().split(":");
    expect(user).toBe("monitor");
    expect(hash).toMatch(/^\$2[aby]\$10\$/);
    expect(await Bun.password.verify(pw, hash!)).toBe(true);
    expect(statSync(f.htpasswd).mode & 0o777).toBe(isRoot() ? 0o640 : 0o600);
    expect(readFileSync(f.conf, "utf8")).toBe(renderMonitoringUi(cfg));
    expect(await writeMonitoringUi(cfg)).toBe(false);
  });

  test("nginx accepts the server (nginx -t)", async () => {
    const conf = join(scratch, "t.conf");
    const { writeFileSync, mkdirSync } = await import("node:fs");
    mkdirSync(join(scratch, "logs"), { recursive: true });
    writeFileSync(
      conf,
      `pid ${scratch}/n.pid;\nerror_log ${scratch}/logs/e.log;\nevents {}\nhttp {\naccess_log off;\n${renderMonitoringUi(cfg)}\n}\n`,
    );
    const r = await run(["nginx", "-t", "-q", "-p", scratch, "-c", conf], { nothrow: true });
    expect(r.stderr.trim()).toBe("");
    expect(r.code).toBe(0);
  });
});
