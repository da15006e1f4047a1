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
import { existsSync, readFileSync } from "node:fs";
import { applyAccess, tunnelOriginNginxPath } from "../../scripts/lib/access";
import type { AppEntry } from "../../scripts/lib/apps";
import type { Config } from "../../scripts/lib/config";
import { nginxTestCmd } from "../../scripts/lib/onboard/plan";
import { testConfig } from "./stack";

const base = testConfig();
const block = Number(base.api.address.split(".")[2]); // 90 for 127.0.90.x: app ports never collide with another stack's
const cfg: Config = { ...base, access: { ...base.access, tunnel: "cloudflare", publicDomain: "example.com", tunnelId: "it-access-tunnel", credentialsFile: "/etc/cloudflared/it-access-tunnel.json" } };
const origin = { address: cfg.access.originAddress, port: cfg.access.originPort };
const app = (name: string, port: number, access: AppEntry["access"]): AppEntry => ({ name, database: `${name}_db`, role: name, port, domain: `${name}.localhost`, supabase: false, access, created: "2026-11-30T00:00:00Z" });
const publicApp = app("itpub", 20000 + block * 10, "public");
const privateApp = app("itpriv", 20000 + block * 10 + 1, "private");
const noLookup = async () => undefined; // cloudflared and tailscale are not installed here; never run them

let server: ReturnType<typeof Bun.serve> | undefined;

/**
 * One request the way cloudflared makes it: to a fixed address, with the public name as Host.
 * Asynchronous: the app answers from this very process, so the event loop must keep running.
 */
async function curl(host: string, address: string, port: number) {
  const p = Bun.spawn(["curl", "-sS", "--max-time", "5", "-D", "-", "-o", "/dev/null", "--resolve", `${host}:${port}:${address}`, `http://${host}:${port}/`], { stdout: "pipe", stderr: "pipe" });
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
    server = Bun.serve({ hostname: "127.0.0.1", port: publicApp.port, fetch: (req) => new Response("ok", { headers: { "x-seen-host": req.headers.get("host") ?? "-" } }) });
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
    const listens = [...readFileSync(tunnelOriginNginxPath(cfg), "utf8").matchAll(/^\s*listen (\S+?)(?: default_server)?;/gm)].map((m) => m[1]!);
    expect(new Set(listens)).toEqual(new Set([`${origin.address}:${origin.port}`, `${cfg.api.address}:${cfg.api.port}`]));
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
