/**
 * make images-local, for real: a debootstrapped Debian base imported into
 * rootful podman (runc, cgroupfs, our own containers.conf), and the cluster
 * images built on it from Debian's packages. Each image is then run (no
 * network) and must keep the facts of the upstream image it stands in for
 * (user ids, binary and config paths), so the compose files run unchanged.
 * A second run builds nothing. The first run on a clean machine takes minutes
 * (debootstrap + apt in five builds); podman keeps the images between runs.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { buildLocalImages, checkImage, LOCAL_IMAGES, podman, podmanEnv } from "../../scripts/lib/images";
import { isRoot, resolveProgram } from "../../scripts/lib/exec";

const canRun = isRoot() && ["podman", "runc", "debootstrap"].every((b) => resolveProgram(b));
if (!canRun)
  console.log("images-local: skipped: needs root with podman, runc and debootstrap (make setup --tests installs them)");

describe.skipIf(!canRun)("make images-local", () => {
  test("builds (or keeps) every image and each keeps its upstream image's facts", async () => {
    const lines: string[] = [];
    const built = await buildLocalImages((image, m) => lines.push(`[${image}] ${m}`));
    expect(built.map((b) => b.ref)).toEqual(LOCAL_IMAGES.map((i) => i.ref));
    for (const img of LOCAL_IMAGES) expect(await checkImage(img)).toEqual([]);
  }, 2_400_000);

  test("a second run builds nothing", async () => {
    const built = await buildLocalImages(() => {});
    expect(built.map((b) => [b.ref, b.built])).toEqual(LOCAL_IMAGES.map((i) => [i.ref, false]));
  }, 600_000);

  test("podman runs with our containers.conf: runc, cgroupfs, lowered ulimits inside a container", async () => {
    expect(readFileSync(podmanEnv().CONTAINERS_CONF!, "utf8")).toContain('runtime = "runc"');
    const info = await podman(["info", "--format", "{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}"]);
    expect(info.stdout.trim()).toBe("runc cgroupfs");
    const r = await podman([
      "run",
      "--rm",
      "--network",
      "none",
      "--entrypoint",
      "",
      LOCAL_IMAGES[0]!.ref,
      "bash",
      "-c",
      "ulimit -n; ulimit -u",
    ]);
    expect(r.stdout.trim().split("\n")).toEqual(["1024", "1024"]);
  }, 120_000);

  test("an unknown image name is refused before anything is built", async () => {
    await expect(buildLocalImages(() => {}, { names: ["postgress"] })).rejects.toThrow(
      /no local image named postgress/,
    );
  });
});
