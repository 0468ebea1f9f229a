/**
 * Values that came from the environment through `${VAR}` in the config (tokens in headers, env
 * values). Everything hotctl prints, logs or journals passes through `redact`, so they never leak.
 *
 * Masking is by substring, so it must not eat hotctl's own data: release ids and timestamps are
 * left whole (a secret "2026" must not turn release 20261121… into ***1121…).
 */
const secrets = new Set<string>()

/** Generated tokens no secret is ever masked inside: 14-digit ids and ISO timestamps. */
const OWN_TOKENS = /\d{14}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g

export function registerSecret(value: string): void {
  if (value.length >= 4) secrets.add(value)
}

/** Masks every occurrence of a secret, except one lying wholly inside an id or timestamp. */
export function redact(text: string): string {
  if (secrets.size === 0) return text
  const own = [...text.matchAll(OWN_TOKENS)].map((m) => [m.index!, m.index! + m[0].length] as const)
  const spans: [number, number][] = []
  for (const s of secrets) {
    for (let i = text.indexOf(s); i !== -1; i = text.indexOf(s, i + 1)) {
      const end = i + s.length
      if (!own.some(([a, b]) => a <= i && end <= b)) spans.push([i, end])
    }
  }
  if (spans.length === 0) return text
  spans.sort((a, b) => a[0] - b[0])
  let out = ''
  let at = 0
  for (const [a, b] of spans) {
    if (b <= at) continue
    out += `${text.slice(at, Math.max(a, at))}***`
    at = b
  }
  return out + text.slice(at)
}

/** Fields holding hotctl's own vocabulary (outcomes, ops, phases), never user text: left whole. */
const OWN_FIELDS = new Set([
  'command',
  'outcome',
  'result',
  'op',
  'phase',
  'reason',
  'kind',
  'fileType',
  'code',
  'event',
])

/** Deep copy of a JSON-able value with every registered secret masked in its strings. */
export function redactValue<T>(value: T): T {
  if (secrets.size === 0) return value
  return JSON.parse(JSON.stringify(value), (k, v: unknown) =>
    typeof v === 'string' && !OWN_FIELDS.has(k) ? redact(v) : v,
  ) as T
}
