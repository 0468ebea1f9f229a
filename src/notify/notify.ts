import type {NotifySpec} from '../config/schema.js'
import {EXIT, errorMessage, HotctlError} from '../errors.js'
import type {OpContext} from '../pipeline/context.js'
import type {FleetContext} from '../pipeline/fleet-hosts.js'
import type {FileCounts} from '../state/journal.js'
import type {Ui} from '../ui/ui.js'
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

/** A fleet deploy's or rollback's result: the fleet's outcome, and each host's. */
interface FleetOutcome extends Omit<Outcome, 'plan' | 'written' | 'removed'> {
  hosts: {name: string; previousRelease?: string | null; from?: string | null; result?: Outcome}[]
}

/** Who is told, and where the operation ran. */
interface Audience {
  hooks: NotifySpec[]
  ui: Ui
  target: string
  hosts: () => Promise<string[]>
  /** The release live before, asked before the operation runs (a thrown failure reports it). */
  previous: () => Promise<string | null>
}

type Facts = Omit<OutcomeFacts, 'command' | 'target' | 'hosts'>

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
  const audience: Audience = {
    hooks: ctx.config.notify ?? [],
    ui: ctx.ui,
    target: ctx.target.description,
    hosts: async () => {
      const {host} = await ctx.target.identity().catch(() => ({host: ''}))
      return host ? [host] : []
    },
    previous: async () => (await ctx.target.readMarker().catch(() => null))?.id ?? null,
  }
  return notifying(audience, command, run, factsOf)
}

/**
 * withNotify for a fleet: one notification for the whole fleet, its outcome and exit code, with
 * `hosts` naming every host of the run (after --limit), `previousRelease` the one release the hosts
 * held before (null when they differed or held none) and `changes` summed over the hosts.
 */
export async function withFleetNotify<R extends FleetOutcome>(
  fleet: FleetContext,
  command: 'deploy' | 'rollback',
  run: () => Promise<R>,
): Promise<R & {notifications?: Delivery[]}> {
  const audience: Audience = {
    hooks: fleet.config.notify ?? [],
    ui: fleet.ui,
    target: fleet.config.target,
    hosts: async () => fleet.config.hosts.map((h) => h.name),
    previous: async () => null, // not asked of every host up front; a thrown failure touched none
  }
  return notifying(audience, command, run, (r) => {
    const previous = [...new Set(r.hosts.map((h) => h.previousRelease ?? h.from ?? null))]
    const counts = r.hosts.map((h) => (h.result ? factsOf(h.result).changes : null)).filter((c) => c !== null)
    return {
      ...factsOf({...r, previousRelease: previous.length === 1 ? previous[0] : null}),
      changes: counts.length
        ? counts.reduce((a, c) => ({
            added: a.added + c.added,
            changed: a.changed + c.changed,
            deleted: a.deleted + c.deleted,
          }))
        : null,
    }
  })
}

async function notifying<R extends {exitCode: number; outcome: string}>(
  audience: Audience,
  command: 'deploy' | 'rollback',
  run: () => Promise<R>,
  facts: (r: R) => Facts,
): Promise<R & {notifications?: Delivery[]}> {
  if (audience.hooks.length === 0) return run()
  const started = Date.now()
  const previous = await audience.previous()
  let result: R
  try {
    result = await run()
  } catch (err) {
    await tell(audience, command, {
      exitCode: err instanceof HotctlError ? err.exitCode : EXIT.failed,
      outcome: 'failed',
      release: null,
      previousRelease: previous,
      error: errorMessage(err),
      durationMs: Date.now() - started,
      changes: null,
    })
    throw err
  }
  const notifications = await tell(audience, command, facts(result))
  return notifications ? {...result, notifications} : result
}

function factsOf(r: Outcome): Facts {
  return {
    outcome: r.outcome,
    exitCode: r.exitCode,
    release: r.release ?? null,
    previousRelease: r.previousRelease ?? r.from ?? null,
    durationMs: r.durationMs,
    error: r.error ?? null,
    changes:
      r.plan?.changes ?? (r.written === undefined ? null : {added: 0, changed: r.written, deleted: r.removed ?? 0}),
  }
}

async function tell(a: Audience, command: 'deploy' | 'rollback', f: Facts): Promise<Delivery[] | undefined> {
  const event = eventOf(f)
  if (!event) return undefined
  const body = notificationBody({command, ...f, target: a.target, hosts: await a.hosts()}, event)
  const deliveries = await deliver(a.hooks, body)
  for (const d of deliveries.filter((x) => !x.ok))
    a.ui.say(`hotctl: warning: notify ${d.url} failed (${d.error}); the ${command}'s outcome stands`)
  return deliveries
}
