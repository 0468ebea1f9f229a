import {redact} from '../secrets.js'
import {showHeaders, verbose} from '../ui/verbose.js'
import {formatDuration} from '../ui/format.js'

export interface HttpResult {
  status: number
  text: string
  json?: unknown
}

export interface HttpRequest {
  url: string
  method: string
  headers: Record<string, string>
  body?: string
  timeoutMs: number
  retries: number
}

/** No answer at all: `refused` when the connection failed (refused, reset), `timeout` when none came in time. */
export class NoAnswerError extends Error {
  constructor(
    message: string,
    readonly reason: 'refused' | 'timeout' | 'interrupted',
  ) {
    super(message)
    this.name = 'NoAnswerError'
  }
}

/** Waits `ms`, or less when `signal` aborts; its abort listener goes when it ends (a poll loop makes many). */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve()
    const done = () => {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const t = setTimeout(done, ms)
    signal?.addEventListener('abort', done, {once: true})
  })

/**
 * One HTTP request with a per-try timeout, retried (with backoff) on network errors and on
 * the statuses in `retryOn` (5xx always). Returns the last answer; throws only when none came.
 */
export async function request(
  req: HttpRequest,
  opts: {signal?: AbortSignal; retryOn?: number[]} = {},
): Promise<HttpResult> {
  let lastError = ''
  let reason: NoAnswerError['reason'] = 'refused'
  let last: HttpResult | undefined
  for (let attempt = 0; attempt <= req.retries; attempt++) {
    if (attempt > 0) await sleep(Math.min(250 * 2 ** (attempt - 1), 2000), opts.signal)
    if (opts.signal?.aborted) throw new NoAnswerError('interrupted', 'interrupted')
    try {
      const signals = [AbortSignal.timeout(req.timeoutMs), ...(opts.signal ? [opts.signal] : [])]
      verbose(
        `HTTP ${req.method} ${req.url}${showHeaders(req.headers)}${req.body ? ` (${req.body.length} byte body)` : ''}`,
      )
      const res = await fetch(req.url, {
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal: AbortSignal.any(signals),
      })
      const text = await res.text()
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      last = {status: res.status, text, json}
      verbose(`HTTP ${req.method} ${req.url} → ${res.status} (${text.length} bytes)`)
      if (res.status < 500 && !(opts.retryOn ?? []).includes(res.status)) return last
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError'
      reason = timedOut ? 'timeout' : opts.signal?.aborted ? 'interrupted' : 'refused'
      verbose(`HTTP ${req.method} ${req.url} → no answer (${(err as Error).message})`)
      lastError = timedOut
        ? `no answer within ${formatDuration(req.timeoutMs)}`
        : ((err as Error & {cause?: Error}).cause?.message ?? (err as Error).message)
    }
  }
  if (last) return last
  throw new NoAnswerError(redact(`${req.method} ${req.url}: ${lastError}`), reason)
}

/** Value at a dot path ("data.version") of a JSON document. */
export function atPath(doc: unknown, dotPath: string): unknown {
  let cur = doc
  for (const key of dotPath.split('.').filter(Boolean)) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur
}

/** Does `actual` contain everything in `expected` (objects by key, arrays element-wise, leaves by equality)? */
export function isSubset(expected: unknown, actual: unknown): boolean {
  if (expected === null || typeof expected !== 'object') return expected === actual
  if (Array.isArray(expected)) return Array.isArray(actual) && expected.every((e, i) => isSubset(e, actual[i]))
  if (actual === null || typeof actual !== 'object') return false
  return Object.entries(expected).every(([k, v]) => isSubset(v, (actual as Record<string, unknown>)[k]))
}
