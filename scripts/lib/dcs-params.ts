/**
 * Postgres parameters that live in Patroni's DCS (postgresql.parameters):
 * bootstrap.dcs sets them on a new cluster; a cluster bootstrapped before gets
 * the difference PATCHed in through the REST API (PATCH /config), and a
 * postmaster setting (archive_mode, wal_level) then restarts each member that
 * reports pending_restart: replicas first, the leader last, one at a time,
 * each waiting for a healthy cluster before the next.
 */
import type { Config } from "./config";
import { ToolkitError } from "./errors";
import { waitHealthy } from "./cluster-ops";
import { clusterView, restGet, restSend } from "./patroni";

export type DcsParameters = Record<string, string | number>;

/** The entries of `want` the DCS does not hold yet (compared as strings: Patroni keeps what it is given). */
export const parameterDiff = (current: Record<string, unknown>, want: DcsParameters): DcsParameters =>
  Object.fromEntries(Object.entries(want).filter(([k, v]) => String(current[k] ?? "") !== String(v)));

/** postgresql.parameters from the first member that answers GET /config. */
export async function readDcsParameters(
  cfg: Config,
): Promise<{ current: Record<string, unknown>; via: Config["members"][number] }> {
  for (const m of cfg.members) {
    const r = await restGet(m, "/config");
    if (r?.status === 200) return { current: r.body?.postgresql?.parameters ?? {}, via: m };
  }
  throw new ToolkitError(
    "NO_PATRONI",
    "no Patroni member answers GET /config",
    "run `make status`; start the stack with `make dev-up`",
  );
}

/**
 * PATCH the parameters of `want` that differ; when one of `restartFor` changed, restart the
 * members that need it. Returns what changed (empty on a re-run).
 */
export async function ensureDcsParameters(
  cfg: Config,
  want: DcsParameters,
  restartFor: string[],
  what: string,
): Promise<string[]> {
  const { current, via } = await readDcsParameters(cfg);
  const diff = parameterDiff(current, want);
  if (Object.keys(diff).length === 0) return [];
  const res = await restSend(cfg, via, "PATCH", "/config", { postgresql: { parameters: diff } });
  if (res.status !== 200)
    throw new ToolkitError(
      "DCS_PATCH_FAILED",
      `PATCH /config answered ${res.status}: ${res.text}`,
      "check `make logs SVC=pg1`",
    );
  const changes = [
    `DCS ${what}: ${Object.entries(diff)
      .map(([k, v]) => (restartFor.includes(k) ? `${k} = ${v}` : k))
      .join(", ")}`,
  ];
  const needs = Object.keys(diff).filter((k) => restartFor.includes(k));
  if (needs.length) changes.push(...(await restartPending(cfg, needs.map((k) => `${k} ${diff[k]}`).join(", "))));
  return changes;
}

/** The restart order: replicas (any order Patroni lists them in) before the leader. */
export const restartOrder = <T extends { role: string }>(members: T[]): T[] =>
  [...members].sort((a, b) => Number(a.role === "leader") - Number(b.role === "leader"));

/** Restart members whose settings need it, replicas before the leader, one at a time. */
export async function restartPending(cfg: Config, why: string): Promise<string[]> {
  const view = await clusterView(cfg);
  const restarted: string[] = [];
  for (const cm of restartOrder(view?.members ?? [])) {
    const m = cfg.members.find((x) => x.name === cm.name);
    if (!m) continue;
    // Patroni notices the new parameters on its next loop; wait for the flag rather than guess.
    let pending = false;
    for (let i = 0; i < 40 && !pending; i++) {
      const r = await restGet(m, "/patroni");
      pending = Boolean(r?.body?.pending_restart);
      if (!pending) await Bun.sleep(250);
    }
    if (!pending) continue;
    const res = await restSend(cfg, m, "POST", "/restart", { restart_pending: true }, 120_000);
    if (res.status !== 200)
      throw new ToolkitError(
        "RESTART_FAILED",
        `restart of ${m.name} for ${why} answered ${res.status}: ${res.text}`,
        `see \`make logs SVC=${m.name}\``,
      );
    restarted.push(m.name);
    await waitHealthy(cfg, 90_000);
  }
  return restarted.length ? [`restarted ${restarted.join(", ")} (${why})`] : [];
}
