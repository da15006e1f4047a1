/**
 * Patroni's REST API is the source of truth for roles. GET endpoints are
 * open (HAProxy uses them); unsafe ones carry the API credentials.
 */
import type { Config, Member } from "./config";
import { ToolkitError } from "./errors";

export interface ClusterMember {
  name: string;
  role: "leader" | "replica" | "sync_standby" | "standby_leader" | string;
  state: string;
  host: string;
  port: number;
  timeline?: number;
  lag?: number | string;
  api_url?: string;
}

export interface ClusterView {
  members: ClusterMember[];
  failover?: unknown;
  pause?: boolean;
}

export const restUrl = (m: Member, path: string) => `http://${m.address}:${m.restPort}${path}`;

export async function restGet(
  m: Member,
  path: string,
  timeoutMs = 1500,
): Promise<{ status: number; body: any } | undefined> {
  try {
    const res = await fetch(restUrl(m, path), { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.status, body };
  } catch {
    return undefined;
  }
}

export function authHeader(cfg: Config): Record<string, string> {
  return { Authorization: "Basic " + Buffer.from(`patroni:${cfg.secrets.PATRONI_API_PASSWORD}`).toString("base64") };
}

export async function restSend(
  cfg: Config,
  m: Member,
  method: "POST" | "PATCH" | "DELETE",
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
) {
  const res = await fetch(restUrl(m, path), {
    method,
    headers: { "Content-Type": "application/json", ...authHeader(cfg) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, text: await res.text() };
}

/** The cluster as any reachable member sees it. */
export async function clusterView(cfg: Config): Promise<ClusterView | undefined> {
  for (const m of cfg.members) {
    const r = await restGet(m, "/cluster");
    if (r && r.status === 200 && Array.isArray(r.body?.members)) return r.body as ClusterView;
  }
  return undefined;
}

/** clusterView, or CLUSTER_DOWN (no member answers) naming how to start the stack. */
export async function requireClusterView(cfg: Config): Promise<ClusterView> {
  const view = await clusterView(cfg);
  if (!view) {
    throw new ToolkitError(
      "CLUSTER_DOWN",
      "no Patroni member answers on its REST API",
      `start the stack with \`make dev-up STACK=${cfg.stack}\``,
    );
  }
  return view;
}

export const isRunning = (m: ClusterMember) => m.state === "running" || m.state === "streaming";

export interface Health {
  ok: boolean;
  leader?: string;
  syncStandby?: string;
  running: number;
  problems: string[];
}

/** 3 members running, exactly one leader, one sync standby (when synchronous mode is on). */
export function assessCluster(cfg: Config, view: ClusterView | undefined): Health {
  if (!view) return { ok: false, running: 0, problems: ["no Patroni member answers on its REST API"] };
  const problems: string[] = [];
  const leaders = view.members.filter((m) => m.role === "leader");
  const syncs = view.members.filter((m) => m.role === "sync_standby");
  const running = view.members.filter(isRunning).length;
  if (running !== cfg.members.length) problems.push(`${running}/${cfg.members.length} members running`);
  if (leaders.length !== 1) problems.push(`${leaders.length} leaders`);
  if (cfg.timing.synchronousMode && syncs.length !== 1) problems.push(`${syncs.length} sync standbys`);
  if (view.pause) problems.push("cluster is paused (maintenance mode)");
  return { ok: problems.length === 0, leader: leaders[0]?.name, syncStandby: syncs[0]?.name, running, problems };
}
