import {EXIT, usageError} from '../errors.js'
import {parseId} from '../ids.js'
import type {IntegrityReport} from '../store/integrity.js'
import type {OpContext} from './context.js'
import {lockTarget} from './operation.js'

export interface VerifyBackupsResult extends IntegrityReport {
  exitCode: number
  target: string
  /** The backup checked; null: every backup and the store. */
  backup: string | null
}

/**
 * `hotctl backups verify [ID]`: every backup (or one) checked against its hashes: metadata, all
 * directory chunks, all file objects; without an id also the store (unused objects and temp files
 * are info, not damage). Exit 0 clean, 1 damaged. Under the lock, so a prune cannot delete objects
 * mid-check (with no backups at all there is nothing to protect, and no state dir is created).
 */
export async function verifyBackups(ctx: OpContext, id?: string): Promise<VerifyBackupsResult> {
  const ids = await ctx.target.backups.ids()
  const only = id === undefined ? undefined : parseId(id, 'ID', 'Run `hotctl backups` to list the snapshots.')
  if (only !== undefined && !ids.includes(only)) {
    throw usageError(
      `ID ${only}: no snapshot with that id`,
      ids.length ? `Snapshot ids: ${ids.join(', ')}.` : 'There are no backups yet.',
    )
  }
  const unlock = ids.length > 0 ? await lockTarget(ctx, `hotctl ${process.argv.slice(2).join(' ')}`) : async () => {}
  try {
    const report = await ctx.target.backups.check(only)
    return {
      exitCode: report.damage.length > 0 ? EXIT.failed : EXIT.ok,
      target: ctx.config.target,
      backup: only ?? null,
      ...report,
    }
  } finally {
    await unlock()
  }
}
