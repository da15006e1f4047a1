/**
 * A production cluster on three hosts: clusters/<name>/cluster.env holds the
 * committed, non-secret settings, clusters/<name>/.secrets.env the generated
 * passwords (0600, gitignored), clusters/<name>/known_hosts the pinned host
 * keys. The keys, their rules and the parsing are the shared settings
 * engine's table scripts/lib/settings/cluster.ts (errors name file, key,
 * value and the fix); this module adds where a cluster's files live.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT_DIR } from "../config";
import { ToolkitError } from "../errors";
import { CLUSTER_SETTINGS, parseClusterSettings, type ClusterKey, type ClusterSettings } from "../settings/cluster";

export {
  CLUSTER_SETTINGS,
  parseClusterSettings,
  TIMING_PRESETS,
  type ClusterHost,
  type ClusterKey,
  type ClusterSettings,
  type TimingName,
} from "../settings/cluster";

export { CLUSTERS_NAME_RE as CLUSTER_NAME_RE } from "../settings/rules";
import { CLUSTERS_NAME_RE as CLUSTER_NAME_RE } from "../settings/rules";

export const clusterDir = (name: string, root = ROOT_DIR) => join(root, "clusters", name);
export const clusterEnvFile = (name: string, root = ROOT_DIR) => join(clusterDir(name, root), "cluster.env");
export const clusterSecretsFile = (name: string, root = ROOT_DIR) => join(clusterDir(name, root), ".secrets.env");
export const clusterKnownHosts = (s: Pick<ClusterSettings, "name" | "ssh">, root = ROOT_DIR) =>
  s.ssh.knownHosts || join(clusterDir(s.name, root), "known_hosts");

/** Load clusters/<name>/cluster.env; CLUSTER_NAME must match the folder. */
export function loadClusterSettings(
  name: string,
  overrides: Record<string, string | undefined> = {},
  root = ROOT_DIR,
): ClusterSettings {
  if (!CLUSTER_NAME_RE.test(name))
    throw new ToolkitError(
      "CLUSTER_NAME",
      `CLUSTER=${JSON.stringify(name)}: must be 2-21 lowercase letters/digits, starting with a letter`,
      "e.g. make cluster-plan CLUSTER=crm",
    );
  const file = clusterEnvFile(name, root);
  const rel = `clusters/${name}/cluster.env`;
  if (!existsSync(file) && !overrides.HOSTS) {
    throw new ToolkitError(
      "NO_CLUSTER",
      `${rel} does not exist`,
      `create it: make cluster-plan CLUSTER=${name} HOSTS=ops@10.0.0.1,ops@10.0.0.2,ops@10.0.0.3 VIP=10.0.0.50 (writes the file), or copy clusters/example/cluster.env`,
    );
  }
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const s = parseClusterSettings(text, rel, { CLUSTER_NAME: existsSync(file) ? undefined : name, ...overrides });
  if (s.name !== name) {
    throw new ToolkitError(
      CLUSTER_SETTINGS.code,
      `${rel}: CLUSTER_NAME: does not match the folder clusters/${name} (got ${JSON.stringify(s.name)})`,
      `set CLUSTER_NAME=${name} in ${rel}`,
    );
  }
  return s;
}

/** The cluster.env text for given values (what `make cluster-lab` and a first `cluster-plan` write). Pure. */
export function clusterEnvText(values: Partial<Record<ClusterKey, string>>, header: string): string {
  const lines = [`# ${header}`, "# Keys and rules: clusters/README.md (scripts/lib/settings/cluster.ts)."];
  for (const [k, v] of Object.entries(values)) if (v !== undefined) lines.push(`${k}=${v}`);
  return lines.join("\n") + "\n";
}
