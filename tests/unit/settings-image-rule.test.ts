/**
 * The image-reference rule of the IMAGE_* settings (scripts/lib/settings/rules.ts), part by part
 * (found by make mutation): [registry[:port]/]name[/path...][:tag][@sha256:<64 hex>], lower-case,
 * or empty for the compose file's pin; anything else is refused with the rule's message.
 */
import { describe, expect, test } from "bun:test";
import { IMAGE_RE, image } from "../../scripts/lib/settings/rules";

const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;

describe("image references", () => {
  test.each([
    ["empty: the compose file's pin", ""],
    ["a bare name and tag", "kong:2.8.1"],
    ["no tag", "supabase/gotrue"],
    ["a dash inside the first name part", "pgp-patroni:15"],
    ["a registry with a port", "localhost:5000/pgp-patroni:15"],
    ["registry, namespace and a dashed name", "ghcr.io/supabase/postgres-meta:v0.84.2"],
    ["registry, namespace and a plain name", "ghcr.io/supabase/gotrue:v2.164.0"],
    ["a punycode registry (its -- is no name part)", "xn--bcher-kva.example/app:1"],
    ["tag and digest", `supabase/gotrue:v2.164.0@${DIGEST}`],
  ])("accepts %s", (_what, ref) => {
    expect(IMAGE_RE.test(ref)).toBe(true);
    expect(image().parse(ref)).toBe(ref);
  });

  test.each([
    ["spaces and capitals", "Kong Latest"],
    ["a valid name followed by garbage", "kong latest"],
    ["capitals before a valid part", "UPPER/name"],
    ["a digest that is not 64 hex digits", "supabase/gotrue:v2@sha256:abc"],
    ["a tag starting with a dot", "kong:.1"],
  ])("refuses %s, with the rule's message", (_what, ref) => {
    expect(IMAGE_RE.test(ref)).toBe(false);
    const r = image().safeParse(ref);
    expect(r.success ? "accepted" : r.error.issues.map((i) => i.message)).toEqual([
      "must be an image reference like registry/name:tag",
    ]);
  });
});
