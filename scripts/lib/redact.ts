/**
 * Secrets must never reach a log. Every line we print or write goes through
 * redact(): registered secret values and passwords inside URLs are masked.
 */
const secretValues = new Set<string>();

export function registerSecret(value: string | undefined): void {
  // Short values would mask ordinary words; generated secrets are long.
  if (value && value.length >= 8) secretValues.add(value);
}

export function redact(text: string): string {
  let out = text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)([^@\s]+)(@)/g, "$1***$3");
  for (const s of secretValues) out = out.split(s).join("***");
  return out;
}
