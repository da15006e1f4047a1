/**
 * cloudflared's configuration file as a schema, and every way a config breaks
 * cloudflared's documented rules (keys, ingress order, hostnames); the
 * references are in scripts/lib/access.ts. Pure; moved out of access.ts.
 */
import { z } from "zod";

/** The origin parameters we set (cloudflared's documented names). */
const OriginRequest = z
  .object({
    // documented origin parameters; anything else is refused, so a typo cannot pass silently
    connectTimeout: z
      .string()
      .regex(/^\d+(ms|s|m)$/)
      .optional(),
    tlsTimeout: z
      .string()
      .regex(/^\d+(ms|s|m)$/)
      .optional(),
    tcpKeepAlive: z
      .string()
      .regex(/^\d+(ms|s|m)$/)
      .optional(),
    noHappyEyeballs: z.boolean().optional(),
    keepAliveConnections: z.number().int().min(0).optional(),
    keepAliveTimeout: z
      .string()
      .regex(/^\d+(ms|s|m)$/)
      .optional(),
    httpHostHeader: z.string().min(1).optional(),
    originServerName: z.string().optional(),
    matchSNItoHost: z.boolean().optional(),
    caPool: z.string().optional(),
    noTLSVerify: z.boolean().optional(),
    disableChunkedEncoding: z.boolean().optional(),
    http2Origin: z.boolean().optional(),
    proxyType: z.string().optional(),
  })
  .strict();

const IngressRule = z
  .object({
    hostname: z.string().optional(),
    path: z.string().optional(),
    service: z
      .string()
      .regex(
        /^(https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/?|http_status:[1-5]\d\d|hello_world)$/,
        "must be http(s)://host:port or http_status:<code>",
      ),
    originRequest: OriginRequest.optional(),
  })
  .strict();

const CloudflaredConfigSchema = z
  .object({
    tunnel: z.string().min(1, "must name the tunnel (UUID or name)"),
    "credentials-file": z.string().regex(/^\/\S+\.json$/, "must be an absolute path to a .json file"),
    originRequest: OriginRequest.optional(),
    ingress: z.array(IngressRule).min(1, "needs at least the catch-all rule"),
  })
  .strict();

export type CloudflaredConfig = z.infer<typeof CloudflaredConfigSchema>;
export type CloudflaredIngressRule = z.infer<typeof IngressRule>;

const isCatchAll = (r: CloudflaredIngressRule) =>
  (r.hostname === undefined || r.hostname === "" || r.hostname === "*") && !r.path;

/**
 * Every way a cloudflared config breaks cloudflared's documented rules, as
 * messages naming the rule: keys, ingress order, hostnames. Empty: valid.
 */
export function cloudflaredProblems(doc: unknown): string[] {
  const r = CloudflaredConfigSchema.safeParse(doc);
  if (!r.success) return r.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`);
  const problems: string[] = [];
  const rules = r.data.ingress;
  rules.forEach((rule, i) => {
    const where = `ingress[${i}]`;
    const h = rule.hostname ?? "";
    if (/:\d+$/.test(h)) problems.push(`${where}: hostname ${JSON.stringify(h)}: a hostname cannot contain a port`);
    const star = h.lastIndexOf("*");
    if (h.split("*").length > 2 || star > 0 || (star === 0 && h !== "*" && !h.startsWith("*."))) {
      problems.push(
        `${where}: hostname ${JSON.stringify(h)}: at most one wildcard, only as the leading label, e.g. *.example.com`,
      );
    }
    const last = i === rules.length - 1;
    if (last && !isCatchAll(rule))
      problems.push(
        `${where}: the last rule must match everything (no hostname, no path), e.g. service: http_status:404`,
      );
    if (!last && isCatchAll(rule))
      problems.push(
        `${where}: matches every hostname, so the rules after it would never be used: the catch-all must be last`,
      );
  });
  const seen = new Set<string>();
  for (const rule of rules) {
    if (!rule.hostname || rule.path) continue;
    if (seen.has(rule.hostname))
      problems.push(`ingress: hostname ${rule.hostname} appears twice (only the first would ever match)`);
    seen.add(rule.hostname);
  }
  return problems;
}
