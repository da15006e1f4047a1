import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BASE_IMAGE, IMAGES_DIR, LOCAL_IMAGES } from "../../scripts/lib/images";

describe("local images (make images-local)", () => {
  test("every image has a Containerfile built on the debootstrapped base, and every Containerfile is listed", () => {
    for (const img of LOCAL_IMAGES) {
      const file = join(IMAGES_DIR, img.name, "Containerfile");
      expect(existsSync(file)).toBe(true);
      expect(readFileSync(file, "utf8")).toMatch(new RegExp(`^FROM ${BASE_IMAGE.replace(/[.]/g, "\\.")}$`, "m"));
      expect(img.ref).toBe(`localhost/pgplatform/${img.name}:bookworm`);
      expect(img.check.want.length).toBeGreaterThan(0);
    }
    const dirs = new Bun.Glob("*/Containerfile").scanSync(IMAGES_DIR);
    expect([...dirs].map((f) => f.split("/")[0]).sort()).toEqual(LOCAL_IMAGES.map((i) => i.name).sort());
  });

  test("the Postgres side keeps the official image's uid/gid 999 (named volumes and the compose runtime rely on it)", () => {
    expect(readFileSync(join(IMAGES_DIR, "patroni", "Containerfile"), "utf8")).toContain("groupadd -r -g 999 postgres");
    // pgbouncer runs as compose/pgbouncer's pgplatform-pool (990): pool-docker.ts renders its auth_file for that uid
    expect(readFileSync(join(IMAGES_DIR, "pgbouncer", "Containerfile"), "utf8")).toContain("USER 990:990");
    expect(LOCAL_IMAGES.find((i) => i.name === "patroni")!.check.want.slice(0, 2)).toEqual(["999", "999"]);
  });
});
