/**
 * Secrets must never reach a log. Every line we print or write goes through
 * redact(): registered secret values, and whatever sits where a password
 * goes (URLs' user:pass@, libpq's password=, PGPASSWORD=, HTTP Basic auth),
 * are masked. loadConfig registers every secret it reads, so redaction does
 * not depend on which module happened to call ensureSecrets.
 */
const secretValues = new Set<string>();

/** Values this short would mask parts of ordinary words: they are masked only as whole tokens. */
const SHORT = 4;

export function registerSecret(value: string | undefined): void {
  if (value) secretValues.add(value);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export function redact(text: string): string {
  let out = text
    // scheme://user:password@host: greedy up to the authority's last '@', so a password holding '@' is
    // masked whole; a '/' ends the authority (an '@' in a path or query is not a password's end).
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)([^\s/]+)(@[^@\s/]*)/gi, "$1***$3")
    // libpq keyword/value: password=secret or password='quoted \' secret'
    .replace(/\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"]+)/gi, "$1***")
    // environment assignments: PGPASSWORD=..., FOO_PASSWORD=..., also quoted
    .replace(/\b([A-Z0-9_]*PASSWORD=)("[^"]*"|'[^']*'|\S+)/g, "$1***")
    // HTTP Basic auth header
    .replace(/\b(Authorization:\s*Basic\s+)[A-Za-z0-9+/=._~-]+/gi, "$1***");
  // Longest first, so a secret that contains another is masked whole.
  for (const s of [...secretValues].sort((a, b) => b.length - a.length)) {
    if (s.length >= SHORT) out = out.split(s).join("***");
    else out = out.replace(new RegExp(`(?<![A-Za-z0-9])${escapeRe(s)}(?![A-Za-z0-9])`, "g"), "***");
  }
  return out;
}
