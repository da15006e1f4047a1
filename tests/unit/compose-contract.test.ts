/**
 * The compose files against what upstream's images require (tests/unit/compose-facts.ts, each fact
 * cited there): rendered the way the runtime renders them (dev: composeEnv + the docker templates;
 * clients: deploy-client's env files), then checked per service. Issue 13's would-not-start faults
 * each have an assertion here, named after the item.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import YAML from "yaml";
import { validateCompose } from "../../scripts/lib/compose-schema";
import { run } from "../../scripts/lib/exec";
import * as F from "./compose-facts";
import { apiSlug, apiVar } from "../../scripts/lib/compose-apis";
import {
  apis,
  cfg,
  clients,
  dev,
  devEnv,
  devYml,
  envOf,
  has,
  kong,
  kongYml,
  mainPath,
  rendered,
  root,
  service,
} from "./compose-render";

describe("the rendered compose files are valid Compose (compose-spec schema)", () => {
  test("dev.yml with dev-up's env, client files with each environment's env file", () => {
    expect(validateCompose(devYml, devEnv)).toEqual([]);
    for (const c of clients)
      expect({ env: c.env, problems: validateCompose(c.text, c.vars) }).toEqual({ env: c.env, problems: [] });
  });
});

describe("required variables per service (0 missing)", () => {
  for (const [svc, fact] of Object.entries(F.REQUIRED_ENV)) {
    test(`dev: ${svc} (${fact.source})`, () => {
      const e = envOf(service(svc));
      expect(fact.vars.filter((alts) => !has(e, alts)).map((a) => a.join("|"))).toEqual([]);
    });
  }
  for (const svc of ["auth", "rest", "meta", "studio"]) {
    test(`clients: ${svc} (${F.REQUIRED_ENV[svc]!.source})`, () => {
      for (const c of clients) {
        const e = envOf(c.doc.services[svc]!);
        expect({
          env: c.env,
          missing: F.REQUIRED_ENV[svc]!.vars.filter((alts) => !has(e, alts)).map((a) => a.join("|")),
        }).toEqual({ env: c.env, missing: [] });
      }
    });
  }
});

describe("healthchecks probe each service's own health endpoint (exec form, no shell)", () => {
  for (const [svc, url] of Object.entries(F.HEALTH_URLS)) {
    test(svc, () => {
      const t = service(svc).healthcheck!.test as string[];
      expect(t[0]).toBe("CMD");
      expect(t.join(" ")).toContain(url);
    });
  }
});

describe("item 1: Patroni containers become healthy", () => {
  const restListen = (YAML.parse(rendered("pg1/patroni.yml")) as { restapi: { listen: string } }).restapi.listen;
  const hc = dev.services.pg1!.healthcheck!.test as string[];
  test("the healthcheck runs without a shell's /dev/tcp (dash has none) and probes the address Patroni listens on", async () => {
    expect(restListen).toBe("pg1:8008");
    const text = hc.join(" ");
    expect(text).not.toContain("/dev/tcp");
    // exec form, or a shell snippet that dash parses
    if (hc[0] === "CMD-SHELL" || (hc[0] === "CMD" && /^(sh|\/bin\/sh)$/.test(hc[1]!))) {
      const snippet = hc[hc.length - 1]!;
      expect((await run(["dash", "-n", "-c", snippet], { nothrow: true })).code).toBe(0);
    }
    // the probed URL is Patroni's own listen address (the container's hostname is the member name)
    expect(dev.services.pg1!.hostname).toBe("pg1");
    const probed = /https?:\/\/([^/'"]+)/
      .exec(text)?.[1]
      ?.replace("'+socket.gethostname()+'", dev.services.pg1!.hostname!);
    expect(probed).toBe(restListen);
  });
  test("the healthcheck command (run here with python3) passes only while Patroni's /health answers 200", async () => {
    let status = 503;
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("{}", { status }) });
    try {
      const local = hc.slice(1).map((a) => a.replace(`http://${restListen}/`, `http://127.0.0.1:${server.port}/`));
      expect(local.join(" ")).toContain(`127.0.0.1:${server.port}/health`);
      const down = (await run(local, { nothrow: true })).code;
      status = 200;
      const up = (await run(local, { nothrow: true })).code;
      expect({ down, up }).toEqual({ down: 1, up: 0 });
    } finally {
      server.stop(true);
    }
  });
  test("each member's data volume is mounted where the image created it, owned by postgres", () => {
    const dockerfile = readFileSync(`${root}/compose/patroni/Dockerfile`, "utf8");
    const made = [...dockerfile.matchAll(/mkdir -p ([^&\\]+)/g)].flatMap((m) => m[1]!.trim().split(/\s+/));
    const owned = [...dockerfile.matchAll(/chown -R postgres:postgres ([^&\\]+)/g)].flatMap((m) =>
      m[1]!.trim().split(/\s+/),
    );
    const under = (paths: string[], t: string) =>
      paths.some((p) => p === t || p.startsWith(t + "/") || t.startsWith(p + "/"));
    const data = (YAML.parse(rendered("pg1/patroni.yml")) as { postgresql: { data_dir: string } }).postgresql.data_dir;
    for (const m of ["pg1", "pg2", "pg3"]) {
      const named = (dev.services[m]!.volumes ?? [])
        .filter((v) => !v.startsWith("/") && !v.startsWith("."))
        .map((v) => v.split(":")[1]!);
      expect(named).toContain(data);
      for (const target of named)
        expect({
          target,
          made: made.some((p) => p === target || p.startsWith(target + "/")),
          owned: owned.some((p) => target === p || target.startsWith(p + "/")),
        }).toEqual({ target, made: true, owned: true });
    }
    expect(made).toContain(data);
    expect(under(owned, data)).toBe(true);
    expect(F.IMAGE_FS.patroni!.user).toBe("postgres");
    expect(dockerfile).toContain("USER postgres");
  });
});

describe("every named volume is writable by the user its image runs as (IMAGE_FS)", () => {
  test("root images (etcd, storage) or a directory our Dockerfile creates for postgres (Patroni)", () => {
    const kind = (svc: string) =>
      svc
        .replace(/\d+$/, "")
        .replace(/^pg$/, "patroni")
        .replace(/^storage-.*/, "storage");
    const withVolumes = Object.entries(dev.services).filter(([, s]) =>
      (s.volumes ?? []).some((v) => !v.startsWith("/") && !v.startsWith(".")),
    );
    expect(withVolumes.map(([n]) => n).sort()).toEqual(
      ["etcd1", "etcd2", "etcd3", "pg1", "pg2", "pg3", ...apis.map((d) => `storage-${d.slug}`)].sort(),
    );
    for (const [name] of withVolumes)
      expect({ name, user: F.IMAGE_FS[kind(name)]?.user }).toEqual({
        name,
        user: kind(name) === "patroni" ? "postgres" : "root",
      });
  });
});

describe("item 2: nginx's temp directories exist", () => {
  const conf = rendered("nginx/nginx.conf");
  const tmp = [...conf.matchAll(/_temp_path (\S+);/g)].map((m) => m[1]!);
  test("nginx creates only the last level of a temp path (the real nginx -t, fact NGINX_CREATES_ONE_LEVEL)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgp-compose-nginx-"));
    try {
      const c = join(dir, "nginx.conf");
      writeFileSync(
        c,
        `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp { client_body_temp_path ${dir}/tmp/client; }\n`,
      );
      const r = await run(["nginx", "-t", "-p", dir, "-c", c], { nothrow: true });
      expect({
        code: r.code,
        why: /mkdir\(\) "[^"]+\/tmp\/client" failed \(2: No such file or directory\)/.test(r.stderr),
      }).toEqual({ code: 1, why: F.NGINX_CREATES_ONE_LEVEL });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("the parent of every temp path is a mount (tmpfs) of the nginx service", () => {
    expect(tmp.length).toBe(5);
    const mounts = (dev.services.nginx!.tmpfs ?? []).map((t) => t.split(":")[0]!);
    for (const p of tmp)
      expect({ path: p, parentMounted: mounts.includes(dirname(p)) }).toEqual({ path: p, parentMounted: true });
  });
});

describe("item 3: Kong loads its rendered kong.yml (compose-kong.ts)", () => {
  test("the entrypoint is upstream's, and after its `eval echo` _format_version is still a string Kong 2.8 accepts", async () => {
    expect(dev.services.kong!.entrypoint).toBe(F.KONG_ENTRYPOINT.replace("$$", "$"));
    const e = envOf(dev.services.kong!);
    const dir = mkdtempSync(join(tmpdir(), "pgp-compose-kong-"));
    writeFileSync(join(dir, "kong.yml"), kongYml);
    const out = await run(["bash", "-c", 'eval "echo \\"$(cat "$KONG_FILE")\\""'], {
      env: { ...e, KONG_FILE: join(dir, "kong.yml"), PATH: process.env.PATH! },
    }).finally(() => rmSync(dir, { recursive: true, force: true }));
    const doc = YAML.parse(out.stdout) as {
      _format_version: unknown;
      consumers: { keyauth_credentials?: { key: string }[]; basicauth_credentials?: unknown }[];
    };
    expect(doc._format_version).toBe("2.1");
    expect(F.KONG_FORMAT_VERSIONS).toContain(doc._format_version as string);
    // every database's own keys, the main database's being the ones Studio and meta get
    expect(doc.consumers.flatMap((c) => c.keyauth_credentials ?? []).map((k) => k.key)).toEqual(
      apis.flatMap((d) => [devEnv[apiVar("ANON_KEY", d.database)]!, devEnv[apiVar("SERVICE_KEY", d.database)]!]),
    );
    expect(
      doc.consumers
        .flatMap((c) => c.keyauth_credentials ?? [])
        .map((k) => k.key)
        .slice(0, 2),
    ).toEqual([devEnv.SUPABASE_ANON_KEY!, devEnv.SUPABASE_SERVICE_KEY!]);
  });
  test("every upstream route exists (the API's under the main database's prefix) and names the service's host and port", () => {
    for (const [path0, svc] of Object.entries(F.KONG_ROUTES)) {
      const path = mainPath(path0);
      const s = kong.services.find((x) => x.routes.some((r) => r.paths.includes(path)));
      expect({ path, url: s && new URL(s.url).port }).toEqual({ path, url: String(F.SERVICE_PORTS[svc]!.port) });
      const host = new URL(s!.url).hostname;
      const aliases = Object.values((service(svc).networks ?? {}) as Record<string, { aliases?: string[] }>).flatMap(
        (n) => n?.aliases ?? [],
      );
      expect({
        path,
        reaches: host === svc || host === `${svc}-${apiSlug(cfg.databases[0]!)}` || aliases.includes(host),
      }).toEqual({
        path,
        reaches: true,
      });
    }
  });
  test("every plugin kong.yml uses is enabled in KONG_PLUGINS", () => {
    const enabled = envOf(dev.services.kong!).KONG_PLUGINS!.split(",");
    for (const p of new Set(kong.services.flatMap((s) => (s.plugins ?? []).map((x) => x.name))))
      expect({ p, enabled: enabled.includes(p) }).toEqual({ p, enabled: true });
  });
});

describe("item 4: start-up order (cluster -> databases and roles -> clients), compose v1 and v2", async () => {
  const { startPlan, upArgs, parseComposeVersion, v1NotReady } = await import("../../scripts/lib/compose-up");
  test("no database client starts before the databases and roles are prepared", () => {
    const plan = startPlan(cfg);
    expect(plan.map((s) => s.stage)).toEqual(["cluster", "prepare", "clients"]);
    const first = plan[0]!.stage === "cluster" ? plan[0]!.services : [];
    expect(first).toEqual(["etcd1", "etcd2", "etcd3", "pg1", "pg2", "pg3", "haproxy"]);
    for (const c of F.DATABASE_CLIENTS) expect(first).not.toContain(c);
    // nothing in the first stage depends on a later service (compose would start it early)
    for (const s of first)
      for (const d of Object.keys(dev.services[s]!.depends_on ?? {}))
        expect(first).toContain(
          Array.isArray(dev.services[s]!.depends_on) ? (dev.services[s]!.depends_on as string[])[Number(d)]! : d,
        );
  });
  test("dev-up's docker runtime starts through that plan, not one `up --wait` of every service", () => {
    const docker = readFileSync(`${root}/scripts/lib/docker.ts`, "utf8");
    expect(docker).toContain("composeUpInOrder(");
    expect(docker).not.toMatch(/"up", "-d", "--wait"/);
  });
  test("v1 gets no --wait; its ps table decides readiness", () => {
    const v1 = parseComposeVersion("v1", "1.29.2\n")!;
    const v2 = parseComposeVersion("v2", "v2.24.5\n")!;
    expect([v1.argv, v2.argv]).toEqual([["docker-compose"], ["docker", "compose"]]);
    expect(upArgs(v1, ["pg1"])).toEqual(["up", "-d", "pg1"]);
    expect(upArgs(v2, ["pg1"])).toEqual(["up", "-d", "--wait", "pg1"]);
    const ps = [
      "     Name                   Command               State                  Ports",
      "-----------------------------------------------------------------------",
      "dev_etcd1_1   etcd --config-file /etc/e ...   Up (healthy)     2379/tcp",
      "dev_pg1_1     patroni /etc/patroni/patr ...   Up (health: starting)   5432/tcp",
      "dev_haproxy_1 docker-entrypoint.sh hapr ...   Up      0.0.0.0:6012->5000/tcp",
      "dev_pg2_1     patroni /etc/patroni/patr ...   Exit 1",
    ].join("\n");
    expect(v1NotReady(ps)).toEqual(["dev_pg1_1: Up (health: starting)", "dev_pg2_1: Exit 1"]);
  });
  test("depends_on uses only conditions compose v1 (1.29) knows", () => {
    for (const doc of [dev, ...clients.map((c) => c.doc)]) {
      for (const [name, s] of Object.entries(doc.services)) {
        if (!s.depends_on || Array.isArray(s.depends_on)) continue;
        for (const d of Object.values(s.depends_on))
          expect({ name, ok: F.COMPOSE_V1_CONDITIONS.includes(d.condition) }).toEqual({ name, ok: true });
      }
    }
  });
});
