/**
 * Faults the first real run of the docker runtime found (issue 21: podman 4.3's API driven by
 * Debian's docker-compose 1.29, cluster part only). Each test states the value the run needed.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { composeFileArgs } from "../../scripts/lib/compose-files";
import { startPlan, upArgs, v1NotReady } from "../../scripts/lib/compose-up";
import { DockerRuntime } from "../../scripts/lib/runtimes/docker";
import { isReady, parseV1Ps, parseV2Ps } from "../../scripts/lib/compose-ps";
import { renderStack } from "../../scripts/lib/stack-files";
import { IMAGE_USERS, renderedOwner } from "../../scripts/lib/compose-owners";
import { cfg, config, devEnv, render, root } from "./compose-render";

describe("DOCKER_SERVICES: the cluster part alone", () => {
  test("all (default): cluster, prepare, then every service", () => {
    expect(config().docker.services).toBe("all");
    expect(startPlan(config()).map((s) => [s.stage, "services" in s ? s.services : null])).toEqual([
      ["cluster", ["etcd1", "etcd2", "etcd3", "pg1", "pg2", "pg3", "haproxy"]],
      ["prepare", null],
      ["clients", []],
    ]);
  });
  test("cluster: the last stage starts pgbouncer only (no Supabase service, Kong or nginx)", () => {
    const plan = startPlan(config("\nDOCKER_SERVICES=cluster\n"));
    expect(plan.at(-1)).toEqual({ stage: "clients", services: ["pgbouncer"] });
  });
  test("cluster+nginx: pgbouncer and nginx without their depends_on (nginx's names Kong), nginx's / on the 502 placeholder", () => {
    const c = config("\nDOCKER_SERVICES=cluster+nginx\n");
    expect(startPlan(c).at(-1)).toEqual({ stage: "clients", services: ["pgbouncer", "nginx"] });
    expect(upArgs({ kind: "v1", argv: ["docker-compose"], version: "1.29.2" }, ["pgbouncer", "nginx"], true)).toEqual([
      "up",
      "-d",
      "--no-deps",
      "pgbouncer",
      "nginx",
    ]);
    const nginx = (cc: typeof c) => renderStack(cc, "docker").find((f) => f.path === "nginx/nginx.conf")!.content;
    // nginx refuses to start on an upstream no DNS resolves ("host not found in upstream \"kong:8000\"")
    expect(/upstream supabase_gateway \{\s*server ([^;]+);/.exec(nginx(c))?.[1]).toBe("127.0.0.1:9");
    expect(/upstream supabase_gateway \{\s*server ([^;]+);/.exec(nginx(config()))?.[1]).toBe("kong:8000");
  });
  test("another value is refused naming the key", () => {
    expect(() => config("\nDOCKER_SERVICES=supabase\n")).toThrow(/DOCKER_SERVICES/);
  });
});

describe("make status: each member's Postgres, Patroni REST and etcd client port on its own address", () => {
  test("published as natively (the toolkit reaches members there), in compose/dev-members.yml", () => {
    const doc = render(readFileSync(`${root}/compose/dev-members.yml`, "utf8"), devEnv);
    expect(Object.keys(doc.services).sort()).toEqual(["etcd1", "etcd2", "etcd3", "pg1", "pg2", "pg3"]);
    for (const m of cfg.members) {
      expect(doc.services[m.name]!.ports).toEqual([`${m.address}:${m.pgPort}:5432`, `${m.address}:${m.restPort}:8008`]);
      expect(doc.services[m.etcdName]!.ports).toEqual([`${m.address}:${m.etcdClientPort}:2379`]);
    }
  });
  test("DOCKER_PUBLISH_MEMBERS: the second -f, and the verbs that need it (auto: not on macOS, where 127.0.0.11 needs an alias)", () => {
    const on = config("\nDOCKER_PUBLISH_MEMBERS=true\n");
    const off = config("\nDOCKER_PUBLISH_MEMBERS=false\n");
    expect(composeFileArgs(on, "/nonexistent-rendered")).toEqual([
      "-f",
      join(on.rootDir, "compose/dev.yml"),
      "-f",
      join(on.rootDir, "compose/dev-members.yml"),
    ]);
    expect(composeFileArgs(off, "/nonexistent-rendered")).toEqual(["-f", join(off.rootDir, "compose/dev.yml")]);
    expect(new DockerRuntime(on).verbs).toEqual(["dev-up", "dev-down", "clean", "status", "backup", "restore"]);
    expect(new DockerRuntime(off).verbs).toEqual(["dev-up", "dev-down", "clean"]);
    expect(config().docker.publishMembers).toBe(process.platform !== "darwin");
  });
  test("the containers' states from compose v1's table and v2's JSON", () => {
    const v1 = [
      "     Name            Command      State                  Ports",
      "--------------------------------------------------------------",
      "x_haproxy_1   haproxy -f ...   Up ()                   127.0.34.1:16012->5000/tcp",
      "x_pg1_1       patroni ...      Up (healthy)            127.0.34.11:5432->5432/tcp",
      "x_pg2_1       patroni ...      Exit 137",
    ].join("\n");
    expect(parseV1Ps(v1).map((c) => [c.name, c.state, isReady(c)])).toEqual([
      ["x_haproxy_1", "Up", true],
      ["x_pg1_1", "Up (healthy)", true],
      ["x_pg2_1", "Exit 137", false],
    ]);
    const v2 = [
      '{"Name":"x-pg1-1","State":"running","Health":"starting"}',
      '{"Name":"x-nginx-1","State":"running","Health":""}',
      '{"Name":"x-pg2-1","State":"exited","Health":"","ExitCode":137}',
    ];
    const want = [
      ["x-pg1-1", "Up (starting)", false],
      ["x-nginx-1", "Up", true],
      ["x-pg2-1", "Exit 137", false],
    ];
    expect(parseV2Ps(v2.join("\n")).map((c) => [c.name, c.state, isReady(c)])).toEqual(want);
    expect(parseV2Ps(`[${v2.join(",")}]`).map((c) => [c.name, c.state, isReady(c)])).toEqual(want);
  });
});

describe("podman's answers, read by compose v1", () => {
  test('"Up ()" (podman: running, no healthcheck) is ready', () => {
    const ps = [
      "     Name                   Command               State                  Ports",
      "-----------------------------------------------------------------------",
      "x_haproxy_1   haproxy -f /usr/local/etc/ ...   Up ()                   127.0.34.1:16012->5000/tcp",
      "x_pg1_1       patroni /etc/patroni/patr ...   Up (health: starting)   5432/tcp",
    ].join("\n");
    expect(v1NotReady(ps)).toEqual(["x_pg1_1: Up (health: starting)"]);
  });
  test("the network's IPAM options equal what podman reports (compose v1 refused every later up)", () => {
    const doc = YAML.parse(readFileSync(`${root}/compose/dev.yml`, "utf8"));
    expect(doc.networks.stack.ipam).toEqual({
      config: [{ subnet: "172.30.0.0/24" }],
      options: { driver: "host-local" },
    });
  });
});

describe("rendered secret files belong to the image user that reads them", () => {
  // root asked of the process itself, not of exec.ts: a broken isRoot() must not turn this test into a skip
  test.skipIf(process.getuid?.() !== 0)(
    "patroni.yml -> postgres (999), haproxy.cfg -> haproxy (99), others root",
    () => {
      expect(renderedOwner("pg2/patroni.yml")).toEqual({ uid: 999, gid: 999 });
      expect(renderedOwner("haproxy/haproxy.cfg")).toEqual({ uid: 99, gid: 99 });
      expect(renderedOwner("etcd/etcd1.yml")).toBeUndefined();
    },
  );
  test("the local images run as those ids", () => {
    const patroni = readFileSync(`${root}/images/patroni/Containerfile`, "utf8");
    const haproxy = readFileSync(`${root}/images/haproxy/Containerfile`, "utf8");
    expect(patroni).toContain(`groupadd -r -g ${IMAGE_USERS.patroni.gid} postgres`);
    expect(patroni).toContain(`useradd -r -g postgres -u ${IMAGE_USERS.patroni.uid}`);
    expect(haproxy).toContain(
      `groupmod -g ${IMAGE_USERS.haproxy.gid} haproxy && usermod -u ${IMAGE_USERS.haproxy.uid} -g ${IMAGE_USERS.haproxy.gid} haproxy`,
    );
  });
  test("images/patroni makes the pgBackRest folder the volume mounts over (postgres-owned)", () => {
    const patroni = readFileSync(`${root}/images/patroni/Containerfile`, "utf8");
    expect(patroni).toContain("/home/pgbackrest/repo");
    expect(patroni).toContain("chown -R postgres:postgres /home/postgres /home/pgbackrest");
  });
});

describe("compose/dev.yml as podman's API reads it", () => {
  const doc = YAML.parse(readFileSync(`${root}/compose/dev.yml`, "utf8"));
  test("no healthcheck argument holds a space (podman 4.3 re-splits CMD tests on spaces)", () => {
    for (const [name, svc] of Object.entries(doc.services as Record<string, { healthcheck?: { test?: string[] } }>)) {
      const t = svc.healthcheck?.test ?? [];
      expect({ name, spaced: t.filter((a) => a.includes(" ")) }).toEqual({ name, spaced: [] });
    }
    expect(doc.services.pg2.healthcheck.test).toEqual([
      "CMD",
      "python3",
      "-c",
      "__import__('urllib.request').request.urlopen('http://pg2:8008/health',timeout=2)",
    ]);
  });
  test("HAProxy gets 4096 descriptors (maxconn 1000 needs ~2000; podman's lowered default is 1024)", () => {
    expect(doc.services.haproxy.ulimits).toEqual({
      nofile: { soft: 4096, hard: 4096 },
      nproc: { soft: 1024, hard: 1024 },
    });
  });
});

describe("pgbouncer where the toolkit reaches it", () => {
  const doc = YAML.parse(readFileSync(`${root}/compose/dev.yml`, "utf8"));
  test("published on HAPROXY_ADDRESS (dev-up's RELOAD connects there), not a fixed 127.0.0.1", () => {
    expect(doc.services.pgbouncer.ports).toEqual(["${HAPROXY_ADDRESS}:${POOL_PORT}:6432"]);
  });
  test("images/pgbouncer runs as the uid the auth_file is rendered for (pool-docker.ts IMAGE_POOL_IDS)", async () => {
    const { IMAGE_POOL_IDS } = await import("../../scripts/lib/pool-docker");
    const file = readFileSync(`${root}/images/pgbouncer/Containerfile`, "utf8");
    expect(file).toContain(`USER ${IMAGE_POOL_IDS.uid}:${IMAGE_POOL_IDS.gid}`);
  });
});
