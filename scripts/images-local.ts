#!/usr/bin/env bun
/** make images-local: the docker runtime's cluster images built from Debian's packages (podman). */
import { runMain } from "./lib/errors";
import { parseFlags } from "./lib/flags";
import { buildLocalImages, LOCAL_IMAGES } from "./lib/images";

const USAGE = `usage: make images-local [ONLY=patroni,etcd] [REBUILD=1] [MIRROR=http://deb.debian.org/debian]
   (bun scripts/images-local.ts [--only a,b] [--rebuild] [--mirror URL] [--json])
Builds ${LOCAL_IMAGES.map((i) => i.ref).join(", ")}
on a debootstrapped Debian bookworm base, then checks each keeps its upstream image's facts
(user ids, paths, entrypoint). Needs root, podman, runc and debootstrap (apt-get install -y podman runc debootstrap).
Point a stack at them with the IMAGE_* settings (see README, "Docker runtime").`;

await runMain(async () => {
  const flags = parseFlags(
    process.argv.slice(2),
    { only: "string", rebuild: "boolean", mirror: "string", json: "boolean" },
    USAGE,
  );
  if (flags.help) return void console.log(USAGE);
  const names = (flags.only ?? process.env.ONLY ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const rebuild = Boolean(flags.rebuild) || ["1", "true", "yes"].includes(process.env.REBUILD ?? "");
  const mirror = flags.mirror ?? (process.env.MIRROR || undefined);
  const t0 = Date.now();
  const built = await buildLocalImages((image, message) => console.error(`[${image}] ${message}`), {
    names,
    rebuild,
    mirror,
  });
  if (flags.json) return void console.log(JSON.stringify({ images: built, ms: Date.now() - t0 }, null, 2));
  for (const b of built)
    console.log(
      `${b.built ? "built" : "kept "}  ${b.ref.padEnd(40)} ${(b.ms / 1000).toFixed(1).padStart(6)} s  (for ${b.replaces})`,
    );
  console.log(`images ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});
