import type {SmokeHttpSpec, SmokeSpec} from '../config/schema.js'
import {parseDuration} from '../durations.js'
import {isSubset, request} from './http.js'
import {describeCommand, runCommand} from './run-command.js'

export interface SmokeResult {
  name: string
  ok: boolean
  detail: string
}

/** One smoke check: an HTTP expectation or a command, each with its timeout and retries. */
export async function runSmoke(spec: SmokeSpec, opts: {cwd: string; env: Record<string, string>; signal?: AbortSignal}): Promise<SmokeResult> {
  if ('command' in spec) {
    let last = ''
    for (let attempt = 0; attempt <= spec.retries; attempt++) {
      const r = await runCommand(spec.command, {cwd: opts.cwd, env: opts.env, signal: opts.signal, timeoutMs: parseDuration(spec.timeout, `smoke.${spec.name}.timeout`)})
      if (r.ok) return {name: spec.name, ok: true, detail: `\`${describeCommand(spec.command)}\` passed`}
      last = `\`${describeCommand(spec.command)}\` ${r.timedOut ? 'timed out' : `exited ${r.exitCode}`}:\n${r.tail}`
      if (r.canceled) break
    }
    return {name: spec.name, ok: false, detail: last}
  }
  return runHttpSmoke(spec, opts.signal)
}

async function runHttpSmoke(spec: SmokeHttpSpec, signal?: AbortSignal): Promise<SmokeResult> {
  const headers = {...spec.headers}
  let body = spec.body
  if (spec.json !== undefined) {
    body = JSON.stringify(spec.json)
    headers['content-type'] ??= 'application/json'
  }
  const timeoutMs = parseDuration(spec.timeout, `smoke.${spec.name}.timeout`)
  let detail = ''
  // Retries cover a service still settling after the reload: any unmet expectation is retried.
  for (let attempt = 0; attempt <= spec.retries; attempt++) {
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
  if (status !== e.status) return `${spec.method} ${spec.url}: expected status ${e.status}, got ${status}: ${text.slice(0, 200)}`
  if (e.json !== undefined && !isSubset(e.json, json)) return `${spec.method} ${spec.url}: body does not contain ${JSON.stringify(e.json)}: ${text.slice(0, 200)}`
  if (e.body !== undefined && !text.includes(e.body)) return `${spec.method} ${spec.url}: body does not contain ${JSON.stringify(e.body)}`
  return ''
}
