import {EXIT, errorMessage, HotctlError} from '../errors.js'
import type {OpContext} from '../pipeline/context.js'
import type {FileCounts} from '../state/journal.js'
import {eventOf, notificationBody, type OutcomeFacts} from './event.js'
import {deliver, type Delivery} from './webhook.js'

/** A deploy's or rollback's result, as far as a notification reads it. */
interface Outcome {
  exitCode: number
  outcome: string
  release?: string | null
  previousRelease?: string | null
  from?: string | null
  error?: string
  durationMs: number
  plan?: {changes: FileCounts}
  written?: number
  removed?: number
}

/**
 * Runs a deploy or rollback, then tells the configured webhooks how it ended (`notify:`), thrown
 * failures included. A webhook that fails never changes the outcome: it is reported (a warning on
 * stderr, and `notifications` in the result).
 */
export async function withNotify<R extends Outcome>(
  ctx: OpContext,
  command: 'deploy' | 'rollback',
  run: () => Promise<R>,
): Promise<R & {notifications?: Delivery[]}> {
  const hooks = ctx.config.notify ?? []
  if (hooks.length === 0) return run()
  const started = Date.now()
  const previous = (await ctx.target.readMarker().catch(() => null))?.id ?? null
  let result: R
  try {
    result = await run()
  } catch (err) {
    await tell(ctx, command, {
      exitCode: err instanceof HotctlError ? err.exitCode : EXIT.failed,
      outcome: 'failed',
      release: null,
      previousRelease: previous,
      error: errorMessage(err),
      durationMs: Date.now() - started,
    })
    throw err
  }
  const notifications = await tell(ctx, command, result)
  return notifications ? {...result, notifications} : result
}

async function tell(ctx: OpContext, command: 'deploy' | 'rollback', r: Outcome): Promise<Delivery[] | undefined> {
  const event = eventOf(r)
  if (!event) return undefined
  const {host} = await ctx.target.identity().catch(() => ({host: ''}))
  const facts: OutcomeFacts = {
    command,
    outcome: r.outcome,
    exitCode: r.exitCode,
    release: r.release ?? null,
    previousRelease: r.previousRelease ?? r.from ?? null,
    durationMs: r.durationMs,
    target: ctx.target.description,
    hosts: host ? [host] : [],
    error: r.error ?? null,
    changes:
      r.plan?.changes ?? (r.written === undefined ? null : {added: 0, changed: r.written, deleted: r.removed ?? 0}),
  }
  const deliveries = await deliver(ctx.config.notify, notificationBody(facts, event))
  for (const d of deliveries.filter((x) => !x.ok))
    ctx.ui.say(`hotctl: warning: notify ${d.url} failed (${d.error}); the ${command}'s outcome stands`)
  return deliveries
}
