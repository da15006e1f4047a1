/**
 * Access per app against the stack's real nginx: a public app's hostname is
 * served on the tunnel's loopback origin and refused everywhere else
 * (curl --resolve, as cloudflared would connect), and nginx -t accepts every
 * rendered file. The stack's env file may have access off: the test turns the
 * tunnel on in its own copy of the config and uses its own in-memory registry,
 * so neither the env file nor the registry is touched.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { applyAccess, cloudflaredPath, servePath, tunnelOriginNginxPath } from "../../scripts/lib/access";
import { loadApps, type AppEntry } from "../../scripts/lib/apps";
import type { Config } from "../../scripts/lib/config";
import { nginxTestCmd } from "../../scripts/lib/onboard/plan";
import { runScript, TEST_STACK, testConfig } from "./stack";

const base = testConfig();
const block = Number(base.api.address.split(".")[2]); // 90 for 127.0.90.x: app ports never collide with another stack's
const cfg: Config = {
  ...base,
  access: {
    ...base.access,
    tunnel: "cloudflare",
    publicDomain: "example.com",
    tunnelId: "it-access-tunnel",
    credentialsFile: "/etc/cloudflared/it-access-tunnel.json",
  },
};
const origin = { address: cfg.access.originAddress, port: cfg.access.originPort };
const app = (name: string, port: number, access: AppEntry["access"]): AppEntry => ({
  name,
  database: `${name}_db`,
  role: name,
  port,
  domain: `${name}.localhost`,
  supabase: false,
  access,
  created: "2026-11-30T00:00:00Z",
});
const publicApp = app("itpub", 20000 + block * 10, "public");
const privateApp = app("itpriv", 20000 + block * 10 + 1, "private");
const noLookup = async () => undefined; // cloudflared and tailscale are not installed here; never run them

let server: ReturnType<typeof Bun.serve> | undefined;

/**
 * One request the way cloudflared makes it: to a fixed address, with the public name as Host.
 * Asynchronous: the app answers from this very process, so the event loop must keep running.
 */
async function curl(host: string, address: string, port: number) {
  const p = Bun.spawn(
    [
      "curl",
      "-sS",
      "--max-time",
      "5",
      "-D",
      "-",
      "-o",
      "/dev/null",
      "--resolve",
      `${host}:${port}:${address}`,
      `http://${host}:${port}/`,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  const status = Number(/^HTTP\/1\.1 (\d{3})/m.exec(stdout)?.[1] ?? 0);
  const appHeader = /^x-pgplatform-app: (\S+)/im.exec(stdout)?.[1];
  const sawHost = /^x-seen-host: (\S+)/im.exec(stdout)?.[1];
  return { status, appHeader, sawHost, stderr };
}

describe("public app on the tunnel origin, refused elsewhere (real nginx)", () => {
  beforeAll(async () => {
    // The app itself: answers with the Host header nginx passed on.
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: publicApp.port,
      fetch: (req) => new Response("ok", { headers: { "x-seen-host": req.headers.get("host") ?? "-" } }),
    });
    const r = await applyAccess(cfg, { which: noLookup }, [publicApp, privateApp]);
    expect(r.nginx).toBe("reloaded");
  });
  afterAll(async () => {
    server?.stop(true);
    // Tunnel off again: the origin vhosts are withdrawn and nginx reloaded.
    await applyAccess({ ...cfg, access: { ...cfg.access, tunnel: "none" } }, { which: noLookup }, []);
  });

  test("the public hostname is served on the loopback origin, with its Host kept", async () => {
    expect(origin.address.startsWith("127.")).toBe(true);
    const r = await curl("itpub.example.com", origin.address, origin.port);
    expect([r.status, r.appHeader, r.sawHost]).toEqual([200, "itpub", "itpub.example.com"]);
  });
  test("the public hostname on the stack's own listener: 421, never the app", async () => {
    const r = await curl("itpub.example.com", cfg.api.address, cfg.api.port);
    expect([r.status, r.appHeader]).toEqual([421, undefined]);
  });
  test("a private app is not reachable through the tunnel origin, by any name", async () => {
    for (const host of ["itpriv.example.com", "itpriv.localhost", "anything.example.com"]) {
      const r = await curl(host, origin.address, origin.port);
      expect([host, r.status, r.appHeader]).toEqual([host, 404, undefined]);
    }
  });
  test("nginx -t accepts every rendered file (nginx.conf and every vhost it includes)", () => {
    const t = spawnSync(nginxTestCmd(cfg)[0]!, nginxTestCmd(cfg).slice(1), { encoding: "utf8" });
    expect([t.status, t.stderr.trim()]).toEqual([0, ""]);
    // every listen in the tunnel vhosts is a loopback address
    const listens = [
      ...readFileSync(tunnelOriginNginxPath(cfg), "utf8").matchAll(/^\s*listen (\S+?)(?: default_server)?;/gm),
    ].map((m) => m[1]!);
    expect(new Set(listens)).toEqual(
      new Set([`${origin.address}:${origin.port}`, `${cfg.api.address}:${cfg.api.port}`]),
    );
    for (const l of listens) expect(l.startsWith("127.")).toBe(true);
  });
  test("removing the app from the registry withdraws its hostname: 404 on the origin", async () => {
    await applyAccess(cfg, { which: noLookup }, [privateApp]);
    expect(readFileSync(tunnelOriginNginxPath(cfg), "utf8")).not.toContain("itpub");
    const r = await curl("itpub.example.com", origin.address, origin.port);
    expect([r.status, r.appHeader]).toEqual([404, undefined]);
    // and on the stack's listener it is no longer special-cased either (nginx's default server answers, not the app)
    expect((await curl("itpub.example.com", cfg.api.address, cfg.api.port)).appHeader).toBeUndefined();
  });
  test("tunnel off: the origin listener is gone", async () => {
    await applyAccess({ ...cfg, access: { ...cfg.access, tunnel: "none" } }, { which: noLookup }, [publicApp]);
    expect(existsSync(tunnelOriginNginxPath(cfg))).toBe(false);
    const r = await curl("itpub.example.com", origin.address, origin.port);
    expect(r.status).toBe(0); // connection refused
    expect(r.stderr).toContain("Failed to connect");
  });
});

describe("new-app --access public, then --remove: the hostname enters and leaves both configs (real cluster)", () => {
  // new-app reads the stack's env file, so the tunnel and tailnet are switched on there for this block
  // only; the file is restored afterwards (also on an early exit).
  const envFile = join(base.rootDir, "envs", `${TEST_STACK}.env`);
  const original = readFileSync(envFile, "utf8");
  const restore = () => writeFileSync(envFile, original);
  const name = "it_acc_pub";
  const port = 20000 + block * 10 + 2;
  beforeAll(() => {
    process.on("exit", restore);
    writeFileSync(
      envFile,
      original +
        "\n# it-access (temporary)\nPUBLIC_DOMAIN=example.com\nTUNNEL=cloudflare\nTAILNET=tailscale\nCLOUDFLARE_TUNNEL_ID=it-access-tunnel\n",
    );
  });
  afterAll(async () => {
    runScript("new-app.ts", [name, "--remove", "--yes"]);
    // access off again for the rest of the suite: the tunnel-origin vhosts and configs are withdrawn
    runScript("access-apply.ts");
    restore();
    process.off("exit", restore);
    runScript("access-apply.ts");
  });

  test("created public: in the registry, cloudflared's ingress, the serve config, and served on the tunnel origin", async () => {
    const r = runScript("new-app.ts", [name, "--yes", "--json", "--access", "public", "--port", String(port)]);
    expect(r.code).toBe(0);
    expect(
      JSON.parse(r.stdout).access.tools.map((t: { tool: string; installed: boolean }) => [t.tool, t.installed]),
    ).toEqual([
      ["cloudflared", false],
      ["tailscale", false],
    ]);
    expect(loadApps(cfg).find((a) => a.name === name)?.access).toBe("public");
    const ingress = (
      YAML.parse(readFileSync(cloudflaredPath(cfg), "utf8")) as { ingress: { hostname?: string; service: string }[] }
    ).ingress;
    expect(ingress.map((x) => x.hostname ?? x.service)).toEqual(["it-acc-pub.example.com", "http_status:404"]);
    expect(JSON.parse(readFileSync(servePath(cfg), "utf8")).TCP).toEqual({ [String(port)]: { HTTP: true } });
    const o = await curl("it-acc-pub.example.com", origin.address, origin.port);
    expect([o.status, o.appHeader]).toEqual([502, name]); // routed to the app, which is not running
  });
  test("an app holding production data is refused as public before any change", () => {
    const r = runScript("new-app.ts", ["it_acc_production", "--yes", "--access", "public"]);
    expect([r.code, r.stderr.split("\n")[0]]).toEqual([
      1,
      "error [PUBLIC_PRODUCTION]: it_acc_production holds production data (database it_acc_production_db) and would be public at https://it-acc-production.example.com",
    ]);
    expect(loadApps(cfg).map((a) => a.name)).toEqual([name]);
  });
  test("--remove withdraws the hostname from both configs and the origin", async () => {
    const r = runScript("new-app.ts", [name, "--remove", "--yes"]);
    expect(r.code).toBe(0);
    expect(readFileSync(cloudflaredPath(cfg), "utf8")).not.toContain("it-acc-pub");
    expect(JSON.parse(readFileSync(servePath(cfg), "utf8"))).toEqual({ TCP: {}, Web: {} });
    const o = await curl("it-acc-pub.example.com", origin.address, origin.port);
    expect([o.status, o.appHeader]).toEqual([404, undefined]);
  });
});
