/**
 * Values that came from the environment through `${VAR}` in the config (tokens in headers, env
 * values). Everything hotctl prints, logs or journals passes through `redact`, so they never leak.
 */
const secrets = new Set<string>()

export function registerSecret(value: string): void {
  if (value.length >= 4) secrets.add(value)
}

export function redact(text: string): string {
  let out = text
  for (const s of secrets) out = out.split(s).join('***')
  return out
}

/** Deep copy of a JSON-able value with every registered secret masked. */
export function redactValue<T>(value: T): T {
  if (secrets.size === 0) return value
  return JSON.parse(redact(JSON.stringify(value))) as T
}
