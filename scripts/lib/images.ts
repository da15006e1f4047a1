/**
 * Local equivalents of the docker runtime's cluster images, built from Debian's
 * packages where no upstream image can be pulled (an offline machine, this
 * project's CI): `make images-local`.
 *
 *   1. a Debian bookworm base: `debootstrap --variant=minbase`, imported with
 *      `podman import` as localhost/pgplatform/debian:bookworm;
 *   2. one image per cluster component from images/<name>/Containerfile,
 *      `podman build --network host` (apt inside reaches Debian's archive only).
 *
 * Each image keeps the facts of the upstream image it stands in for (user and
 * uid, binary and config paths, entrypoint), checked by `checkImage` in
 * the same run, so the compose files run unchanged with IMAGE_* settings
 * pointing at these tags.
 *
 * Podman here runs with runc and the cgroupfs manager, and container ulimits
 * below the machine's hard limits (raising them is refused in this kind of
 * sandbox): our own containers.conf, passed through CONTAINERS_CONF, so
 * nothing system-wide is changed.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT_DIR } from "./config";
import { ToolkitError } from "./errors";
import { isRoot, resolveProgram, run } from "./exec";
import { buildArgs, IMAGE_PG_VERSION } from "./images-pin";

export const BASE_IMAGE = "localhost/pgplatform/debian:bookworm";
export const IMAGES_DIR = join(ROOT_DIR, "images");
export const DEFAULT_MIRROR = "http://deb.debian.org/debian";

export interface LocalImage {
  name: string;
  /** the tag built here */
  ref: string;
  /** the upstream image it stands in for (compose/*.yml) */
  replaces: string;
  /** argv run inside the image (no network) and what its output must be, line by line */
  check: { cmd: string[]; want: string[] };
}

const local = (name: string) => `localhost/pgplatform/${name}:bookworm`;

/** The images, in build order; `want` holds the upstream image's facts we keep. */
export const LOCAL_IMAGES: LocalImage[] = [
  {
    name: "patroni",
    ref: local("patroni"),
    replaces: "pgplatform/patroni (compose/patroni/Dockerfile, FROM postgres:15-bookworm)",
    check: {
      cmd: [
        "sh",
        "-c",
        "id -u; id -g; postgres --version | cut -d' ' -f1-2; patroni --version | cut -d' ' -f1; stat -c '%U %a' /home/postgres/data",
      ],
      want: ["999", "999", "postgres (PostgreSQL)", "patroni", "postgres 700"],
    },
  },
  {
    name: "etcd",
    ref: local("etcd"),
    replaces: "quay.io/coreos/etcd:v3.4",
    check: {
      cmd: ["sh", "-c", "/usr/local/bin/etcd --version | head -1 | cut -d. -f1-2; command -v etcdctl"],
      want: ["etcd Version: 3.4", "/usr/local/bin/etcdctl"],
    },
  },
  {
    name: "haproxy",
    ref: local("haproxy"),
    replaces: "haproxy:2.6",
    check: {
      cmd: [
        "sh",
        "-c",
        "id -un; haproxy -v | head -1 | cut -d' ' -f1-3 | cut -d. -f1-2; test -d /usr/local/etc/haproxy && echo config-dir",
      ],
      want: ["haproxy", "HAProxy version 2.6", "config-dir"],
    },
  },
  {
    name: "nginx",
    ref: local("nginx"),
    replaces: "nginx:bookworm",
    check: {
      cmd: ["sh", "-c", "id -u nginx; nginx -v 2>&1 | cut -d/ -f1; command -v curl"],
      want: ["101", "nginx version: nginx", "/usr/bin/curl"],
    },
  },
  {
    name: "pgbouncer",
    ref: local("pgbouncer"),
    replaces: "pgbouncer (no upstream image: Debian's pgbouncer 1.18)",
    check: {
      cmd: ["sh", "-c", "id -un; pgbouncer --version | head -1 | cut -d' ' -f1"],
      want: ["pgplatform-pool", "PgBouncer"],
    },
  },
];

/** Our containers.conf (runc, cgroupfs, lowered ulimits); returns the env podman reads it from. */
export function podmanEnv(stateDir = join(ROOT_DIR, ".state", "podman")): Record<string, string> {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, "containers.conf");
  writeFileSync(
    file,
    [
      "# Written by make images-local / the docker runtime's tests (scripts/lib/images.ts).",
      "[containers]",
      "# below the machine's hard limits: podman's defaults (1048576) cannot be raised here",
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      "[engine]",
      "# crun refuses this machine's cgroup layout; runc with the cgroupfs manager works",
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  return { CONTAINERS_CONF: file };
}

export const podman = (args: string[], opts: { timeoutMs?: number; nothrow?: boolean; input?: string } = {}) =>
  run(["podman", ...args], {
    env: podmanEnv(),
    timeoutMs: opts.timeoutMs ?? 600_000,
    nothrow: opts.nothrow,
    input: opts.input,
  });

export async function imageExists(ref: string): Promise<boolean> {
  return (await podman(["image", "exists", ref], { nothrow: true, timeoutMs: 60_000 })).code === 0;
}

/** An existing image whose Postgres is not the PG_VERSION pinned now (images-pin.ts). */
async function pinDiffers(ref: string, args: string[]): Promise<boolean> {
  const want = args.find((a) => a.startsWith("PG_VERSION="))?.slice("PG_VERSION=".length);
  if (!want) return false;
  const r = await podman(["run", "--rm", "--network", "none", "--entrypoint", "", ref, ...IMAGE_PG_VERSION], {
    nothrow: true,
    timeoutMs: 120_000,
  });
  return r.stdout.trim() !== want;
}

/** Refuse early, naming what is missing and how to get it. */
export function checkImageTools(): void {
  if (!isRoot())
    throw new ToolkitError(
      "NEEDS_ROOT",
      "building local images needs root (debootstrap, rootful podman)",
      "run make images-local as root (or with sudo)",
    );
  const missing = ["podman", "runc", "debootstrap"].filter((b) => !resolveProgram(b));
  if (missing.length)
    throw new ToolkitError(
      "MISSING_PROGRAM",
      `${missing.join(", ")} not found`,
      `apt-get install -y ${missing.join(" ")}`,
    );
}

export type ImageProgress = (image: string, message: string) => void;

/** The debootstrapped base image, unless it exists (or rebuild). */
export async function buildBase(
  progress: ImageProgress,
  opts: { mirror?: string; rebuild?: boolean } = {},
): Promise<boolean> {
  if (!opts.rebuild && (await imageExists(BASE_IMAGE))) return false;
  const mirror = opts.mirror ?? DEFAULT_MIRROR;
  const work = mkdtempSync(join("/var/tmp", "pgp-base-"));
  try {
    const rootfs = join(work, "rootfs");
    progress("base", `debootstrap --variant=minbase bookworm from ${mirror} (a few minutes)`);
    const d = await run(["debootstrap", "--variant=minbase", "bookworm", rootfs, mirror], {
      nothrow: true,
      timeoutMs: 1_800_000,
    });
    if (d.code !== 0)
      throw new ToolkitError(
        "DEBOOTSTRAP_FAILED",
        `debootstrap of bookworm from ${mirror} failed`,
        "check the mirror is reachable (MIRROR=...) and the disk has 500 MB free",
        d.stderr || d.stdout,
      );
    // Point releases and security updates, as the host's own apt sources have them.
    writeFileSync(
      join(rootfs, "etc/apt/sources.list"),
      [
        `deb ${mirror} bookworm main`,
        `deb ${mirror} bookworm-updates main`,
        `deb ${mirror}-security bookworm-security main`,
        "",
      ].join("\n"),
    );
    rmSync(join(rootfs, "var/cache/apt/archives"), { recursive: true, force: true });
    mkdirSync(join(rootfs, "var/cache/apt/archives/partial"), { recursive: true });
    const tar = join(work, "rootfs.tar");
    progress("base", "podman import");
    await run(["tar", "-C", rootfs, "--numeric-owner", "-cf", tar, "."], { timeoutMs: 600_000 });
    await podman(["import", "--change", 'CMD ["/bin/bash"]', tar, BASE_IMAGE]);
    return true;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Run an image's check (no network) and compare with the facts it must keep; returns the problems. */
export async function checkImage(img: LocalImage): Promise<string[]> {
  const r = await podman(["run", "--rm", "--network", "none", "--entrypoint", "", img.ref, ...img.check.cmd], {
    nothrow: true,
    timeoutMs: 120_000,
  });
  const got = r.stdout.trim().split("\n");
  if (r.code !== 0)
    return [
      `${img.ref}: check failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`,
    ];
  return img.check.want.flatMap((w, i) =>
    got[i] === w ? [] : [`${img.ref}: expected ${JSON.stringify(w)}, got ${JSON.stringify(got[i] ?? "")}`],
  );
}

export interface BuiltImage {
  ref: string;
  replaces: string;
  built: boolean;
  ms: number;
}

/** Build (or keep) every image in `names` (default all), then check each; throws IMAGE_CHECK_FAILED. */
export async function buildLocalImages(
  progress: ImageProgress,
  opts: { names?: string[]; rebuild?: boolean; mirror?: string } = {},
): Promise<BuiltImage[]> {
  checkImageTools();
  const unknown = (opts.names ?? []).filter((n) => !LOCAL_IMAGES.some((i) => i.name === n));
  if (unknown.length)
    throw new ToolkitError(
      "UNKNOWN_IMAGE",
      `no local image named ${unknown.join(", ")}`,
      `choose from ${LOCAL_IMAGES.map((i) => i.name).join(", ")}`,
    );
  const rebuilt = await buildBase(progress, opts);
  const out: BuiltImage[] = [];
  for (const img of LOCAL_IMAGES.filter((i) => !opts.names?.length || opts.names.includes(i.name))) {
    const t0 = Date.now();
    const args = await buildArgs(img.name);
    const need = rebuilt || opts.rebuild || !(await imageExists(img.ref)) || (await pinDiffers(img.ref, args));
    if (need) {
      progress(img.name, `podman build ${img.ref}`);
      const dir = join(IMAGES_DIR, img.name);
      if (!existsSync(join(dir, "Containerfile")))
        throw new ToolkitError("MISSING_FILE", `${dir}/Containerfile not found`, "restore it from git");
      const r = await podman(
        ["build", "--network", "host", ...args, "-t", img.ref, "-f", join(dir, "Containerfile"), dir],
        {
          nothrow: true,
          timeoutMs: 1_800_000,
        },
      );
      if (r.code !== 0)
        throw new ToolkitError(
          "IMAGE_BUILD_FAILED",
          `podman build of ${img.ref} failed`,
          "the build's own output is below; re-run after fixing it",
          r.stderr.split("\n").slice(-15).join("\n"),
        );
    }
    const problems = await checkImage(img);
    if (problems.length)
      throw new ToolkitError(
        "IMAGE_CHECK_FAILED",
        `${img.ref} does not keep the facts of ${img.replaces}`,
        "fix images/<name>/Containerfile and run make images-local REBUILD=1",
        problems.join("\n"),
      );
    out.push({ ref: img.ref, replaces: img.replaces, built: need, ms: Date.now() - t0 });
  }
  return out;
}
