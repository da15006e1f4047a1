/**
 * Issue 12: the runtime contract. RUNTIME=auto resolves to native wherever
 * the native runtime can run; every verb opens the stack's runtime and the
 * docker runtime refuses the verbs it does not carry out, with a code, what
 * and a fix; the native runtime answers pids, start/stop, exec and logs.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, ROOT_DIR } from "../../scripts/lib/config";
import { ToolkitError } from "../../scripts/lib/errors";
import {
  dockerEngineAnswers,
  nativeCanRun,
  pickRuntime,
  resolveRuntime,
  VERBS,
  type Verb,
} from "../../scripts/lib/runtime";
import { DockerRuntime, dockerExecCmd } from "../../scripts/lib/runtimes/docker";
import { openRuntime } from "../../scripts/lib/runtimes/index";
import { logSources, memberRunOptions, NativeRuntime } from "../../scripts/lib/runtimes/native";
import { SECRET_KEYS } from "../../scripts/lib/secrets";

const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, `secret-${k.toLowerCase()}-0123456789`]));
const devEnv = readFileSync(join(ROOT_DIR, "envs/dev.env"), "utf8");
const cfg = parseConfig(devEnv, {
  file: "envs/dev.env",
  stack: "dev",
  rootDir: "/srv/pgplatform",
  isRoot: true,
  secrets,
});
const tmp = mkdtempSync(join(tmpdir(), "pgp-runtime-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Run `fn` with environment variables set, restoring them afterwards. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; fix?: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ToolkitError);
  const e = err as ToolkitError;
  return { code: e.code, message: e.message, fix: e.fix };
}

describe("RUNTIME resolution", () => {
  test("auto is native where the native runtime can run, even when a docker engine answers", async () => {
    // A `docker` whose `info` answers like an engine, first on PATH.
    const bin = join(tmp, "bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "docker"), "#!/bin/sh\necho 27.3.1\n");
    chmodSync(join(bin, "docker"), 0o755);
    await withEnv({ PATH: `${bin}:${process.env.PATH}`, RUNTIME: "auto" }, async () => {
      expect(await dockerEngineAnswers()).toBe(true);
      expect(await nativeCanRun()).toBe(true); // this machine has the packages (or root and apt)
      expect(await pickRuntime({ ...cfg, runtime: "auto" })).toBe("native");
    });
  });

  test("the rule, here and on a deploy target: auto is docker only where native cannot run and an engine answers", () => {
    const table = (["auto", "native", "docker"] as const).flatMap((want) =>
      [true, false].flatMap((nativeRuns) =>
        [true, false].map(
          (engine) => `${want} native=${nativeRuns} engine=${engine}: ${resolveRuntime(want, nativeRuns, engine)}`,
        ),
      ),
    );
    expect(table).toEqual([
      "auto native=true engine=true: native",
      "auto native=true engine=false: native",
      "auto native=false engine=true: docker",
      "auto native=false engine=false: native",
      "native native=true engine=true: native",
      "native native=true engine=false: native",
      "native native=false engine=true: native",
      "native native=false engine=false: native",
      "docker native=true engine=true: docker",
      "docker native=true engine=false: docker",
      "docker native=false engine=true: docker",
      "docker native=false engine=false: docker",
    ]);
  });

  test("native and docker, from the environment or the env file, are taken as given", async () => {
    expect(await withEnv({ RUNTIME: "docker" }, () => pickRuntime({ ...cfg, runtime: "native" }))).toBe("docker");
    expect(await withEnv({ RUNTIME: "native" }, () => pickRuntime({ ...cfg, runtime: "docker" }))).toBe("native");
    expect(await withEnv({ RUNTIME: "" }, () => pickRuntime({ ...cfg, runtime: "docker" }))).toBe("docker");
  });
});

describe("every verb goes through the runtime", () => {
  const dockerVerbs: Verb[] = ["dev-up", "dev-down", "clean", "status", "backup", "restore"];

  test("the docker runtime refuses every other verb: code, what, and the fix", async () => {
    for (const verb of VERBS.filter((v) => !dockerVerbs.includes(v))) {
      expect(await refusal(withEnv({ RUNTIME: "docker" }, () => openRuntime(cfg, verb)))).toEqual({
        code: "RUNTIME_UNSUPPORTED",
        message: `make ${verb} is not supported by the docker runtime`,
        fix: "run it with RUNTIME=native (the docker runtime carries out make dev-up, make dev-down, make clean, make status, make backup, make restore)",
      });
    }
    for (const verb of dockerVerbs)
      expect((await withEnv({ RUNTIME: "docker" }, () => openRuntime(cfg, verb))).name).toBe("docker");
  });

  test("the native runtime carries out every verb", async () => {
    for (const verb of VERBS)
      expect((await withEnv({ RUNTIME: "native" }, () => openRuntime(cfg, verb))).name).toBe("native");
  });

  /** Entry scripts that act on no stack's runtime: plans, URLs, a remote target, the toolkit's own tools. */
  const RUNTIME_INDEPENDENT = [
    "access-plan",
    "alert-relay",
    "db-url",
    "deploy-client",
    "images-local",
    "keys",
    "settings-docs",
    "cluster-deploy",
    "cluster-drill",
    "cluster-lab",
    "cluster-lab-down",
    "cluster-plan",
    "cluster-replace",
    "cluster-rolling-restart",
    "cluster-status",
    "cluster-switchover",
    "logs-rotate",
    "pool-exporter",
    "mutation",
    "rotate-jwt",
    "setup",
    "test-summary",
  ];

  test("every entry script opens the runtime for its own verb, or acts on no runtime", () => {
    const entries = [...new Bun.Glob("*.ts").scanSync(join(ROOT_DIR, "scripts"))].map((f) => f.slice(0, -3)).sort();
    const opened = new Map<string, string[]>();
    for (const e of entries) {
      const src = readFileSync(join(ROOT_DIR, "scripts", `${e}.ts`), "utf8");
      const verbs = [...src.matchAll(/openRuntime\(cfg, ([^)]*)\)/g)].flatMap((m) =>
        [...m[1]!.matchAll(/"([a-z-]+)"/g)].map((v) => v[1]!),
      );
      opened.set(e, [...new Set(verbs)].sort());
    }
    const problems = entries.flatMap((e) => {
      const v = opened.get(e)!;
      if (RUNTIME_INDEPENDENT.includes(e))
        return v.length ? [`${e}: listed as runtime-independent but opens ${v.join(", ")}`] : [];
      // scripts/api.ts: the verbs as functions, each opening its own verb's runtime.
      if (e === "api")
        return v.join() === "backup,dev-down,dev-up,restart-member,restore,status,switchover"
          ? []
          : [`api opens ${v.join(", ")}`];
      if (e === "switchover")
        return v.join() === "restart-member,switchover" ? [] : [`switchover opens ${v.join(", ") || "nothing"}`];
      return v.join() === e ? [] : [`${e} opens ${v.join(", ") || "no runtime"}`];
    });
    expect(problems).toEqual([]);
    // and every verb has its entry
    expect(VERBS.filter((v) => ![...opened.values()].some((o) => o.includes(v)))).toEqual([]);
  });

  test("a refused verb exits 1 with the refusal, before touching the stack (make switchover, make test-failover)", () => {
    for (const [script, verb] of [
      ["switchover", "switchover"],
      ["test-failover", "test-failover"],
      ["logs", "logs"],
    ]) {
      const r = spawnSync(process.execPath, [`scripts/${script}.ts`], {
        cwd: ROOT_DIR,
        encoding: "utf8",
        env: { ...process.env, STACK: "dev", RUNTIME: "docker" },
      });
      expect([r.status, r.stderr.trim()]).toEqual([
        1,
        `error [RUNTIME_UNSUPPORTED]: make ${verb} is not supported by the docker runtime\n  fix: run it with RUNTIME=native (the docker runtime carries out make dev-up, make dev-down, make clean, make status, make backup, make restore)`,
      ]);
    }
  });
});

describe("the native runtime", () => {
  const rt = new NativeRuntime(cfg);

  test("exec runs in the member's environment: its OS user, dir, HOME and pgpass", () => {
    const m = cfg.members[1]!;
    expect(memberRunOptions(cfg, "pg2")).toEqual({
      asUser: "postgres",
      cwd: m.dir,
      env: { HOME: m.dir, PGPASSFILE: join(m.dir, "pgpass") },
    });
    expect(() => memberRunOptions(cfg, "pg9")).toThrow("no member named pg9");
  });

  test("pids, start and stop name the component; an unknown one is refused with the known ones", async () => {
    const e = await refusal(rt.pids("pg9"));
    expect([e.code, e.message, e.fix]).toEqual([
      "NO_SUCH_COMPONENT",
      "stack dev has no component pg9",
      "known: etcd1, etcd2, etcd3, pg1, pg2, pg3, haproxy, nginx, pgbouncer",
    ]);
    expect((await refusal(rt.start("nope"))).code).toBe("NO_SUCH_COMPONENT");
    expect((await refusal(rt.stop("nope", 1000))).code).toBe("NO_SUCH_COMPONENT");
  });

  test("status lists every process of the stack (nothing runs under /srv/pgplatform here)", async () => {
    expect(await rt.status()).toEqual(
      ["etcd1", "etcd2", "etcd3", "pg1", "pg2", "pg3", "haproxy", "nginx", "pgbouncer"].map((name) => ({
        name,
        pid: null,
      })),
    );
    expect(await rt.pids("pg1")).toEqual({ main: undefined, postmaster: undefined });
  });

  test("logs: every *.log of the logs dir by name, sorted", () => {
    const dir = join(tmp, "logs");
    mkdirSync(dir, { recursive: true });
    for (const f of ["pg2.log", "etcd1.log", "notes.txt", "pg1.log"]) writeFileSync(join(dir, f), "x\n");
    expect(logSources(dir)).toEqual(["etcd1", "pg1", "pg2"].map((name) => ({ name, path: join(dir, `${name}.log`) })));
    expect(logSources(join(tmp, "none"))).toEqual([]);
  });
});

describe("the docker runtime", () => {
  const rt = new DockerRuntime(cfg);

  test("exec is docker compose exec in the member's container, argv as an array", () => {
    expect(dockerExecCmd(cfg, "pg1", ["psql", "-c", "SELECT 1; DROP TABLE x"])).toEqual([
      "docker",
      "compose",
      "-p",
      cfg.clusterName,
      "-f",
      "/srv/pgplatform/compose/dev.yml",
      // DOCKER_PUBLISH_MEMBERS=auto: the members' ports, except on macOS
      ...(process.platform === "darwin" ? [] : ["-f", "/srv/pgplatform/compose/dev-members.yml"]),
      "--env-file",
      `${cfg.stateDir}/rendered-docker/compose.env`,
      "exec",
      "-T",
      "pg1",
      "psql",
      "-c",
      "SELECT 1; DROP TABLE x",
    ]);
  });

  test("what it cannot do is refused with the compose command that can", async () => {
    const e = await refusal(rt.pids("pg1"));
    expect([e.code, e.message]).toEqual([
      "RUNTIME_UNSUPPORTED",
      "the process ids of pg1 is not supported by the docker runtime",
    ]);
    expect(e.fix).toBe(
      `use \`docker compose -p ${cfg.clusterName} -f /srv/pgplatform/compose/dev.yml${process.platform === "darwin" ? "" : " -f /srv/pgplatform/compose/dev-members.yml"} --env-file ${cfg.stateDir}/rendered-docker/compose.env top pg1\`, or run the stack with RUNTIME=native`,
    );
    expect(() => rt.logs()).toThrow("make logs is not supported by the docker runtime");
  });
});
