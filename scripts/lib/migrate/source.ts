/**
 * The source project's connection: parsed from SOURCE_DB_URL once, its
 * password registered for redaction before anything can print it, and handed
 * to pg_dump through the environment (never argv).
 */
import pg from "pg";
import { ToolkitError } from "../errors";
import { redact, registerSecret } from "../redact";

export interface SourceConn {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  sslmode?: string;
  /** postgresql://user@host:port/db: safe to print */
  display: string;
}

const FIX_URL = "use SOURCE_DB_URL='postgresql://postgres.<ref>:<password>@<host>:5432/postgres' (Supabase: Project → Connect → Session pooler)";

/** Pure: parse and validate; the error never repeats the URL (it holds the password). */
export function parseSourceUrl(url: string): SourceConn {
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL is not a valid URL", FIX_URL);
  }
  if (u.protocol !== "postgresql:" && u.protocol !== "postgres:") {
    throw new ToolkitError("BAD_SOURCE_URL", `SOURCE_DB_URL must start with postgresql:// (got ${u.protocol}//)`, FIX_URL);
  }
  if (!u.hostname) throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL has no host", FIX_URL);
  if (!u.username) throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL has no user", FIX_URL);
  const password = decodeURIComponent(u.password);
  if (!password) throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL has no password", FIX_URL);
  const port = u.port ? Number(u.port) : 5432;
  if (port === 6543) {
    throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL points at port 6543, Supabase's transaction pooler: a dump needs one session throughout", "use the session pooler (same host, port 5432) or the direct connection (db.<ref>.supabase.co:5432)");
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || "postgres";
  const user = decodeURIComponent(u.username);
  const sslmode = u.searchParams.get("sslmode") ?? undefined;
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return { host, port, user, password, database, sslmode, display: `postgresql://${user}@${u.host}/${database}` };
}

/** Register the password (raw and URL-encoded) so redact() masks it in every line we print or write. */
export function protectSource(src: SourceConn, rawUrl?: string): void {
  registerSecret(src.password);
  registerSecret(encodeURIComponent(src.password));
  if (rawUrl) registerSecret(rawUrl.trim());
}

const isLoopback = (host: string) => host === "localhost" || host.startsWith("127.") || host === "::1";

/** libpq settings for pg_dump/psql: the password travels in PGPASSWORD, never on the command line. */
export function sourceEnv(src: SourceConn): Record<string, string> {
  return {
    PGHOST: src.host,
    PGPORT: String(src.port),
    PGUSER: src.user,
    PGDATABASE: src.database,
    PGPASSWORD: src.password,
    PGSSLMODE: src.sslmode ?? "prefer",
    PGCONNECT_TIMEOUT: "10",
    PGAPPNAME: "pgplatform-migrate",
  };
}

function sslOption(src: SourceConn): pg.ClientConfig["ssl"] {
  const mode = src.sslmode ?? (isLoopback(src.host) ? "disable" : "require");
  if (mode === "disable" || mode === "allow" || mode === "prefer") return false;
  return { rejectUnauthorized: mode === "verify-full" || mode === "verify-ca" };
}

/** Connect, turning the usual failures into errors that name the host and the reason. */
export async function connectSource(src: SourceConn, timeoutMs = 10_000): Promise<pg.Client> {
  const client = new pg.Client({
    host: src.host,
    port: src.port,
    user: src.user,
    password: src.password,
    database: src.database,
    ssl: sslOption(src),
    connectionTimeoutMillis: timeoutMs,
    application_name: "pgplatform-migrate",
  });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw sourceError(src, err);
  }
  return client;
}

export function sourceError(src: SourceConn, err: unknown): ToolkitError {
  const e = err as { code?: string; message?: string };
  const where = `${src.host}:${src.port}`;
  const reason = redact(e.message ?? String(err));
  switch (e.code) {
    case "28P01":
    case "28000":
      return new ToolkitError("SOURCE_AUTH_FAILED", `source ${where} refused the login for user ${src.user}: ${reason}`, "check the password in SOURCE_DB_URL (Supabase: Project Settings → Database → Reset database password)");
    case "3D000":
      return new ToolkitError("SOURCE_NO_DATABASE", `source ${where} has no database ${src.database}`, "Supabase projects use the database `postgres`: end SOURCE_DB_URL with /postgres");
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ETIMEDOUT":
      return new ToolkitError("SOURCE_UNREACHABLE", `cannot reach the source database at ${where}: ${reason}`, "check the host and port in SOURCE_DB_URL and that this machine can reach it (firewall, IPv6: use Supabase's session pooler host)");
    default:
      if (/timeout/i.test(reason)) {
        return new ToolkitError("SOURCE_UNREACHABLE", `cannot reach the source database at ${where}: connection timed out`, "check the host and port in SOURCE_DB_URL and that this machine can reach it");
      }
      return new ToolkitError("SOURCE_FAILED", `source ${where}: ${reason}`, "check SOURCE_DB_URL");
  }
}
