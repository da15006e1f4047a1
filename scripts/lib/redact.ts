/**
 * Secrets must never reach a log. Every line we print or write goes through
 * redact(): registered secret values, and whatever sits where a password
 * goes (URLs' user:pass@, libpq's password=, PGPASSWORD=, HTTP Basic auth),
 * are masked. The redactor registers the current stack's secrets file
 * (envs/.secrets.<STACK>.env) itself on first use, so masking never depends on
 * which module happened to call ensureSecrets or loadConfig first.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";

const secretValues = new Set<string>();
const ROOT = resolve(import.meta.dir, "../..");
let stackLoaded: string | undefined;

/**
 * Register every value of the current stack's secrets file (once per stack
 * name; a missing or unreadable file is skipped).
 */
export function registerStackSecrets(stack = process.env.STACK ?? "dev", rootDir = ROOT): void {
  const key = `${rootDir}\0${stack}`;
  if (stackLoaded === key || !/^[a-z][a-z0-9-]{0,30}$/.test(stack)) return;
  stackLoaded = key;
  try {
    for (const v of Object.values(parseDotenv(readFileSync(join(rootDir, "envs", `.secrets.${stack}.env`)))))
      registerSecret(v);
  } catch {
    // no secrets yet (a fresh stack) or not ours to read: the patterns below still mask what sits where a password goes
  }
}

/** Values this short would mask parts of ordinary words: they are masked only as whole tokens. */
const SHORT = 4;

export function registerSecret(value: string | undefined): void {
  if (value) secretValues.add(value);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export function redact(text: string): string {
  registerStackSecrets();
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
