import {usageError} from '../errors.js'
import {type FileCounts, operations, type OpResult} from '../state/journal.js'
import type {OpContext} from './context.js'

/** One operation as `hotctl log` shows it, from its journal records. */
export interface LogEntry {
  id: string
  op: 'deploy' | 'rollback' | 'recover'
  /** When it started (ISO time). */
  time: string
  user: string
  host: string
  /** The command line as typed (secrets masked when it was journaled). */
  command: string
  /** The release it deployed or restored (null: the tree from before hotctl). */
  release: string | null
  /** The release that was live before it. */
  from: string | null
  /** `unfinished`: no end record (running now, or killed and not yet recovered). */
  result: OpResult | 'unfinished'
  exitCode: number | null
  durationMs: number | null
  files: FileCounts | null
  error: string | null
}

export interface LogResult {
  exitCode: number
  /** Newest first. */
  operations: LogEntry[]
  /** Operations in the journal before `limit` and `since` applied. */
  total: number
}

/** `hotctl log`: every journaled operation, newest first; `since` and `limit` narrow it. */
export async function operationLog(ctx: OpContext, opts: {limit?: number; since?: Date}): Promise<LogResult> {
  const all = operations(await ctx.target.state.read()).map((o): LogEntry => ({
    id: o.opId,
    op: o.op,
    time: o.start.t,
    user: o.start.user,
    host: o.start.host,
    command: ['hotctl', ...o.start.argv].join(' '),
    release: o.start.release ?? null,
    from: o.start.from ?? null,
    result: o.end?.result ?? 'unfinished',
    exitCode: o.end?.exitCode ?? null,
    durationMs: o.end?.durationMs ?? null,
    files: o.end?.files ?? null,
    error: o.end?.error ?? null,
  }))
  const since = opts.since?.getTime()
  const picked = all.filter((e) => since === undefined || Date.parse(e.time) >= since).reverse()
  return {exitCode: 0, operations: opts.limit === undefined ? picked : picked.slice(0, opts.limit), total: all.length}
}

const DAY_MS = 86_400_000
const AGO_UNITS: Record<string, number> = {m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS}

/**
 * `--since`: a time (`2026-11-22`, `2026-11-22T18:00`, any ISO 8601) or how long ago (`30m`,
 * `12h`, `7d`, `2w`). A date without a zone is UTC, as the journal's times are.
 */
export function parseSince(text: string, now = Date.now()): Date {
  const ago = /^\s*(\d+)\s*([mhdw])\s*$/.exec(text)
  if (ago) return new Date(now - Number(ago[1]) * AGO_UNITS[ago[2]!]!)
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const zoned = /(?:Z|[+-]\d{2}:?\d{2})$/.test(text) || !text.includes('T') ? text : `${text}Z`
    const t = Date.parse(zoned)
    if (!Number.isNaN(t)) return new Date(t)
  }
  throw usageError(
    `--since: "${text}" is neither a time nor a duration`,
    'Use a time such as 2026-11-22 or 2026-11-22T18:00Z, or how long ago: 30m, 12h, 7d, 2w.',
  )
}
