import type {NotifySpec} from '../config/schema.js'
import {parseDuration} from '../durations.js'
import {errorMessage} from '../errors.js'
import {redactValue} from '../secrets.js'
import {request} from '../service/http.js'
import type {NotificationBody} from './event.js'

/** How one webhook took it. `url` is the origin only: a webhook's path often is its secret (Slack). */
export interface Delivery {
  url: string
  ok: boolean
  status?: number
  error?: string
}

/** Posts the body to every webhook subscribed to its event, concurrently; never throws. */
export async function deliver(hooks: NotifySpec[], body: NotificationBody): Promise<Delivery[]> {
  const wanted = hooks.filter((h) => h.on.includes(body.event))
  return Promise.all(wanted.map((h) => post(h, body)))
}

async function post(hook: NotifySpec, body: NotificationBody): Promise<Delivery> {
  const url = new URL(hook.url).origin
  try {
    const r = await request({
      url: hook.url,
      method: 'POST',
      headers: {'content-type': 'application/json', ...hook.headers},
      body: JSON.stringify(redactValue(body)),
      timeoutMs: parseDuration(hook.timeout, 'notify.timeout'),
      retries: 1,
    })
    return r.status >= 200 && r.status < 300
      ? {url, ok: true, status: r.status}
      : {url, ok: false, status: r.status, error: `HTTP ${r.status}`}
  } catch (err) {
    // The message names the full URL: keep only why.
    return {url, ok: false, error: errorMessage(err).replace(/^\S+ \S+: /, '')}
  }
}
