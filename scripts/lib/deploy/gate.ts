/**
 * The secret gate: staging and production refuse to deploy with a default or
 * published secret, a placeholder, a short or low-entropy value, identical
 * anon and service keys, a JWT secret shared with another environment, or
 * API keys that do not verify against their own environment's JWT_SECRET_<ENV>.
 * Every problem names the offending key. Pure (no I/O).
 */
import { ToolkitError } from "../errors";
import {
  API_KEY,
  CLIENT_SECRET_KEYS,
  JWT_KEYS,
  JWT_SECRET_KEYS,
  anonKeyOf,
  decodeClaims,
  jwtSecretOf,
  serviceKeyOf,
  verifyApiKey,
  type ApiKeyName,
  type ClientSecretKey,
  type ClientSecrets,
} from "./client-secrets";
import { ENVIRONMENTS, GATED_ENVIRONMENTS, type EnvName } from "./settings";

/** Supabase's published self-hosting demo values (docker/.env.example and the CLI's local defaults). */
export const PUBLISHED_JWT_SECRETS = [
  "your-super-secret-jwt-token-with-at-least-32-characters-long",
  "super-secret-jwt-token-with-at-least-32-characters-long",
];
export const PUBLISHED_VALUES = new Set([
  ...PUBLISHED_JWT_SECRETS,
  // docker/.env.example ANON_KEY / SERVICE_ROLE_KEY (and the older compact encodings of the same keys)
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyAgCiAgICAicm9sZSI6ICJhbm9uIiwKICAgICJpc3MiOiAic3VwYWJhc2UtZGVtbyIsCiAgICAiaWF0IjogMTY0MTc2OTIwMCwKICAgICJleHAiOiAxNzk5NTM1NjAwCn0.dc_X5iR_VP_qT0zsiyj_I_OZ2T9FtRU2BBNWN8Bu4GE",
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyAgCiAgICAicm9sZSI6ICJzZXJ2aWNlX3JvbGUiLAogICAgImlzcyI6ICJzdXBhYmFzZS1kZW1vIiwKICAgICJpYXQiOiAxNjQxNzY5MjAwLAogICAgImV4cCI6IDE3OTk1MzU2MDAKfQ.DaYlNEoUrrEn2Ig7tqibS-PHK5vgusbcbo7X36XVt4Q",
  // the CLI's local-development keys
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0",
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6InNlcnZpY2Vfcm9sZSIsImV4cCI6MTk4MzgxMjk5Nn0.EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU",
  "your-super-secret-and-long-postgres-password",
  "this_password_is_insecure_and_should_be_updated",
  "your-32-character-encryption-key",
  "your-encryption-key-32-chars-min",
]);
/** Signatures of the published keys: catches them however the payload was re-encoded. */
const PUBLISHED_SIGNATURES = new Set([
  "dc_X5iR_VP_qT0zsiyj_I_OZ2T9FtRU2BBNWN8Bu4GE",
  "DaYlNEoUrrEn2Ig7tqibS-PHK5vgusbcbo7X36XVt4Q",
  "CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0",
  "EGIM96RAZx35lJzdJsyH-qQwv8Hdp7fsn3W0YpN81IU",
]);

/** Default and placeholder values seen in examples, docs and our own seeds. */
const PLACEHOLDER_WORDS =
  /^(postgres|password|passw0rd|secret|changeme|change-me|change_me|admin|root|test|default|example|placeholder|todo|tbd|xxx+|123456\d*|qwerty|letmein|supabase|null|none)$/i;
const PLACEHOLDER_SHAPES = [
  /^<.*>$/,
  /^\$\{.*\}$/,
  /^your[-_ ]/i,
  /changeme|change[-_]me/i,
  /(^|[-_])(here|placeholder)([-_]|$)/i,
  /secure[-_]random[-_]password/i,
  /^(production|local|secure)[-_](anon|service|jwt|grafana)/i,
  /insecure/i,
  /^(.)\1+$/,
];

export const MIN_LENGTH: Partial<Record<ClientSecretKey, number>> = Object.fromEntries(
  JWT_SECRET_KEYS.map((k) => [k, 32]),
);
export const DEFAULT_MIN_LENGTH = 16;
const isApiKey = (k: string): k is ApiKeyName => (JWT_KEYS as readonly string[]).includes(k);

export interface GateProblem {
  key: string;
  reason: string;
}

/** Problems with one value, by its own merits (no cross-key checks). */
export function valueProblem(key: string, value: string | undefined): string | undefined {
  if (!value) return "is empty";
  if (PUBLISHED_VALUES.has(value)) return "is a published default (Supabase's self-hosting example)";
  if (PLACEHOLDER_WORDS.test(value) || PLACEHOLDER_SHAPES.some((r) => r.test(value)))
    return "is a placeholder or default value";
  if (isApiKey(key)) return undefined; // JWTs are checked by signature and claims
  const min = MIN_LENGTH[key as ClientSecretKey] ?? DEFAULT_MIN_LENGTH;
  if (value.length < min) return `is too short (${value.length} characters, need at least ${min})`;
  if (new Set(value).size < 8) return "has too little variety (fewer than 8 distinct characters)";
  return undefined;
}

/** Which secrets an environment uses: the shared ones, its own database password, JWT secret and API keys. */
export function keysFor(env: EnvName): ClientSecretKey[] {
  const own = [`DB_PASSWORD_${env.toUpperCase()}`, jwtSecretOf(env), anonKeyOf(env), serviceKeyOf(env)];
  return CLIENT_SECRET_KEYS.filter(
    (k) => !/^(DB_PASSWORD|JWT_SECRET|ANON_KEY|SERVICE_ROLE_KEY)_/.test(k) || own.includes(k),
  );
}

export async function gateProblems(
  secrets: Partial<ClientSecrets>,
  envs: EnvName[] = GATED_ENVIRONMENTS,
  now = Math.floor(Date.now() / 1000),
): Promise<GateProblem[]> {
  const problems: GateProblem[] = [];
  const has = (k: string) => problems.some((p) => p.key === k);
  const keys = [...new Set(envs.flatMap(keysFor))];
  for (const k of keys) {
    const p = valueProblem(k, secrets[k]);
    if (p) problems.push({ key: k, reason: p });
  }
  for (const env of envs) {
    const anon = anonKeyOf(env),
      service = serviceKeyOf(env),
      jwtKey = jwtSecretOf(env);
    if (secrets[anon] && secrets[anon] === secrets[service])
      problems.push({ key: service, reason: `is identical to ${anon} (the service key would be public)` });
    // Another environment's secret (dev's is in every dev app's env file) must not sign this one's keys.
    const jwt = secrets[jwtKey];
    const twin = ENVIRONMENTS.find((o) => o !== env && jwt && secrets[jwtSecretOf(o)] === jwt);
    if (twin && !has(jwtKey))
      problems.push({
        key: jwtKey,
        reason: `is identical to ${jwtSecretOf(twin)} (a key signed for ${twin} would verify in ${env})`,
      });
    if (jwt && !PUBLISHED_JWT_SECRETS.includes(jwt)) {
      for (const k of [anon, service]) {
        const token = secrets[k];
        if (!token || has(k)) continue;
        const sig = token.split(".")[2] ?? "";
        if (PUBLISHED_SIGNATURES.has(sig)) {
          problems.push({ key: k, reason: "is a published default (Supabase's demo key)" });
          continue;
        }
        if (decodeClaims(token)?.iss === "supabase-demo") {
          problems.push({ key: k, reason: "is a demo key (iss supabase-demo)" });
          continue;
        }
        const check = await verifyApiKey(token, jwt, API_KEY[k].role, now);
        if (!check.ok)
          problems.push({
            key: k,
            reason: (check.problem ?? "does not verify").replace(/against JWT_SECRET$/, `against ${jwtKey}`),
          });
        else if ((check.exp ?? 0) <= now) problems.push({ key: k, reason: "has expired" });
      }
    } else if (jwt) {
      for (const k of [anon, service])
        if (secrets[k] && !has(k)) problems.push({ key: k, reason: "is signed with a published JWT secret" });
    }
  }
  // The same value under two names: rotating one would silently leave the other behind.
  const seen = new Map<string, string>();
  for (const k of keys) {
    const v = secrets[k];
    if (!v || isApiKey(k)) continue;
    if (seen.has(v) && !has(k)) problems.push({ key: k, reason: `is identical to ${seen.get(v)}` });
    else seen.set(v, k);
  }
  return problems;
}

/** Throw naming every offending key (values are never shown). */
export async function enforceGate(
  secrets: Partial<ClientSecrets>,
  secretsFile: string,
  envs: EnvName[] = GATED_ENVIRONMENTS,
): Promise<void> {
  const problems = await gateProblems(secrets, envs);
  if (problems.length === 0) return;
  throw new ToolkitError(
    "INSECURE_SECRET",
    `${envs.join(" and ")} refuse to deploy: ${problems.map((p) => `${p.key} ${p.reason}`).join("; ")}`,
    `delete the offending line(s) from ${secretsFile} and re-run to generate strong values, or ROTATE=<key>`,
  );
}
