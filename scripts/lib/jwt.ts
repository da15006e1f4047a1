/**
 * Supabase API keys are HS256 JWTs signed with the stack's JWT secret
 * (claims role, iss, iat, exp), as its self-hosting guide describes. jose
 * does the signing and verification: no hand-rolled crypto. Used by the
 * docker runtime (compose env) and deploy-client (bundle, gate, health).
 */
import { SignJWT, decodeJwt, jwtVerify } from "jose";

export const JWT_ISSUER = "supabase";
/**
 * Supabase's generate-keys.sh signs the API keys for 5 years; a leaked key
 * would stay good that long. Ours default to one year (API_KEY_TTL_DAYS,
 * validated 1-1825 days) and are re-issued whenever the secret rotates.
 */
export const DEFAULT_API_KEY_TTL_DAYS = 365;
export const apiKeyLifetimeS = (days: number) => days * 24 * 3600;
export const JWT_LIFETIME_S = apiKeyLifetimeS(DEFAULT_API_KEY_TTL_DAYS);

const secretKey = (secret: string) => new TextEncoder().encode(secret);

export async function signApiKey(
  secret: string,
  role: string,
  iat = Math.floor(Date.now() / 1000),
  lifetimeS = JWT_LIFETIME_S,
): Promise<string> {
  return new SignJWT({ role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(JWT_ISSUER)
    .setIssuedAt(iat)
    .setExpirationTime(iat + lifetimeS)
    .sign(secretKey(secret));
}

export interface KeyCheck {
  ok: boolean;
  role?: string;
  iss?: string;
  exp?: number;
  problem?: string;
}

/** Does `token` verify against `secret` (HS256 only) and carry the expected role, issuer and a future expiry? */
export async function verifyApiKey(
  token: string,
  secret: string,
  role: string,
  now = Math.floor(Date.now() / 1000),
): Promise<KeyCheck> {
  try {
    const { payload } = await jwtVerify(token, secretKey(secret), {
      algorithms: ["HS256"],
      currentDate: new Date(now * 1000),
    });
    const out: KeyCheck = { ok: true, role: payload.role as string, iss: payload.iss, exp: payload.exp };
    if (payload.role !== role)
      return { ...out, ok: false, problem: `role claim is ${JSON.stringify(payload.role)}, expected ${role}` };
    if (payload.iss !== JWT_ISSUER)
      return { ...out, ok: false, problem: `iss claim is ${JSON.stringify(payload.iss)}, expected ${JWT_ISSUER}` };
    if (typeof payload.exp !== "number") return { ...out, ok: false, problem: "has no exp claim" };
    if (typeof payload.iat !== "number") return { ...out, ok: false, problem: "has no iat claim" };
    return out;
  } catch (e) {
    const msg = (e as Error).message;
    return { ok: false, problem: /signature/i.test(msg) ? "signature does not verify against JWT_SECRET" : msg };
  }
}

export const decodeClaims = (token: string) => {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
};
