import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readGolden } from "../golden";
import { clusterGoldens, clusterSecrets, crm } from "../golden-cluster";
import {
  checksumCommand,
  directoryCommands,
  holdsVip,
  installFileCommand,
  parsePids,
  pidsCommand,
  reloadPatroniCommand,
  startCommand,
  stopCommand,
} from "../../scripts/lib/cluster/commands";
import { hostPaths, renderHostFiles, renderPatroni } from "../../scripts/lib/cluster/render";
import { ToolkitError } from "../../scripts/lib/errors";

const ROOT = resolve(import.meta.dir, "../..");

describe("cluster: per-host rendered files (golden)", () => {
  for (const f of clusterGoldens.files()) {
    test(f.name, () => expect(f.content).toBe(readGolden(clusterGoldens.dir, f.name)));
  }

  test("replication and connections only from the cluster's hosts, no archive to a missing repo", () => {
    const y = renderPatroni(ROOT, crm(), clusterSecrets(), crm().hosts[0]!);
    expect(y.split("\n").filter((l) => l.includes("host replication"))).toEqual([
      "    - host replication replicator 10.0.0.1/32 scram-sha-256",
      "    - host replication replicator 10.0.0.2/32 scram-sha-256",
      "    - host replication replicator 10.0.0.3/32 scram-sha-256",
    ]);
    expect(y).not.toContain("archive_command");
    expect(y).toContain("        archive_mode: 'off'\n");
  });

  test("a template that lost a line the render changes is a clear error, not a silent file", () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-lab-tmpl-"));
    try {
      mkdirSync(join(dir, "patroni"));
      const t = readFileSync(join(ROOT, "patroni/patroni.yml.tmpl"), "utf8");
      writeFileSync(join(dir, "patroni/patroni.yml.tmpl"), t.replace(/^ +archive_timeout: \d+\n/m, ""));
      expect(() => renderPatroni(dir, crm(), clusterSecrets(), crm().hosts[0]!)).toThrow(
        new ToolkitError(
          "TEMPLATE_DRIFT",
          "patroni/patroni.yml.tmpl no longer has the archive_mode/archive_command/archive_timeout the multi-host render changes",
        ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("lab hosts keep every file under their own root", () => {
    const s = crm("HOST_ROOT=/var/lib/pgplab/h%i/root\n");
    expect(
      renderHostFiles(ROOT, s, clusterSecrets(), s.hosts[1]!).map((f) => `${f.path} ${f.mode.toString(8)} ${f.owner}`),
    ).toEqual([
      "/var/lib/pgplab/h2/root/etc/pgplatform/crm/patroni.yml 600 postgres",
      "/var/lib/pgplab/h2/root/etc/pgplatform/crm/etcd.yml 644 root",
      "/var/lib/pgplab/h2/root/etc/pgplatform/crm/haproxy.cfg 600 root",
      "/var/lib/pgplab/h2/root/etc/pgplatform/crm/vip-manager.yml 644 root",
      "/var/lib/pgplab/h2/root/etc/sysctl.d/90-pgplatform-crm.conf 644 root",
      "/var/lib/pgplab/h2/root/etc/pgplatform/cluster 644 root",
    ]);
    expect(renderPatroni(ROOT, s, clusterSecrets(), s.hosts[1]!)).toContain(
      "  data_dir: /var/lib/pgplab/h2/root/var/lib/pgplatform/crm/pg/data\n",
    );
  });
});

describe("cluster: command lists (data)", () => {
  const s = crm();
  const h = s.hosts[0]!;
  test("services start by pid file as their own user, with their log", () => {
    expect(startCommand(s, h, "patroni").join(" ")).toBe(
      "sudo -n start-stop-daemon --start --oknodo --background --make-pidfile --pidfile /var/lib/pgplatform/crm/run/patroni.pid --chuid postgres --chdir / --output /var/log/pgplatform/crm/patroni.log --startas /usr/bin/patroni -- /etc/pgplatform/crm/patroni.yml",
    );
    expect(startCommand(s, h, "etcd").join(" ")).toBe(
      "sudo -n start-stop-daemon --start --oknodo --background --make-pidfile --pidfile /var/lib/pgplatform/crm/run/etcd.pid --chuid etcd --chdir / --output /var/log/pgplatform/crm/etcd.log --startas /usr/bin/etcd -- --config-file /etc/pgplatform/crm/etcd.yml",
    );
    expect(startCommand(s, h, "haproxy").slice(-5).join(" ")).toBe(
      "/usr/sbin/haproxy -- -db -f /etc/pgplatform/crm/haproxy.cfg",
    );
    expect(startCommand(s, h, "vip-manager").slice(-4).join(" ")).toBe(
      "/usr/bin/vip-manager -- --config /etc/pgplatform/crm/vip-manager.yml",
    );
  });

  test("stop and reload act on the pid file only", () => {
    expect(stopCommand(s, h, "etcd").join(" ")).toBe(
      "sudo -n start-stop-daemon --stop --oknodo --remove-pidfile --pidfile /var/lib/pgplatform/crm/run/etcd.pid --retry TERM/20/KILL/5",
    );
    expect(reloadPatroniCommand(s, h).join(" ")).toBe(
      "sudo -n start-stop-daemon --stop --signal HUP --oknodo --pidfile /var/lib/pgplatform/crm/run/patroni.pid",
    );
  });

  test("files are written from stdin with owner and mode (no secret in argv)", () => {
    const f = renderHostFiles(ROOT, s, clusterSecrets(), h)[0]!;
    expect(installFileCommand(f).join(" ")).toBe(
      "sudo -n install -m 0600 -o postgres -g postgres /dev/stdin /etc/pgplatform/crm/patroni.yml",
    );
    expect(installFileCommand(f).join(" ")).not.toContain("fixed-");
    expect(checksumCommand(["/a", "/b"]).join(" ")).toBe("sudo -n sha256sum -- /a /b");
  });

  test("data directories belong to their service, 0700", () => {
    const d = directoryCommands(s, h).map((c) => c.join(" "));
    expect(d).toContain("sudo -n install -d -m 0700 -o etcd -g etcd /var/lib/pgplatform/crm/etcd");
    expect(d).toContain("sudo -n install -d -m 0700 -o postgres -g postgres /var/lib/pgplatform/crm/pg");
    expect(hostPaths(s, h).pgData).toBe("/var/lib/pgplatform/crm/pg/data");
  });

  test("pids are read from the pid files and parsed", () => {
    expect(pidsCommand(s, h).slice(0, 4)).toEqual(["sudo", "-n", "sh", "-c"]);
    const out =
      "/var/lib/pgplatform/crm/run/etcd.pid 41\n/var/lib/pgplatform/crm/run/patroni.pid 42\n/var/lib/pgplatform/crm/run/haproxy.pid \n/var/lib/pgplatform/crm/run/vip-manager.pid 44\n";
    expect(parsePids(s, h, out)).toEqual({ etcd: 41, patroni: 42, haproxy: undefined, "vip-manager": 44 });
  });

  test("the VIP holder is read from `ip -o -4 addr`", () => {
    expect(
      holdsVip(
        s,
        "2: ens10    inet 10.0.0.1/24 brd 10.0.0.255 scope global ens10\n2: ens10    inet 10.0.0.50/24 scope global secondary ens10\n",
      ),
    ).toBe(true);
    expect(holdsVip(s, "2: ens10    inet 10.0.0.1/24 brd 10.0.0.255 scope global ens10\n")).toBe(false);
    expect(holdsVip(s, "2: ens10    inet 10.0.0.500/24 scope global ens10\n")).toBe(false);
  });
});
