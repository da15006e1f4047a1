/** The relay: Alertmanager's webhook -> BACKUP_ALERT_COMMAND (Alertmanager cannot run a command). */
import { run } from "../exec";

interface AmWebhook {
  status: string;
  alerts: { status: string; labels: Record<string, string>; annotations?: Record<string, string>; startsAt?: string }[];
}

/** Pure: the message the command gets on stdin, one paragraph per alert. */
export function relayMessage(stack: string, body: AmWebhook): string {
  const lines = [`pgplatform alerts ${body.status.toUpperCase()} (stack ${stack}):`];
  for (const a of body.alerts) {
    const where = Object.entries(a.labels)
      .filter(([k]) => !["alertname", "severity", "job", "instance"].includes(k))
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    lines.push(`- [${a.status}] ${a.labels.alertname ?? "?"} (${a.labels.severity ?? "-"}) ${where}`.trimEnd());
    if (a.annotations?.summary) lines.push(`  ${a.annotations.summary}`);
    if (a.annotations?.runbook) lines.push(`  runbook: ${a.annotations.runbook}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * The relay's request handler: POST /alert with the bearer token runs the command
 * (argv split on spaces, no shell) with the message on stdin; anything else is refused.
 */
export function relayHandler(stack: string, token: string, command: string, log: (line: string) => void = () => {}) {
  const { timingSafeEqual } = require("node:crypto") as typeof import("node:crypto");
  const want = Buffer.from(`Bearer ${token}`);
  return async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/healthz") return new Response("ok\n");
    if (req.method !== "POST" || path !== "/alert") return new Response("not found\n", { status: 404 });
    const got = Buffer.from(req.headers.get("authorization") ?? "");
    if (got.length !== want.length || !timingSafeEqual(got, want))
      return new Response("unauthorized\n", { status: 401 });
    let body: AmWebhook;
    try {
      body = (await req.json()) as AmWebhook;
      if (!Array.isArray(body.alerts)) throw new Error("no alerts");
    } catch {
      return new Response("bad request\n", { status: 400 });
    }
    const { alertArgv } = await import("../backup/alert");
    const argv = alertArgv(command);
    const r = await run(argv, {
      input: relayMessage(stack, body),
      nothrow: true,
      timeoutMs: 60_000,
      env: { ALERT_STATUS: body.status, ALERT_STACK: stack },
    });
    log(`${body.status} ${body.alerts.map((a) => a.labels.alertname).join(",")}: ${argv[0]} exit ${r.code}`);
    return new Response(r.code === 0 ? "ok\n" : "command failed\n", { status: r.code === 0 ? 200 : 502 });
  };
}
