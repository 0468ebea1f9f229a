import type {SmokeHttpSpec, SmokeSpec} from '../config/schema.js'
import {parseDuration} from '../durations.js'
import type {Interrupt} from '../interrupt.js'
import {isSubset, request} from './http.js'
import {describeCommand, type ServiceRunner} from './run-command.js'

export interface SmokeResult {
  name: string
  ok: boolean
  detail: string
  /** Not run (or stopped) because the operator interrupted a restore: neither passed nor failed. */
  skipped?: boolean
}

/**
 * One smoke check: an HTTP expectation or a command, each with its timeout and retries; `signal`
 * cancels it. In a restore, pass the operator's `interrupt` instead: it cuts the check short rather
 * than cancelling it. Once it has fired (before or during the check) an HTTP check runs (again) with
 * the short limits of src/interrupt.ts, and a command check is skipped (stopped if running): it may
 * take longer than the CI runner still allows.
 */
export async function runSmoke(
  spec: SmokeSpec,
  opts: {run: ServiceRunner; env: Record<string, string>; signal?: AbortSignal; interrupt?: Interrupt},
): Promise<SmokeResult> {
  const {interrupt} = opts
  const signal = interrupt?.signal ?? opts.signal
  if ('command' in spec) {
    if (interrupt?.fired) return skippedAfterInterrupt(spec.name)
    const r = await runCommandSmoke(spec, opts.run, opts.env, signal)
    return interrupt?.fired && r.canceled ? skippedAfterInterrupt(spec.name) : r.result
  }
  if (interrupt?.fired) return runHttpSmoke(spec, {short: interrupt})
  const r = await runHttpSmoke(spec, {signal})
  return !r.ok && interrupt?.fired ? runHttpSmoke(spec, {short: interrupt}) : r
}

const skippedAfterInterrupt = (name: string): SmokeResult => ({
  name,
  ok: false,
  skipped: true,
  detail: 'skipped: command checks are not run after an interrupt',
})

type SmokeCommandSpec = Extract<SmokeSpec, {command: unknown}>

async function runCommandSmoke(
  spec: SmokeCommandSpec,
  run: ServiceRunner,
  env: Record<string, string>,
  signal?: AbortSignal,
): Promise<{result: SmokeResult; canceled: boolean}> {
  let last = ''
  for (let attempt = 0; attempt <= spec.retries; attempt++) {
    const r = await run(spec.command, {
      env,
      on: spec.on,
      signal,
      timeoutMs: parseDuration(spec.timeout, `smoke.${spec.name}.timeout`),
    })
    if (r.ok)
      return {
        result: {name: spec.name, ok: true, detail: `\`${describeCommand(spec.command)}\` passed`},
        canceled: false,
      }
    const how = r.timedOut ? 'timed out' : r.canceled ? 'was stopped' : `exited ${r.exitCode}`
    last = `\`${describeCommand(spec.command)}\` ${how}:\n${r.tail}`
    if (r.canceled) return {result: {name: spec.name, ok: false, detail: last}, canceled: true}
  }
  return {result: {name: spec.name, ok: false, detail: last}, canceled: false}
}

async function runHttpSmoke(
  spec: SmokeHttpSpec,
  opts: {signal?: AbortSignal; short?: Interrupt},
): Promise<SmokeResult> {
  const headers = {...spec.headers}
  let body = spec.body
  if (spec.json !== undefined) {
    body = JSON.stringify(spec.json)
    headers['content-type'] ??= 'application/json'
  }
  const configured = {timeoutMs: parseDuration(spec.timeout, `smoke.${spec.name}.timeout`), retries: spec.retries}
  const {timeoutMs, retries} = opts.short ? opts.short.shortHttp(configured) : configured
  const {signal} = opts
  let detail = ''
  // Retries cover a service still settling after the reload: any unmet expectation is retried.
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 300 * attempt))
    if (signal?.aborted) break
    try {
      const res = await request({url: spec.url, method: spec.method, headers, body, timeoutMs, retries: 0}, {signal})
      detail = unmet(spec, res.status, res.text, res.json)
      if (!detail) return {name: spec.name, ok: true, detail: `${spec.method} ${spec.url} → ${res.status}`}
    } catch (err) {
      detail = (err as Error).message
    }
  }
  return {name: spec.name, ok: false, detail}
}

function unmet(spec: SmokeHttpSpec, status: number, text: string, json: unknown): string {
  const e = spec.expect
  if (status !== e.status)
    return `${spec.method} ${spec.url}: expected status ${e.status}, got ${status}: ${text.slice(0, 200)}`
  if (e.json !== undefined && !isSubset(e.json, json))
    return `${spec.method} ${spec.url}: body does not contain ${JSON.stringify(e.json)}: ${text.slice(0, 200)}`
  if (e.body !== undefined && !text.includes(e.body))
    return `${spec.method} ${spec.url}: body does not contain ${JSON.stringify(e.body)}`
  return ''
}
