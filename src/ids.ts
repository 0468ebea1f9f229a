import {usageError} from './errors.js'

/** Release and snapshot ids: 14-digit UTC timestamps (Capistrano's form), YYYYMMDDHHMMSS. */
export const ID_PATTERN = /^\d{14}$/

export function formatId(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').slice(0, 14)
}

/** A fresh id, strictly after every id already used on this target (ids stay unique per target). */
export function newId(existing: Iterable<string>, now = new Date()): string {
  let candidate = formatId(now)
  let latest = ''
  for (const id of existing) if (id > latest) latest = id
  if (latest && candidate <= latest) candidate = formatId(new Date(idToDate(latest).getTime() + 1000))
  return candidate
}

export function idToDate(id: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(id)
  if (!m) throw usageError(`"${id}" is not a release id`)
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]))
}

/**
 * Checks that `input` is a well-formed release id (14 digits, a real UTC date-time); whether that
 * release can be reached is the caller's question. `hint` says what to pass instead.
 */
export function parseId(input: string, flag = '--to', hint = 'Run `hotctl backups` to list the releases.'): string {
  if (!ID_PATTERN.test(input)) {
    throw usageError(`${flag} "${input}" is not a release id (expected 14 digits, YYYYMMDDHHMMSS UTC)`, hint)
  }
  const date = idToDate(input)
  if (Number.isNaN(date.getTime()) || formatId(date) !== input) {
    throw usageError(`${flag} "${input}" is not a valid date-time`, hint)
  }
  return input
}

export function relativeTime(id: string, now = Date.now()): string {
  const s = Math.round((now - idToDate(id).getTime()) / 1000)
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.round(s / 60)}m ago`
  if (s < 86400) return `${Math.round(s / 3600)}h ago`
  return `${Math.round(s / 86400)}d ago`
}
