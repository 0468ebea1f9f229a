import type {ServiceSpec} from '../config/resolve.js'
import type {StatusSpec} from '../config/schema.js'
import {parseDuration} from '../durations.js'
import type {Interrupt} from '../interrupt.js'
import {atPath, request} from './http.js'
import {describeCommand, type ServiceRunner} from './run-command.js'

const httpOf = (spec: {url: string; method: string; headers: Record<string, string>; timeout: string | number; retries: number}, field: string) => ({
  url: spec.url,
  method: spec.method,
  headers: spec.headers,
  timeoutMs: parseDuration(spec.timeout, field),
  retries: spec.retries,
})

/**
 * Asks one service to hot-reload: an HTTP call (retried; 409 = tree not yet consistent) or a command.
 * `short`: after an interrupt, with the short limits of src/interrupt.ts.
 */
export async function triggerReload(
  svc: ServiceSpec,
  opts: {run: ServiceRunner; env: Record<string, string>; signal?: AbortSignal; short?: Interrupt},
): Promise<string> {
  const t = svc.trigger
  if (!t) return 'no trigger configured (the service watches by itself)'
  if ('command' in t) {
    const r = await opts.run(t.command, {env: opts.env, signal: opts.signal, timeoutMs: opts.short?.shortCommandMs()})
    const how = r.timedOut ? 'timed out' : r.canceled ? 'was stopped' : `failed (exit ${r.exitCode})`
    if (!r.ok) throw new Error(`reload trigger \`${describeCommand(t.command)}\` ${how}:\n${r.tail}`)
    return 'trigger command ran'
  }
  const req = httpOf(t, `reload.trigger.timeout`)
  const res = await request(opts.short ? opts.short.shortHttp(req) : req, {signal: opts.signal, retryOn: [409]})
  if (res.status >= 400) throw new Error(`reload trigger ${t.method} ${t.url} answered ${res.status}: ${res.text.slice(0, 300)}`)
  return `trigger answered ${res.status}`
}

/** The release id the service reports, or an explanation of why it reports none. */
export async function reportedVersion(status: StatusSpec, signal?: AbortSignal): Promise<{version: string | null; raw?: unknown; error?: string}> {
  try {
    const res = await request(httpOf(status, 'reload.status.timeout'), {signal})
    if (res.status >= 400) return {version: null, error: `status answered ${res.status}`}
    const v = atPath(res.json, status.version)
    return {version: v === undefined || v === null ? null : String(v), raw: res.json}
  } catch (err) {
    return {version: null, error: (err as Error).message}
  }
}

/**
 * Polls every service's status until each reports `expected`, or the time is up. Returns the
 * services that never did, with what they last said.
 */
export async function waitForVersion(services: ServiceSpec[], expected: string, timeoutMs: number, signal?: AbortSignal): Promise<{name: string; last: string}[]> {
  const deadline = Date.now() + timeoutMs
  const pending = new Map(services.filter((s) => s.status).map((s) => [s.name, {svc: s, last: 'no answer yet'}]))
  while (pending.size > 0) {
    await Promise.all(
      [...pending].map(async ([name, p]) => {
        const r = await reportedVersion(p.svc.status!, signal)
        if (r.version === expected) pending.delete(name)
        else p.last = r.error ?? `reports version ${JSON.stringify(r.version)}`
      }),
    )
    if (pending.size === 0 || Date.now() >= deadline || signal?.aborted) break
    await new Promise((r) => setTimeout(r, Math.min(250, Math.max(0, deadline - Date.now()))))
  }
  return [...pending].map(([name, p]) => ({name, last: p.last}))
}
