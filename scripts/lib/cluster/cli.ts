/**
 * What the cluster entry scripts share: their flags, loading the settings
 * (HOSTS/VIP from the command line win; a first plan writes cluster.env),
 * and opening the hosts. Entry scripts stay thin.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { ToolkitError } from "../errors";
import { parseFlags } from "../flags";
import { closeAll, connectAll, type HostConn } from "./remote";
import { clusterDir, clusterEnvFile, clusterEnvText, loadClusterSettings, type ClusterSettings } from "./settings";

export const CLUSTER_FLAGS = {
  cluster: "string",
  hosts: "string",
  vip: "string",
  to: "string",
  scenario: "string",
  old: "string",
  new: "string",
  trustNewHost: "boolean",
  json: "boolean",
} as const;

export function clusterArgs(argv: string[], usage: string) {
  const flags = parseFlags(argv, CLUSTER_FLAGS, usage);
  if (!flags.help && !flags.cluster)
    throw new ToolkitError(
      "NO_CLUSTER_NAME",
      "CLUSTER is required",
      "e.g. make cluster-status CLUSTER=crm (make cluster-lab creates CLUSTER=lab)",
    );
  return flags;
}

/** Settings for the verb; HOSTS/VIP given and no cluster.env yet: write it (the only local change a plan makes). */
export function settingsFor(
  flags: ReturnType<typeof clusterArgs>,
  writeNew = false,
): { settings: ClusterSettings; wrote?: string } {
  const name = flags.cluster!;
  const overrides = { HOSTS: flags.hosts, VIP: flags.vip };
  const settings = loadClusterSettings(name, overrides);
  if (writeNew && !existsSync(clusterEnvFile(name))) {
    mkdirSync(clusterDir(name), { recursive: true });
    writeFileSync(
      clusterEnvFile(name),
      clusterEnvText(
        { CLUSTER_NAME: name, HOSTS: settings.hosts.map((h) => h.ssh).join(","), VIP: settings.vip },
        `Cluster ${name}: written by make cluster-plan; review and commit.`,
      ),
    );
    return { settings, wrote: `clusters/${name}/cluster.env` };
  }
  return { settings };
}

/** Open every host, run fn, always close the connections. */
export async function withHosts<T>(
  s: ClusterSettings,
  trustNewHost: boolean,
  fn: (conns: HostConn[], recorded: string[]) => Promise<T>,
): Promise<T> {
  const { conns, recorded } = await connectAll(s, { trustNewHost });
  try {
    return await fn(conns, recorded);
  } finally {
    await closeAll(conns);
  }
}
