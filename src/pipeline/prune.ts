import {errorMessage} from '../errors.js'
import {operations} from '../state/journal.js'
import type {OpContext} from './context.js'
import {lockTarget} from './operation.js'
import type {Target} from '../target/target.js'

/**
 * Backups prune must keep whatever `keep` says: the backup of the operation in progress, and the
 * newest backup holding a release that passed smoke (the last known-good rollback point).
 */
export async function pinnedBackups(target: Target, current?: string): Promise<string[]> {
  const good = new Set(
    operations(await target.state.read())
      .filter((o) => o.op === 'deploy' && o.end?.result === 'ok' && o.start.release)
      .map((o) => o.start.release!),
  )
  const newestGood = (await target.backups.list())
    .filter((b) => b.release && good.has(b.release))
    .at(-1)
  return [...(current ? [current] : []), ...(newestGood ? [newestGood.id] : [])]
}

/**
 * Prune after a proven deploy or rollback: its failure is a warning, never a failed operation.
 * Returns the removed backup ids.
 */
export async function pruneAfter(ctx: OpContext, pinned: string[]): Promise<string[]> {
  try {
    return (await ctx.target.backups.prune(ctx.config.keep, pinned)).removed
  } catch (err) {
    ctx.ui.say(`hotctl: warning: pruning old backups failed: ${errorMessage(err)} (run \`hotctl backups prune\` later)`)
    return []
  }
}

/** `hotctl backups prune`: under the lock, keeping the newest `keep` and the pinned ones. */
export async function pruneBackups(ctx: OpContext, keep: number): Promise<{removed: string[]; freedBytes: number}> {
  const unlock = await lockTarget(ctx, `hotctl ${process.argv.slice(2).join(' ')}`)
  try {
    return await ctx.target.backups.prune(keep, await pinnedBackups(ctx.target))
  } finally {
    await unlock()
  }
}
