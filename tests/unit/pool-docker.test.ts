/** pgbouncer in the docker runtime: the compose service and the files it mounts. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { parseConfig } from "../../scripts/lib/config";
import { composeEnv } from "../../scripts/lib/docker";
import { scramMatches } from "../../scripts/lib/scram";
import { CONTAINER_POOL_PORT, writeDockerPoolFiles } from "../../scripts/lib/pool-docker";
import { SECRET_KEYS, jwtSecretKey } from "../../scripts/lib/secrets";

const root = `${import.meta.dir}/../..`;
const ENV_DBS = ["orchestrator_ai_dev", "orchestrator_ai_staging", "orchestrator_ai_production"];
const secrets = Object.fromEntries(
  [...SECRET_KEYS, ...ENV_DBS.map(jwtSecretKey)].map((k) => [k, `secret-${k.toLowerCase()}-0123456789abcdef`]),
);
const cfg = parseConfig(readFileSync(`${root}/envs/dev.env`, "utf8"), {
  file: "envs/dev.env",
  stack: "dev",
  rootDir: root,
  isRoot: false,
  secrets,
});
const dir = mkdtempSync(join(tmpdir(), "pgp-pool-docker-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("pgbouncer in compose/dev.yml", () => {
  test("a pinned image built from Debian's 1.18 package, the rendered folder read-only, published on HAPROXY_ADDRESS:POOL_PORT (where the toolkit reaches it, as natively)", async () => {
    const svc = parse(readFileSync(`${root}/compose/dev.yml`, "utf8")).services.pgbouncer;
    expect(svc).toEqual({
      build: { context: "./pgbouncer", dockerfile: "Dockerfile" },
      image: "${IMAGE_PGBOUNCER:-pgplatform/pgbouncer:1.18.0}",
      restart: "unless-stopped",
      networks: ["stack"],
      depends_on: ["haproxy"],
      volumes: ["${RENDERED_DIR}/pgbouncer:/etc/pgbouncer:ro"],
      ports: [`\${HAPROXY_ADDRESS}:\${POOL_PORT}:${CONTAINER_POOL_PORT}`],
    });
    expect(readFileSync(`${root}/compose/pgbouncer/Dockerfile`, "utf8")).toContain("pgbouncer=1.18.0-1+deb12u1");
    expect((await composeEnv(cfg, "/x")).POOL_PORT).toBe("6015");
  });

  test("pgbouncer.ini forwards to haproxy:5000 and listens on the container's port; before the cluster, the auth_file holds the admin only and is kept", async () => {
    expect(await writeDockerPoolFiles(cfg, dir)).toBe(true);
    const ini = readFileSync(join(dir, "pgbouncer", "pgbouncer.ini"), "utf8");
    expect([...(ini.match(/^(listen_addr|listen_port|auth_file|pool_mode) = .*$/gm) ?? [])]).toEqual([
      "listen_addr = 0.0.0.0",
      "listen_port = 6432",
      "auth_file = /etc/pgbouncer/userlist.txt",
      "pool_mode = transaction",
    ]);
    expect([...(ini.match(/^orchestrator_ai_\w+ = .*$/gm) ?? [])]).toEqual(
      cfg.databases.map((d) => `${d} = host=haproxy port=5000 dbname=${d}`),
    );
    const users = readFileSync(join(dir, "pgbouncer", "userlist.txt"), "utf8");
    const [, role, verifier] = users.match(/^"([^"]+)" "([^"]+)"\n$/)!;
    expect(role).toBe("pgbouncer_admin");
    expect(scramMatches(cfg.secrets.POOL_ADMIN_PASSWORD, verifier!)).toBe(true);
    expect(statSync(join(dir, "pgbouncer", "userlist.txt")).mode & 0o777).toBe(0o600);
    expect(await writeDockerPoolFiles(cfg, dir)).toBe(false); // unchanged: nothing rewritten, no new salt
  });
});
