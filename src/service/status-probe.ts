import type {ServiceSpec} from '../config/resolve.js'
import type {StatusSpec} from '../config/schema.js'
import {parseDuration} from '../durations.js'
import {redact} from '../secrets.js'
import type {PreflightItem} from '../target/target.js'
import {atPath, request} from './http.js'

/**
 * Asks a service's status URL once, before anything is touched: a URL that answers HTML, or JSON
 * without the configured version field, could never confirm a release, so the deploy would only
 * find out after changing the target.
 */
export async function probeStatus(
  svc: ServiceSpec & {status: StatusSpec},
  signal?: AbortSignal,
): Promise<PreflightItem> {
  const s = svc.status
  const name = `status of ${svc.name}`
  const fix = `Check reload.status.url and reload.status.version (now "${s.version}") in the config, and that the service is running.`
  try {
    const timeoutMs = parseDuration(s.timeout, 'reload.status.timeout')
    const res = await request({url: s.url, method: s.method, headers: s.headers, timeoutMs, retries: 0}, {signal})
    const problem = describeProblem(res.status, res.text, res.json, s.version)
    if (problem) return {name, ok: false, detail: redact(`${s.method} ${s.url} ${problem}`), hint: fix}
    const v = atPath(res.json, s.version)
    return {
      name,
      ok: true,
      detail: redact(`${s.url} reports ${v === null ? 'no release yet (null)' : `version ${JSON.stringify(v)}`}`),
    }
  } catch (err) {
    return {name, ok: false, detail: redact(`${s.method} ${s.url}: no answer (${(err as Error).message})`), hint: fix}
  }
}

/** What is wrong with a status answer, in words, or '' when it carries the version field. */
export function describeProblem(status: number, text: string, json: unknown, versionPath: string): string {
  const head = text.trim().slice(0, 120).replace(/\s+/g, ' ')
  if (status >= 400) return `answered HTTP ${status}: ${head}`
  if (json === undefined)
    return /^<|<html/i.test(text.trim())
      ? `answered HTML, not JSON: ${head}`
      : `answered text, not JSON: ${JSON.stringify(head)}`
  if (atPath(json, versionPath) === undefined) {
    const shown = JSON.stringify(json)
    return `answered JSON with no field \`${versionPath}\` in ${shown.length > 160 ? `${shown.slice(0, 160)}…` : shown}`
  }
  return ''
}
