import { describe, expect, test } from "bun:test";
import { parseFlags } from "../../scripts/lib/flags";
import { redact, registerSecret } from "../../scripts/lib/redact";
import { parseStatsCsv } from "../../scripts/lib/haproxy";
import { isDebianLike } from "../../scripts/lib/setup";
import { asUserCmd, showCmd } from "../../scripts/lib/exec";
import { assessCluster } from "../../scripts/lib/patroni";
import { quoteIdent, quoteLiteral } from "../../scripts/lib/pg";
import { parseConfig } from "../../scripts/lib/config";
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { summarise } from "../../scripts/test-summary";

describe("flags", () => {
  test("values, booleans, positionals, kebab-case", () => {
    const f = parseFlags(["app", "--port", "9200", "--yes", "--dry-run=false", "--name=x"], {
      port: "number",
      yes: "boolean",
      dryRun: "boolean",
      name: "string",
    });
    expect(f).toEqual({ _: ["app"], port: 9200, yes: true, dryRun: false, name: "x" });
  });
  test("unknown flags and bad numbers are errors", () => {
    expect(() => parseFlags(["--colour"], {})).toThrow("unknown flag --colour");
    expect(() => parseFlags(["--port", "x"], { port: "number" })).toThrow('--port must be a number (got "x")');
    expect(() => parseFlags(["--port"], { port: "number" })).toThrow("--port needs a value");
  });
});

describe("redact", () => {
  test("masks registered secrets and URL passwords", () => {
    registerSecret("s3cr3t-value-xyz");
    expect(redact("pw=s3cr3t-value-xyz end")).toBe("pw=*** end");
    expect(redact("postgresql://app:hunter2@h:1/db")).toBe("postgresql://app:***@h:1/db");
  });
});

describe("commands as data", () => {
  test("as root the postgres side runs through setpriv, otherwise unchanged", () => {
    const cmd = ["patroni", "/x/patroni.yml"];
    const wrapped = asUserCmd(cmd, "postgres");
    if (process.getuid?.() === 0)
      expect(wrapped.join(" ")).toBe(
        "setpriv --reuid=postgres --regid=postgres --init-groups -- patroni /x/patroni.yml",
      );
    else expect(wrapped).toEqual(cmd);
    expect(asUserCmd(cmd, undefined)).toEqual(cmd);
  });
  test("showCmd quotes what needs quoting", () => {
    expect(showCmd(["nginx", "-g", "daemon off;"])).toBe("nginx -g 'daemon off;'");
  });
  test("identifiers and literals are quoted", () => {
    expect(quoteIdent('we"ird')).toBe('"we""ird"');
    expect(quoteLiteral("it's")).toBe("'it''s'");
  });
});

describe("haproxy stats csv", () => {
  test("keeps only postgres servers", () => {
    const csv =
      "# pxname,svname,qcur,status\nstats,FRONTEND,,OPEN\npostgres_rw,pg1,0,UP\npostgres_rw,pg2,0,DOWN\npostgres_rw,BACKEND,0,UP\n";
    expect(parseStatsCsv(csv)).toEqual([
      { proxy: "postgres_rw", server: "pg1", status: "UP" },
      { proxy: "postgres_rw", server: "pg2", status: "DOWN" },
    ]);
  });
});

describe("cluster assessment", () => {
  const cfg = parseConfig(readFileSync(`${import.meta.dir}/../../envs/dev.env`, "utf8"), {
    file: "envs/dev.env",
    stack: "dev",
    rootDir: "/r",
    isRoot: false,
  });
  const m = (name: string, role: string, state = "running") => ({ name, role, state, host: "h", port: 5432 });
  test("healthy: 3 running, 1 leader, 1 sync standby", () => {
    expect(
      assessCluster(cfg, { members: [m("pg1", "leader"), m("pg2", "sync_standby"), m("pg3", "replica", "streaming")] })
        .ok,
    ).toBe(true);
  });
  test("two leaders, no sync standby, a stopped member, no answer", () => {
    expect(
      assessCluster(cfg, { members: [m("pg1", "leader"), m("pg2", "leader"), m("pg3", "replica")] }).problems,
    ).toContain("2 leaders");
    expect(
      assessCluster(cfg, { members: [m("pg1", "leader"), m("pg2", "replica"), m("pg3", "replica")] }).problems,
    ).toContain("0 sync standbys");
    expect(
      assessCluster(cfg, { members: [m("pg1", "leader"), m("pg2", "sync_standby"), m("pg3", "replica", "stopped")] })
        .problems,
    ).toContain("2/3 members running");
    expect(assessCluster(cfg, undefined).ok).toBe(false);
  });
});

describe("setup", () => {
  test("recognises Debian and Ubuntu (and derivatives)", () => {
    expect(isDebianLike('ID=debian\nVERSION_ID="12"')).toBe(true);
    expect(isDebianLike("ID=ubuntu\nID_LIKE=debian")).toBe(true);
    expect(isDebianLike('ID=linuxmint\nID_LIKE="ubuntu debian"')).toBe(true);
    expect(isDebianLike("ID=fedora")).toBe(false);
    expect(isDebianLike("")).toBe(false);
  });
});

describe("make test summary", () => {
  test("counts, and each failure once with the lines that say why", () => {
    const log = [
      "tests/integration/x.test.ts:",
      "(pass) x > fine [1.00ms]",
      "167 |     expect(r.code).toBe(0);",
      "error: expect(received).toBe(expected)",
      "",
      "Expected: 0",
      "Received: 1",
      "      at <anonymous> (/repo/tests/integration/x.test.ts:167:20)",
      "(fail) x > re-deploy changes nothing [5720.99ms]",
      " 1 pass",
      " 1 fail",
      "tests/unit/y.test.ts:",
      "(pass) y > a [1ms]",
      " 2 pass",
      " 0 fail",
      "(fail) x > re-deploy changes nothing [5720.99ms]",
      "integration: FAILED: heal:tests/integration/y.test.ts tests/integration/x.test.ts",
    ].join("\n");
    const s = summarise(log);
    expect(s.passed).toBe(3);
    expect(s.failed).toBe(1);
    expect(s.steps).toEqual(["heal:tests/integration/y.test.ts", "tests/integration/x.test.ts"]);
    expect(s.failures).toEqual([
      {
        test: "x > re-deploy changes nothing",
        why: [
          "error: expect(received).toBe(expected)",
          "Expected: 0",
          "Received: 1",
          "at <anonymous> (/repo/tests/integration/x.test.ts:167:20)",
        ],
      },
    ]);
  });
});

describe("entry scripts", () => {
  test("runMain sets the toolkit's umask whatever the caller's (077 made member dirs unreachable for postgres)", () => {
    const code = `import { runMain } from "./scripts/lib/errors"; await runMain(async () => void console.log(process.umask().toString(8)));`;
    const r = spawnSync("sh", ["-c", `umask 077; exec "$0" -e "$1"`, process.execPath, code], {
      cwd: join(import.meta.dir, "../.."),
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("22");
  });
});
