/**
 * A container engine for the docker runtime's integration test (issue 21): podman's
 * Docker-compatible API service inside a network namespace the test creates, so podman's
 * bridge and veths (netavark) live there and never in the root namespace. The service is
 * entered with `nsenter --net` (not `ip netns exec`, which remounts /sys and hides the cgroup
 * mounts: runc then fails with "no cgroup mount found in mountinfo"). Published ports exist
 * only inside the namespace, so dev-up and every client run there too (inNs).
 *
 * Podman runs healthchecks through systemd timers, which this machine lacks: a loop calling
 * `podman healthcheck run` on the project's containers every 2 s stands in for them.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isRoot, run, start, which } from "../../scripts/lib/exec";

export const CONTAINERS_CONF = join(import.meta.dir, "../../.state/podman/containers.conf");
const ENV = { CONTAINERS_CONF };

export interface Engine {
  ns: string;
  sock: string;
  /** DOCKER_HOST for compose */
  dockerHost: string;
  project: string;
  stop(): Promise<void>;
}

export const inNs = (ns: string, argv: string[]) => ["ip", "netns", "exec", ns, ...argv];
export const podmanIn = (ns: string, ...args: string[]) => ["nsenter", `--net=/run/netns/${ns}`, "podman", ...args];

/** Why the engine cannot run here (undefined: it can). */
export async function engineMissing(images: string[]): Promise<string | undefined> {
  if (!isRoot()) return "needs root (ip netns, podman as root)";
  for (const bin of ["podman", "docker-compose", "ip", "nsenter"])
    if (!(await which(bin))) return `${bin} is not installed`;
  if (!existsSync(CONTAINERS_CONF)) return `${CONTAINERS_CONF} missing: run \`make images-local\``;
  const r = await run(["ip", "netns", "list"], { nothrow: true });
  if (r.code !== 0) return `\`ip netns\` does not work here: ${r.stderr.trim()}`;
  for (const img of images) {
    const i = await run(["podman", "image", "exists", img], { nothrow: true, env: ENV });
    if (i.code !== 0) return `image ${img} missing: run \`make images-local\``;
  }
  return undefined;
}

/** The project's containers, volumes and network, removed inside the namespace. */
export async function removeProject(ns: string, project: string): Promise<void> {
  const label = `label=com.docker.compose.project=${project}`;
  const ids = await run(podmanIn(ns, "ps", "-aq", "--filter", label), { nothrow: true, env: ENV });
  const list = ids.stdout.split("\n").filter(Boolean);
  if (list.length)
    await run(podmanIn(ns, "rm", "-f", "-t", "2", ...list), { nothrow: true, env: ENV, timeoutMs: 120_000 });
  const vols = await run(podmanIn(ns, "volume", "ls", "-q", "--filter", label), { nothrow: true, env: ENV });
  const vl = vols.stdout.split("\n").filter(Boolean);
  if (vl.length) await run(podmanIn(ns, "volume", "rm", "-f", ...vl), { nothrow: true, env: ENV });
  await run(podmanIn(ns, "network", "rm", "-f", `${project}_stack`), { nothrow: true, env: ENV });
}

export async function engineUp(ns: string, project: string): Promise<Engine> {
  await run(["ip", "netns", "add", ns]);
  await run(inNs(ns, ["ip", "link", "set", "lo", "up"]));
  const dir = `/run/${ns}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sock = join(dir, "podman.sock");
  rmSync(sock, { force: true });
  const service = start(podmanIn(ns, "system", "service", "--time=0", `unix://${sock}`), {
    env: ENV,
    stdio: ["ignore", "ignore", "pipe"],
  });
  service.catch(() => {});
  for (let i = 0; i < 100 && !existsSync(sock); i++) await Bun.sleep(100);
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const r = await run(
        podmanIn(ns, "ps", "--filter", `label=com.docker.compose.project=${project}`, "--format", "{{.Names}}"),
        { nothrow: true, env: ENV },
      );
      await Promise.all(
        r.stdout
          .split("\n")
          .filter(Boolean)
          .map((c) => run(podmanIn(ns, "healthcheck", "run", c), { nothrow: true, env: ENV, timeoutMs: 20_000 })),
      );
      await Bun.sleep(2000);
    }
  })();
  return {
    ns,
    sock,
    dockerHost: `unix://${sock}`,
    project,
    async stop() {
      stopping = true;
      await loop.catch(() => {});
      await removeProject(ns, project);
      if (service.pid) process.kill(service.pid, "SIGTERM");
      await Promise.race([service, Bun.sleep(10_000)]);
      await run(["ip", "netns", "del", ns], { nothrow: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
