/**
 * Golden files: expected output kept in tests/unit/golden/<set>/, reviewed in
 * diffs. A test run only ever READS them: a missing golden fails, so deleting
 * one can never pass by silently recreating it. They are (re)written only by
 * the explicit update command, `make golden` (bun tests/update-golden.ts),
 * whose diff the author then reviews and commits.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { CLIENT_SECRET_KEYS, type ClientSecrets } from "../scripts/lib/deploy/client-secrets";
import { renderBundleFiles } from "../scripts/lib/deploy/bundle";
import { parseClientSettings } from "../scripts/lib/deploy/settings";
import { clusterGoldens } from "./golden-cluster";
import { apiGoldens } from "./golden-apis";

export const ROOT = resolve(import.meta.dir, "..");
export const GOLDEN_ROOT = join(import.meta.dir, "unit", "golden");
export const UPDATE_COMMAND = "make golden";

export interface GoldenFile {
  name: string;
  content: string;
}

export interface GoldenSet {
  /** folder under tests/unit/golden */
  dir: string;
  files(): GoldenFile[];
}

/** The committed golden text, or a failure that names the file and the update command (never written here). */
export function readGolden(set: string, name: string): string {
  const path = join(GOLDEN_ROOT, set, name);
  if (!existsSync(path)) {
    throw new Error(
      `missing golden file ${relative(ROOT, path)}: a test never writes goldens; review the output and run \`${UPDATE_COMMAND}\`, then commit the file`,
    );
  }
  return readFileSync(path, "utf8");
}

// ---- deploy-client: the bundle, secrets masked ----

export const ACME_ENV = `CLIENT_NAME=acme
HOST=ops@acme-server
DOMAIN=acme.internal
ACCESS=internal
PROFILE=32
REMOTE_DIR=/opt/pgplatform/acme
MEMBER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13
HAPROXY_ADDRESS=127.0.0.1
API_ADDRESS=127.0.0.1
`;
export const acme = (extra = "") => parseClientSettings(ACME_ENV + extra, "clients/acme/client.env");

/** Deterministic stand-ins: unique, long, and recognisable when masked. */
export const fixedSecrets = (): ClientSecrets =>
  Object.fromEntries(
    CLIENT_SECRET_KEYS.map((k, i) => [k, `fixed-${k.toLowerCase()}-${"x".repeat(20)}${i}`]),
  ) as ClientSecrets;

export const maskSecrets = (text: string, secrets: ClientSecrets) => {
  let out = text;
  // longest first, so a secret inside another never leaves a partial value behind
  for (const [k, v] of Object.entries(secrets).sort((a, b) => b[1].length - a[1].length))
    out = out.split(v).join(`<${k}>`);
  return out;
};

export const deployClientGoldens: GoldenSet = {
  dir: "deploy-client",
  files: () => {
    const secrets = fixedSecrets();
    return renderBundleFiles(ROOT, acme(), secrets).map((f) => ({
      name: f.path.replaceAll("/", "__"),
      content: maskSecrets(f.content, secrets),
    }));
  },
};

export const GOLDEN_SETS: GoldenSet[] = [deployClientGoldens, clusterGoldens, apiGoldens];
