import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import YAML from "yaml";
import { parseConfig } from "../../scripts/lib/config";
import { placeholders, renderTemplate } from "../../scripts/lib/render";
import { renderStack } from "../../scripts/lib/stack-files";
import { SECRET_KEYS } from "../../scripts/lib/secrets";
import { ToolkitError } from "../../scripts/lib/errors";

const root = `${import.meta.dir}/../..`;
const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}-0123456789`]));
const cfg = parseConfig(readFileSync(`${root}/envs/dev.env`, "utf8"), {
  file: "envs/dev.env",
  stack: "dev",
  rootDir: root,
  isRoot: false,
  secrets,
});

describe("renderTemplate", () => {
  test("fills placeholders and leaves other $ syntax alone", () => {
    expect(renderTemplate("a ${X} $host ${Y}", { X: 1, Y: "b" })).toBe("a 1 $host b");
  });
  test("an unset placeholder is an error naming it", () => {
    expect(() => renderTemplate("${X} ${MISSING}", { X: 1 }, "t.tmpl")).toThrow(ToolkitError);
    expect(() => renderTemplate("${X} ${MISSING}", { X: 1 }, "t.tmpl")).toThrow("t.tmpl: no value for ${MISSING}");
  });
  test("placeholders lists each once", () => {
    expect(placeholders("${A} ${B} ${A}")).toEqual(["A", "B"]);
  });
});

for (const kind of ["native", "docker"] as const) {
  describe(`renderStack (${kind})`, () => {
    const files = renderStack(cfg, kind);
    test("renders patroni x3, etcd x3, haproxy, nginx with no placeholder left", () => {
      expect(files.map((f) => f.path).sort()).toEqual([
        "etcd/etcd1.yml",
        "etcd/etcd2.yml",
        "etcd/etcd3.yml",
        "haproxy/haproxy.cfg",
        "nginx/nginx.conf",
        "pg1/patroni.yml",
        "pg2/patroni.yml",
        "pg3/patroni.yml",
      ]);
      for (const f of files) expect(f.content).not.toMatch(/\$\{[A-Z_]+\}/);
    });
    test("patroni.yml: synchronous + failsafe, pg_rewind, checksums, scram only", () => {
      const p = YAML.parse(files.find((f) => f.path === "pg2/patroni.yml")!.content);
      expect(p.name).toBe("pg2");
      expect(p.bootstrap.dcs).toMatchObject({
        ttl: 10,
        loop_wait: 1,
        retry_timeout: 3,
        synchronous_mode: true,
        failsafe_mode: true,
        primary_start_timeout: 0,
      });
      expect(p.bootstrap.dcs.postgresql.use_pg_rewind).toBe(true);
      expect(p.bootstrap.initdb).toContain("data-checksums");
      expect(p.postgresql.pg_hba.every((l: string) => l.endsWith("scram-sha-256"))).toBe(true);
      expect(p.postgresql.pg_hba.join("\n")).not.toMatch(/trust|peer|md5/);
      expect(p.postgresql.authentication.superuser.password).toBe(secrets.POSTGRES_PASSWORD);
      expect(p.etcd.hosts.split(",")).toHaveLength(3);
      if (kind === "native") {
        expect(p.postgresql.listen).toBe("127.0.0.12:5432");
        expect(p.restapi.listen).toBe("127.0.0.12:8008");
      } else {
        expect(p.postgresql.listen).toBe("pg2:5432");
        expect(p.etcd.hosts).toBe("etcd1:2379,etcd2:2379,etcd3:2379");
      }
    });
    test("haproxy.cfg: /primary for writes, /replica for reads, fast checks, sessions shut on down", () => {
      const h = files.find((f) => f.path === "haproxy/haproxy.cfg")!.content;
      expect(h).toMatch(/listen postgres_rw[\s\S]*uri \/primary/);
      expect(h).toMatch(/listen postgres_ro[\s\S]*uri \/replica/);
      // read-write: a down server (the next leader) is re-checked every 250 ms; read-only keeps the interval
      expect(h.split("listen postgres_ro")[0]).toContain(
        "default-server inter 1000 fastinter 200 downinter 250 fall 2 rise 2 on-marked-down shutdown-sessions",
      );
      expect(h.split("listen postgres_ro")[1]).toContain(
        "default-server inter 1000 fastinter 200 downinter 1000 fall 2 rise 2 on-marked-down shutdown-sessions",
      );
      expect(h.match(/server pg[123] /g)).toHaveLength(6);
      expect(h).toContain(kind === "native" ? "bind 127.0.0.1:6012" : "bind 0.0.0.0:5000");
    });
    test("secret files are marked secret", () => {
      for (const f of files) expect(f.secret).toBe(f.path.endsWith("patroni.yml") || f.path.endsWith("haproxy.cfg"));
    });
  });
}
