/**
 * What `<compose> ps` says of a project's containers, for dev-up's wait (compose v1 has no
 * `up --wait`) and make status: each container's name and state ("Up (healthy)",
 * "Up (health: starting)", "Exit 1", ...), from v1's table or v2's JSON.
 */

export interface ContainerState {
  name: string;
  /** v1's wording: "Up", "Up (healthy)", "Up (unhealthy)", "Exit 137", "Restarting" */
  state: string;
}

/** v1's table (Name, Command, State, Ports); podman's API shows "Up ()" for a container without a healthcheck. */
export function parseV1Ps(psText: string): ContainerState[] {
  const out: ContainerState[] = [];
  for (const line of psText.split("\n")) {
    if (!line.trim() || /^\s*Name\s+Command/.test(line) || /^-+$/.test(line.trim())) continue;
    const name = line.trim().split(/\s+/)[0]!;
    const state = /\s(Up( \([^)]*\))?|Exit \d+|Restarting|Paused|Created)(?=\s|$)/.exec(line)?.[0]?.trim() ?? "unknown";
    out.push({ name, state: state === "Up ()" ? "Up" : state });
  }
  return out;
}

/** v2's `ps --format json`: one JSON array (2.0-2.20) or one object per line (2.21+); State "running", Health "healthy". */
export function parseV2Ps(text: string): ContainerState[] {
  const t = text.trim();
  if (!t) return [];
  const rows: { Name: string; State: string; Health?: string; ExitCode?: number }[] = t.startsWith("[")
    ? JSON.parse(t)
    : t.split("\n").map((l) => JSON.parse(l));
  return rows.map((r) => ({
    name: r.Name,
    state:
      r.State === "running"
        ? r.Health
          ? `Up (${r.Health})`
          : "Up"
        : r.State === "exited"
          ? `Exit ${r.ExitCode ?? "?"}`
          : r.State,
  }));
}

/** Ready: running and healthy, or running without a healthcheck. */
export const isReady = (c: ContainerState) => c.state === "Up" || c.state === "Up (healthy)";
