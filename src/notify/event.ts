import type {NotifyEvent} from '../config/schema.js'
import {EXIT} from '../errors.js'
import type {FileCounts} from '../state/journal.js'
import {formatDuration} from '../ui/format.js'

/** What a webhook is told: the outcome of one deploy or rollback. */
export interface NotificationBody {
  /** Slack-compatible one-line summary (Slack, Mattermost, Rocket.Chat and Teams workflows show it). */
  text: string
  event: NotifyEvent
  command: 'deploy' | 'rollback'
  outcome: string
  exitCode: number
  /** The release deployed, or the release a rollback asked for (null: the tree from before hotctl). */
  release: string | null
  /** The release live before the operation. */
  previousRelease: string | null
  durationMs: number
  target: string
  hosts: string[]
  error: string | null
  changes: FileCounts | null
}

/** The facts of a finished (or failed) operation that the body is made of. */
export type OutcomeFacts = Omit<NotificationBody, 'text' | 'event'>

/**
 * Which event an outcome is: `restored` (exit 3, or an interrupt or a restart refusal after a
 * proven restore), `attention` (exit 4), `failure` (anything else that is not 0), `success`.
 * A dry run is nothing to tell.
 */
export function eventOf(f: Pick<OutcomeFacts, 'exitCode' | 'outcome'>): NotifyEvent | undefined {
  if (f.outcome === 'dry-run') return undefined
  if (f.exitCode === EXIT.ok) return 'success'
  if (f.exitCode === EXIT.needsAttention || f.outcome === 'needs-attention') return 'attention'
  if (f.exitCode === EXIT.restored || f.outcome === 'restored') return 'restored'
  return 'failure'
}

const WORDS: Record<NotifyEvent, string> = {
  success: 'succeeded',
  failure: 'failed before changing the target',
  restored: 'failed; the previous release was restored and is live',
  attention: 'failed and could not be restored: the target NEEDS ATTENTION',
}

/** The body posted to every webhook that asked for this event. */
export function notificationBody(f: OutcomeFacts, event: NotifyEvent): NotificationBody {
  const what =
    f.command === 'deploy'
      ? `deploy of release ${f.release ?? '(not planned)'}`
      : `rollback to ${f.release ? `release ${f.release}` : 'the initial tree'}`
  const n = f.hosts.length
  // A fleet: the path, then how many hosts (the body's `hosts` names every one).
  const where =
    n > 1
      ? `${f.target} on ${n} hosts (${f.hosts.slice(0, 5).join(', ')}${n > 5 ? ', …' : ''})`
      : n
        ? `${f.hosts[0]}:${f.target}`
        : f.target
  const c = f.changes
  const counts = c ? ` (${c.added} added, ${c.changed} changed, ${c.deleted} deleted)` : ''
  const why = f.error && event !== 'success' ? `: ${f.error.split('\n')[0]}` : ''
  const text = `hotctl ${what} to ${where} ${WORDS[event]} in ${formatDuration(f.durationMs)}, exit ${f.exitCode}${counts}${why}`
  return {text, event, ...f}
}
