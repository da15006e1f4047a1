/**
 * Supabase API keys are HS256 JWTs signed with the stack's JWT secret
 * (claims role, iss, iat, exp), as its self-hosting guide describes. jose
 * does the signing and verification: no hand-rolled crypto.
 */
import { jwtVerify, SignJWT } from "jose";

export type ApiRole = "anon" | "service_role";

export async function signApiKey(secret: string, role: ApiRole, opts: { iss?: string; years?: number; now?: number } = {}): Promise<string> {
  const iat = Math.floor((opts.now ?? Date.now()) / 1000);
  const exp = iat + Math.round((opts.years ?? 5) * 365.25 * 24 * 3600);
  return new SignJWT({ role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(opts.iss ?? "supabase")
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));
}

export async function verifyApiKey(secret: string, token: string) {
  const { payload } = await jwtVerify(token, new TextEncoder().encode(secret), { algorithms: ["HS256"] });
  return payload as { role?: string; iss?: string; iat?: number; exp?: number };
}
