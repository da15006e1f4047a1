/**
 * What runs ON the customer's server, from inside a release (after the
 * release's own scripts/dev-up.ts brought the platform up): each
 * environment's login role owning its own database and nothing else, the
 * environments' nginx TLS sites installed into the stack's nginx, and the
 * health checks. Returns data; the entry prints it as JSON for the deployer.
 */
import { ensureCustomerEnvironments } from "../supabase/environments";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config";
import { ToolkitError } from "../errors";
import { run } from "../exec";
import { assessCluster, clusterView } from "../patroni";
import { connect, quoteIdent, quoteLiteral, roTarget, rwTarget } from "../pg";
import { procSpecs } from "../native/specs";
import { runningPid } from "../procs";
import { writeIfChanged } from "../render";
import { jwtSecretOf, type ClientSecrets } from "./client-secrets";
import { environmentKeyProblems } from "./env-keys";
import { targetPaths } from "./bundle";
import { ENVIRONMENTS, databaseFor, roleFor, type ClientSettings, type EnvName } from "./settings";
import { pooledCheck, syncClientPool } from "../pool-client";
import { ensureBootstrapCert, hostnameFor } from "./tls";
import { scramVerifier } from "../scram";

export { environmentKeyProblems, releaseEnv, verifyEnvironmentKey } from "./env-keys";

const SERVICE_ROLES = ["authenticator", "supabase_auth_admin", "supabase_storage_admin"];
const dbPassword = (secrets: ClientSecrets, env: EnvName) =>
  secrets[`DB_PASSWORD_${env.toUpperCase()}` as keyof ClientSecrets];

/** Each environment: its own login role owns its database; PUBLIC may not connect. Idempotent; a rotated password is applied. */
export async function ensureEnvironmentRoles(cfg: Config, secrets: ClientSecrets): Promise<string[]> {
  const changes: string[] = [];
  const c = await connect(cfg);
  try {
    for (const env of ENVIRONMENTS) {
      const role = roleFor(env);
      const db = databaseFor(env);
      const pw = dbPassword(secrets, env);
      const exists = (await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [role])).rowCount === 1;
      if (!exists) {
        await c.query(`CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD ${quoteLiteral(scramVerifier(pw))}`); // never the password: a failed statement is logged
        changes.push(`role ${role}`);
      }
      const owner = (await c.query("SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = $1", [db]))
        .rows[0]?.o;
      if (owner === undefined)
        throw new ToolkitError(
          "NO_DATABASE",
          `database ${db} does not exist`,
          "dev-up creates it from DATABASES in the stack env; see its output",
        );
      if (owner !== role) {
        await c.query(`ALTER DATABASE ${quoteIdent(db)} OWNER TO ${quoteIdent(role)}`);
        changes.push(`${db} owned by ${role}`);
      }
      const publicConnect = (
        await c.query(
          "SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a WHERE d.datname = $1 AND a.grantee = 0 AND a.privilege_type = 'CONNECT') AS p",
          [db],
        )
      ).rows[0].p;
      if (publicConnect) {
        await c.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${quoteIdent(db)} FROM PUBLIC`);
        changes.push(`${db}: PUBLIC may not connect`);
      }
      for (const r of SERVICE_ROLES) {
        const ok = (await c.query("SELECT has_database_privilege($1, $2, 'CONNECT') AS ok", [r, db])).rows[0].ok;
        if (!ok) {
          await c.query(`GRANT CONNECT ON DATABASE ${quoteIdent(db)} TO ${quoteIdent(r)}`);
          changes.push(`${db}: ${r} may connect`);
        }
      }
      if (exists) {
        // We cannot read a password back; a failed login means it was rotated in the bundle.
        const probe = await connect(cfg, { user: role, password: pw, database: db }).catch((e: Error) => e);
        if (probe instanceof Error) {
          if (!/password authentication failed/.test(probe.message)) throw probe;
          await c.query(`ALTER ROLE ${quoteIdent(role)} PASSWORD ${quoteLiteral(scramVerifier(pw))}`);
          changes.push(`password of ${role} updated`);
        } else await probe.end().catch(() => {});
      }
    }
  } finally {
    await c.end().catch(() => {});
  }
  return changes;
}

/** Install the environments' TLS files and nginx sites into the stack's nginx; reload it when anything changed. */
export async function installSites(cfg: Config, s: ClientSettings, releaseDir: string): Promise<string[]> {
  const changes: string[] = [];
  const paths = targetPaths(s);
  if (s.access === "internal") {
    for (const [f, mode] of [
      ["server.crt", 0o644],
      ["server.key", 0o600],
      ["ca.crt", 0o644],
    ] as const) {
      if (writeIfChanged(join(paths.tlsDir, f), readFileSync(join(releaseDir, "client", "tls", f), "utf8"), { mode }))
        changes.push(`tls ${f}`);
    }
  } else {
    changes.push(...(await ensureBootstrapCert(paths.tlsDir, s.domain)));
  }
  const appsDir = join(cfg.stateDir, "nginx", "apps");
  const siteDir = join(releaseDir, "client", "nginx");
  const want = readdirSync(siteDir).filter((f) => f.endsWith(".conf"));
  for (const f of want)
    if (writeIfChanged(join(appsDir, f), readFileSync(join(siteDir, f), "utf8"))) changes.push(`nginx ${f}`);
  // A site this release no longer has (e.g. ACCESS switched) must not linger.
  const prefix = `client-${s.name}-`;
  if (existsSync(appsDir)) {
    for (const f of readdirSync(appsDir)) {
      if (f.startsWith(prefix) && f.endsWith(".conf") && !want.includes(f)) {
        rmSync(join(appsDir, f));
        changes.push(`nginx ${f} removed`);
      }
    }
  }
  if (changes.length) {
    const spec = procSpecs(cfg).nginx;
    const t = await run(["nginx", "-t", "-q", "-p", join(cfg.stateDir, "nginx"), "-c", spec.marker], {
      nothrow: true,
      timeoutMs: 15_000,
    });
    if (t.code !== 0)
      throw new ToolkitError(
        "NGINX_INVALID",
        "nginx -t rejects the stack's config with the environments' sites",
        "fix nginx/client-site.conf.tmpl",
        t.stderr,
      );
    const pid = runningPid(spec);
    if (!pid)
      throw new ToolkitError(
        "NGINX_DOWN",
        "the stack's nginx is not running",
        "dev-up should have started it; see its log",
      );
    process.kill(pid, "SIGHUP");
    changes.push("nginx reloaded");
  }
  return changes;
}

export interface HealthCheck {
  check: string;
  ok: boolean;
  detail: string;
}

async function tryConnect(cfg: Config, user: string, password: string, database: string, target = rwTarget(cfg)) {
  try {
    const c = await connect(cfg, { user, password, database, target, timeoutMs: 5000 });
    try {
      const r = await c.query(
        "SELECT current_database() AS db, pg_is_in_recovery() AS rec, current_setting('app.settings.jwt_secret', true) AS jwt",
      );
      return {
        ok: true as const,
        db: r.rows[0].db as string,
        rec: r.rows[0].rec as boolean,
        jwt: r.rows[0].jwt as string | null,
      };
    } finally {
      await c.end().catch(() => {});
    }
  } catch (e) {
    return { ok: false as const, code: (e as { code?: string }).code, message: (e as Error).message };
  }
}

/** GET over TLS; with `ca`, the certificate must chain to it and name `serverName` (we dial the address, users the name). */
async function fetchTls(
  url: string,
  ca: string | undefined,
  timeoutMs: number,
  serverName?: string,
): Promise<{ status: number; body: string; headers: Headers } | string> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const r = await fetch(url, {
        signal: AbortSignal.timeout(2000),
        tls: ca ? { ca, serverName } : { rejectUnauthorized: false },
      } as RequestInit);
      return { status: r.status, body: await r.text(), headers: r.headers };
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) return last;
    await Bun.sleep(250);
  }
}

/** Health of every environment, as seen on the target. */
export async function healthChecks(
  cfg: Config,
  s: ClientSettings,
  secrets: ClientSecrets,
  releaseDir: string,
): Promise<HealthCheck[]> {
  const out: HealthCheck[] = [];
  const h = assessCluster(cfg, await clusterView(cfg));
  out.push({
    check: "cluster",
    ok: h.ok,
    detail: h.ok ? `leader ${h.leader}, sync standby ${h.syncStandby}, ${h.running}/3 running` : h.problems.join(", "),
  });

  for (const env of ENVIRONMENTS) {
    const db = databaseFor(env);
    const role = roleFor(env);
    const pw = dbPassword(secrets, env);
    const rw = await tryConnect(cfg, role, pw, db);
    const ro = await tryConnect(cfg, role, pw, db, roTarget(cfg));
    out.push({
      check: `${env}: database`,
      ok: rw.ok && rw.db === db && !rw.rec && ro.ok && ro.rec,
      detail:
        rw.ok && ro.ok
          ? `${role} -> ${db} through HAProxy: read-write ${cfg.haproxy.address}:${cfg.haproxy.rwPort} (primary), read-only :${cfg.haproxy.roPort} (replica)`
          : `${!rw.ok ? rw.message : ""} ${!ro.ok ? ro.message : ""}`.trim(),
    });
    out.push(await pooledCheck(cfg, env, role, pw, db));
    const others = ENVIRONMENTS.filter((e) => e !== env).map(databaseFor);
    const leaks: string[] = [];
    for (const other of others) {
      const r = await tryConnect(cfg, role, pw, other);
      if (r.ok || r.code !== "42501") leaks.push(`${other}: ${r.ok ? "connected" : r.message}`);
    }
    out.push({
      check: `${env}: isolation`,
      ok: leaks.length === 0,
      detail: leaks.length
        ? `${role} reached ${leaks.join("; ")}`
        : `${role} is refused by ${others.join(", ")} (permission denied)`,
    });

    const url = `https://${s.api.address}:${s.ports[env]}/healthz`;
    const ca = s.access === "internal" ? readFileSync(join(releaseDir, "client", "tls", "ca.crt"), "utf8") : undefined;
    const res = await fetchTls(url, ca, 15_000, hostnameFor(s.domain, env));
    if (typeof res === "string") out.push({ check: `${env}: nginx TLS`, ok: false, detail: `${url}: ${res}` });
    else {
      let body: { environment?: string; database?: string } = {};
      try {
        body = JSON.parse(res.body);
      } catch {
        /* reported below */
      }
      const hsts = res.headers.get("strict-transport-security");
      const ok =
        res.status === 200 &&
        body.environment === env &&
        body.database === db &&
        Boolean(hsts) &&
        res.headers.get("x-frame-options") === "DENY";
      out.push({
        check: `${env}: nginx TLS`,
        ok,
        detail: `${url} -> ${res.status} ${body.environment ?? "?"}${ca ? ", certificate for ${hostnameFor(s.domain, env)} verified against the client's CA" : ", bootstrap certificate (certbot pending)"}${hsts ? ", HSTS" : ", no HSTS"}`,
      });
    }

    // PostgREST/GoTrue run only in the docker runtime: natively we verify, with the environment's own env file
    // as its services read it, the signature and claims of its keys, that no other environment's key verifies
    // there, and that the database does not hold the secret (every login role could read it there).
    if (rw.ok) {
      const problems = await environmentKeyProblems(releaseDir, env);
      if (rw.jwt) problems.push(`${db}: holds app.settings.jwt_secret, readable by every login role`);
      const others = ENVIRONMENTS.filter((e) => e !== env);
      out.push({
        check: `${env}: signed key`,
        ok: problems.length === 0,
        detail: problems.length
          ? problems.join("; ")
          : `ANON_KEY and SERVICE_ROLE_KEY of ${env}.env verify (HS256, role, iss, exp) against its own JWT_SECRET (${jwtSecretOf(env)}), ${others.join("'s and ")}'s service keys are refused, and ${db} does not hold it (PostgREST not running natively: signature and claims checked)`,
      });
    }
  }
  return out;
}

export interface ApplyResult {
  changes: string[];
  health: HealthCheck[];
  ok: boolean;
  warnings: string[];
}

export async function applyOnTarget(
  cfg: Config,
  s: ClientSettings,
  secrets: ClientSecrets,
  releaseDir: string,
): Promise<ApplyResult> {
  const changes = [
    ...(await ensureEnvironmentRoles(cfg, secrets)),
    ...(await ensureCustomerEnvironments(cfg)), // Supabase's database side, for the roles just made
    ...(await syncClientPool(cfg)),
    ...(await installSites(cfg, s, releaseDir)),
  ];
  const warnings: string[] = [];
  if (s.access === "public")
    warnings.push(
      `Let's Encrypt: run certbot on the target once DNS points at it (make deploy-client prints the command); nginx serves a bootstrap certificate until then`,
    );
  const health = await healthChecks(cfg, s, secrets, releaseDir);
  return { changes, health, ok: health.every((h) => h.ok), warnings };
}
