import {usageError} from './errors.js'

/** "60s", "500ms", "2m", "1h" or a bare number of seconds → milliseconds. */
export function parseDuration(value: string | number, field: string): number {
  if (typeof value === 'number') return value * 1000
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value)
  if (!m) throw usageError(`${field}: "${value}" is not a duration`, 'Use e.g. 500ms, 30s, 2m or a number of seconds.')
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  return n * {ms: 1, s: 1000, m: 60_000, h: 3_600_000}[unit]!
}
