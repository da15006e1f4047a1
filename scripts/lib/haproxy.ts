/** HAProxy's view of the backends, from its stats CSV. */
import type { Config } from "./config";

export interface BackendServer {
  proxy: string; // postgres_rw | postgres_ro
  server: string; // pg1..
  status: string; // UP, DOWN, ...
}

export async function haproxyBackends(cfg: Config): Promise<BackendServer[] | undefined> {
  try {
    const res = await fetch(`http://${cfg.haproxy.address}:${cfg.haproxy.statsPort}/;csv`, {
      headers: {
        Authorization: "Basic " + Buffer.from(`admin:${cfg.secrets.HAPROXY_STATS_PASSWORD}`).toString("base64"),
      },
      signal: AbortSignal.timeout(1500),
    });
    if (!res.ok) return undefined;
    return parseStatsCsv(await res.text());
  } catch {
    return undefined;
  }
}

export function parseStatsCsv(csv: string): BackendServer[] {
  const lines = csv.trim().split("\n");
  const header = lines[0]!.replace(/^# /, "").split(",");
  const col = (n: string) => header.indexOf(n);
  return lines
    .slice(1)
    .map((l) => l.split(","))
    .filter(
      (f) =>
        f[col("svname")] !== "FRONTEND" && f[col("svname")] !== "BACKEND" && f[col("pxname")]?.startsWith("postgres_"),
    )
    .map((f) => ({ proxy: f[col("pxname")]!, server: f[col("svname")]!, status: f[col("status")]! }));
}
