/**
 * SCRAM-SHA-256 verifiers computed here, as psql's \password does: the server
 * only ever receives the verifier, so the plain password cannot end up in the
 * Postgres log, pg_stat_activity or a replica's WAL.
 * Format (RFC 5803, as stored in pg_authid.rolpassword):
 *   SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";

export const SCRAM_ITERATIONS = 4096; // Postgres' default (scram_iterations)

export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = SCRAM_ITERATIONS): string {
  // SASLprep is the identity for the ASCII passwords we generate; refuse anything else rather than guess.
  if (!/^[\x21-\x7e]+$/.test(password)) throw new Error("scramVerifier: only printable ASCII passwords are supported");
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

/** Does `password` match a stored verifier? (used by unit tests and the idempotent re-run check) */
export function scramMatches(password: string, verifier: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (!m) return false;
  return scramVerifier(password, Buffer.from(m[2]!, "base64"), Number(m[1])) === verifier;
}
