/**
 * The source project's connection: parsed from SOURCE_DB_URL once, its
 * password registered for redaction before anything can print it, and handed
 * to pg_dump through the environment (never argv).
 */
import { existsSync, readFileSync } from "node:fs";
import pg from "pg";
import { ToolkitError } from "../errors";
import { redact, registerSecret } from "../redact";

export interface SourceConn {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** effective libpq sslmode: verify-full unless the run opted out (insecureTls) */
  sslmode: string;
  /** CA bundle the server certificate must chain to (verify-ca / verify-full) */
  sslrootcert?: string;
  /** the explicit opt-out (--insecure-source-tls): the source's certificate is not verified */
  insecureTls: boolean;
  /** postgresql://user@host:port/db: safe to print */
  display: string;
}

const FIX_URL =
  "use SOURCE_DB_URL='postgresql://postgres.<ref>:<password>@<host>:5432/postgres' (Supabase: Project → Connect → Session pooler)";

/** Where Debian keeps the system's trusted CAs: the default for verify-full when no CA file is given. */
export const SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

export interface SourceTlsOptions {
  /** --insecure-source-tls / SOURCE_TLS_INSECURE=1: allow an unverified (or plaintext) connection, for local/test sources only */
  insecureTls?: boolean;
  /** --source-ca / SOURCE_SSLROOTCERT: the CA the source's certificate chains to (Supabase: Database settings → SSL → download) */
  caFile?: string;
}

const VERIFYING = new Set(["verify-full"]);
const SSLMODES = new Set(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]);

/** Pure: parse and validate; the error never repeats the URL (it holds the password). */
export function parseSourceUrl(url: string, tls: SourceTlsOptions = {}): SourceConn {
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL is not a valid URL", FIX_URL);
  }
  if (u.protocol !== "postgresql:" && u.protocol !== "postgres:") {
    throw new ToolkitError(
      "BAD_SOURCE_URL",
      `SOURCE_DB_URL must start with postgresql:// (got ${u.protocol}//)`,
      FIX_URL,
    );
  }
  if (!u.hostname) throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL has no host", FIX_URL);
  if (!u.username) throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL has no user", FIX_URL);
  const password = decodeURIComponent(u.password);
  if (!password) throw new ToolkitError("BAD_SOURCE_URL", "SOURCE_DB_URL has no password", FIX_URL);
  const port = u.port ? Number(u.port) : 5432;
  if (port === 6543) {
    throw new ToolkitError(
      "BAD_SOURCE_URL",
      "SOURCE_DB_URL points at port 6543, Supabase's transaction pooler: a dump needs one session throughout",
      "use the session pooler (same host, port 5432) or the direct connection (db.<ref>.supabase.co:5432)",
    );
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || "postgres";
  const user = decodeURIComponent(u.username);
  const asked = u.searchParams.get("sslmode") ?? undefined;
  if (asked && !SSLMODES.has(asked))
    throw new ToolkitError(
      "BAD_SOURCE_URL",
      `SOURCE_DB_URL has sslmode=${asked}, which libpq does not know`,
      "remove sslmode (verify-full is the default)",
    );
  const insecureTls = !!tls.insecureTls;
  // The source is a cloud database reached over the internet: its certificate is verified (host name
  // included) unless the run says, loudly, that it must not be (a local or test source).
  if (asked && !VERIFYING.has(asked) && !insecureTls) {
    throw new ToolkitError(
      "SOURCE_TLS_UNVERIFIED",
      `SOURCE_DB_URL asks for sslmode=${asked}: the source's certificate would not be verified, so anyone on the path could read the password and the data`,
      "remove sslmode from the URL (verify-full is the default; give the CA with SOURCE_SSLROOTCERT=<file> if it is not a public one), or, for a local/test source only, pass --insecure-source-tls (SOURCE_TLS_INSECURE=1)",
    );
  }
  const sslmode = asked ?? (insecureTls ? "prefer" : "verify-full");
  const rootcert =
    tls.caFile ??
    (u.searchParams.get("sslrootcert") || undefined) ??
    (existsSync(SYSTEM_CA_BUNDLE) ? SYSTEM_CA_BUNDLE : undefined);
  if ((sslmode === "verify-full" || sslmode === "verify-ca") && (!rootcert || !existsSync(rootcert))) {
    throw new ToolkitError(
      "SOURCE_TLS_NO_CA",
      rootcert
        ? `the CA file ${rootcert} for verifying the source does not exist`
        : "no CA file to verify the source's certificate with",
      "pass SOURCE_SSLROOTCERT=<file> (Supabase: Project Settings → Database → SSL configuration → Download certificate)",
    );
  }
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return {
    host,
    port,
    user,
    password,
    database,
    sslmode,
    sslrootcert: rootcert,
    insecureTls,
    display: `postgresql://${user}@${u.host}/${database}`,
  };
}

/** Register the password (raw and URL-encoded) so redact() masks it in every line we print or write. */
export function protectSource(src: SourceConn, rawUrl?: string): void {
  registerSecret(src.password);
  registerSecret(encodeURIComponent(src.password));
  if (rawUrl) registerSecret(rawUrl.trim());
}

/** libpq settings for pg_dump/psql: the password travels in PGPASSWORD, never on the command line. */
export function sourceEnv(src: SourceConn): Record<string, string> {
  return {
    PGHOST: src.host,
    PGPORT: String(src.port),
    PGUSER: src.user,
    PGDATABASE: src.database,
    PGPASSWORD: src.password,
    PGSSLMODE: src.sslmode,
    ...(src.sslrootcert && !src.insecureTls ? { PGSSLROOTCERT: src.sslrootcert } : {}),
    PGCONNECT_TIMEOUT: "10",
    PGAPPNAME: "pgplatform-migrate",
  };
}

/** Node's side of the same rule: verify-full checks the chain against the CA file and the host name against the certificate. */
export function sslOption(src: SourceConn): pg.ClientConfig["ssl"] {
  const mode = src.sslmode;
  if (mode === "disable" || mode === "allow" || mode === "prefer") return false;
  if (mode === "require") return { rejectUnauthorized: false };
  const ca = src.sslrootcert ? readFileSync(src.sslrootcert, "utf8") : undefined;
  if (mode === "verify-ca") return { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
  return { rejectUnauthorized: true, ca, ...(isIp(src.host) ? {} : { servername: src.host }) };
}

const isIp = (host: string) => /^[\d.]+$/.test(host) || host.includes(":");

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
      return new ToolkitError(
        "SOURCE_AUTH_FAILED",
        `source ${where} refused the login for user ${src.user}: ${reason}`,
        "check the password in SOURCE_DB_URL (Supabase: Project Settings → Database → Reset database password)",
      );
    case "3D000":
      return new ToolkitError(
        "SOURCE_NO_DATABASE",
        `source ${where} has no database ${src.database}`,
        "Supabase projects use the database `postgres`: end SOURCE_DB_URL with /postgres",
      );
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ETIMEDOUT":
      return new ToolkitError(
        "SOURCE_UNREACHABLE",
        `cannot reach the source database at ${where}: ${reason}`,
        "check the host and port in SOURCE_DB_URL and that this machine can reach it (firewall, IPv6: use Supabase's session pooler host)",
      );
    default:
      if (/certificate|self.signed|SSL|TLS|altnames|Hostname\/IP/i.test(reason)) {
        return new ToolkitError(
          "SOURCE_TLS_FAILED",
          `source ${where}: its TLS certificate could not be verified: ${reason}`,
          "give the CA the source's certificate chains to with SOURCE_SSLROOTCERT=<file> (Supabase: Project Settings → Database → SSL configuration); for a local/test source only, --insecure-source-tls (SOURCE_TLS_INSECURE=1)",
        );
      }
      if (/timeout/i.test(reason)) {
        return new ToolkitError(
          "SOURCE_UNREACHABLE",
          `cannot reach the source database at ${where}: connection timed out`,
          "check the host and port in SOURCE_DB_URL and that this machine can reach it",
        );
      }
      return new ToolkitError("SOURCE_FAILED", `source ${where}: ${reason}`, "check SOURCE_DB_URL");
  }
}
