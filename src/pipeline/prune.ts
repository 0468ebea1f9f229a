import {EXIT, errorMessage} from '../errors.js'
import {operations} from '../state/journal.js'
import type {OpContext} from './context.js'
import type {Target} from '../target/target.js'
import {lockTarget} from './operation.js'
import {pruneStepBackups} from './release-steps.js'

export interface PruneResult {
  exitCode: number
  keep: number
  /** Under --dry-run: what would be removed and freed; nothing was. */
  dryRun?: boolean
  removed: string[]
  /** --dry-run: each backup that would go, with the release it holds. */
  wouldRemove?: {id: string; time: string; release: string | null}[]
  freedBytes: number
}

/** `hotctl backups prune`: under the lock, drop backups beyond the newest `keep` (never a pinned one). */
export async function pruneBackups(ctx: OpContext, keep: number, opts: {dryRun?: boolean} = {}): Promise<PruneResult> {
  if (opts.dryRun) {
    // Read-only: no lock taken, nothing removed.
    const r = await ctx.target.backups.prune(keep, await pinnedBackups(ctx.target), {dryRun: true})
    const metas = new Map((await ctx.target.backups.list()).map((b) => [b.id, b]))
    const wouldRemove = r.removed.map((id) => ({id, time: metas.get(id)!.time, release: metas.get(id)!.release}))
    return {exitCode: EXIT.ok, keep, dryRun: true, ...r, wouldRemove}
  }
  const unlock = await lockTarget(ctx, `hotctl ${process.argv.slice(2).join(' ')}`)
  try {
    const pruned = await ctx.target.backups.prune(keep, await pinnedBackups(ctx.target))
    if ((ctx.config.steps ?? []).length > 0) await pruneStepBackups(ctx, pruned.removed)
    return {exitCode: EXIT.ok, keep, ...pruned}
  } finally {
    await unlock()
  }
}

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
  const newestGood = (await target.backups.list()).filter((b) => b.release && good.has(b.release)).at(-1)
  return [...(current ? [current] : []), ...(newestGood ? [newestGood.id] : [])]
}

/**
 * Prune after a proven deploy or rollback: its failure is a warning, never a failed operation.
 * Returns the removed backup ids.
 */
export async function pruneAfter(ctx: OpContext, pinned: string[]): Promise<string[]> {
  try {
    const {removed} = await ctx.target.backups.prune(ctx.config.keep, pinned, {incremental: true})
    if ((ctx.config.steps ?? []).length > 0) await pruneStepBackups(ctx, removed)
    return removed
  } catch (err) {
    ctx.ui.say(`hotctl: warning: pruning old backups failed: ${errorMessage(err)} (run \`hotctl backups prune\` later)`)
    return []
  }
}
