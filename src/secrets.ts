/**
 * Values that came from the environment through `${VAR}` in the config (tokens in headers, env
 * values). Everything hotctl prints, logs or journals passes through `redact`, so they never leak.
 *
 * Masking is by substring, so it must not eat hotctl's own data: release ids and timestamps are
 * left whole (a secret "2026" must not turn release 20261121… into ***1121…).
 */
const secrets = new Set<string>()

/** Generated tokens no secret is ever masked inside: 14-digit ids and ISO timestamps. */
const OWN_TOKENS = /(\d{14}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)/

export function registerSecret(value: string): void {
  if (value.length >= 4) secrets.add(value)
}

export function redact(text: string): string {
  if (secrets.size === 0) return text
  return text
    .split(OWN_TOKENS)
    .map((part, i) => (i % 2 === 1 ? part : maskAll(part)))
    .join('')
}

function maskAll(text: string): string {
  let out = text
  for (const s of secrets) out = out.split(s).join('***')
  return out
}

/** Deep copy of a JSON-able value with every registered secret masked in its strings. */
export function redactValue<T>(value: T): T {
  if (secrets.size === 0) return value
  return JSON.parse(JSON.stringify(value), (_k, v: unknown) => (typeof v === 'string' ? redact(v) : v)) as T
}
