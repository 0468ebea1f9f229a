import {EXIT, HotctlError, errorMessage, usageError} from '../errors.js'
import {parseId} from '../ids.js'
import {runTasks} from '../ui/render.js'
import type {OpContext} from './context.js'
import {lockTarget, nextId, Operation, recoverInterrupted, type Recovery} from './operation.js'
import {emptyProof, type LiveProof, proveLiveTasks} from './prove-live.js'
import {pinnedBackups, pruneAfter} from './prune.js'
import {restoreAndProve, type RestoreOutcome} from './restore.js'

export interface RollbackResult {
  exitCode: number
  outcome: 'rolled-back' | 'restored' | 'needs-attention' | 'interrupted'
  /** The backup put back. */
  to: string
  /** Release it holds (null: the tree from before hotctl's first deploy). */
  release: string | null
  from: string | null
  /** Snapshot of the tree before the rollback: `rollback --to` it to undo. */
  undo?: string
  written?: number
  removed?: number
  proof?: LiveProof
  restore?: RestoreOutcome
  recovery?: Recovery
  error?: string
  durationMs: number
}

/**
 * Without --to: put back the tree from before the live release was deployed (backup id = live
 * release id), so a second rollback goes one further back. Snapshots the current tree first so the
 * rollback itself can be undone; then restore → verify → reload → confirm → smoke.
 */
export async function rollback(ctx: OpContext, opts: {to?: string}): Promise<RollbackResult> {
  const started = Date.now()
  const {target} = ctx
  const unlock = lockTarget(ctx, `hotctl ${process.argv.slice(2).join(' ')}`)
  try {
    const recovery = await recoverInterrupted(ctx, {allowRestart: true})
    const to = chooseBackup(ctx, opts.to)
    const meta = target.backups().find((b) => b.id === to)!
    const from = target.readMarker()?.id ?? null
    const undo = nextId(ctx)
    const op = new Operation(ctx, 'rollback', undo, {backup: undo, release: meta.release ?? undefined, from})
    const result: RollbackResult = {exitCode: EXIT.ok, outcome: 'rolled-back', to, release: meta.release, from, undo, recovery, durationMs: 0}
    let changed = false
    result.proof = emptyProof()
    try {
      await runTasks(
        ctx.ui,
        [
          {
            title: `Snapshot the current tree as ${undo} (to undo this rollback)`,
            task: () => {
              op.phase('backup')
              target.snapshot(undo, 'rollback')
            },
          },
          {
            title: `Restore backup ${to}${meta.release ? ` (release ${meta.release})` : ' (tree from before hotctl)'}`,
            task: (_c, task) => {
              op.phase('restore')
              changed = true
              const r = target.restore(to)
              result.written = r.written.length
              result.removed = r.removed.length
              task.title = `Restore backup ${to}: ${r.written.length} written, ${r.removed.length} removed`
            },
          },
          {
            title: 'Verify target content equals the backup',
            task: () => {
              const diffs = target.verify(to)
              if (diffs.length > 0) throw new Error(`target differs from backup ${to} at: ${diffs.slice(0, 10).join(', ')}`)
            },
          },
          ...proveLiveTasks(ctx, meta.release, result.proof, {allowRestart: true, phase: op.phase, label: 'release', phases: {reload: 'reload', confirm: 'confirm', smoke: 'smoke'}}),
        ],
        {},
      )
      if (ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
    } catch (err) {
      result.error = ctx.signal.aborted ? 'interrupted by signal' : errorMessage(err)
      if (!changed) {
        op.end('failed', EXIT.checksFailed, {error: result.error})
        throw new HotctlError(`rollback failed before changing the target: ${result.error}`, ctx.signal.aborted ? EXIT.interrupted : EXIT.checksFailed)
      }
      ctx.ui.say(`hotctl: rollback to ${to} failed (${result.error}); putting back ${undo}`)
      result.restore = await restoreAndProve(ctx, undo, op.phase, {label: 'release before the rollback', allowRestart: true})
      result.exitCode = !result.restore.ok ? EXIT.needsAttention : ctx.signal.aborted ? EXIT.interrupted : EXIT.restored
      result.outcome = !result.restore.ok ? 'needs-attention' : ctx.signal.aborted ? 'interrupted' : 'restored'
      op.end(result.outcome === 'needs-attention' ? 'attention' : result.outcome, result.exitCode, {error: result.error})
      return {...result, durationMs: Date.now() - started}
    }
    op.end('ok', EXIT.ok)
    pruneAfter(ctx, [...pinnedBackups(target, undo), to])
    return {...result, durationMs: Date.now() - started}
  } finally {
    unlock()
  }
}

function chooseBackup(ctx: OpContext, to: string | undefined): string {
  const ids = ctx.target.backups().map((b) => b.id)
  if (to !== undefined) return parseId(to, ids)
  const live = ctx.target.readMarker()
  if (!live) {
    throw usageError('the live tree has no release marker, so there is no earlier release to go back to', ids.length ? `Pick one with --to; valid ids: ${ids.join(', ')}.` : 'There are no backups yet.')
  }
  if (!ids.includes(live.id)) {
    throw usageError(`no backup from before release ${live.id} (pruned, or deployed by something else)`, ids.length ? `Pick one with --to; valid ids: ${ids.join(', ')}.` : 'There are no backups yet.')
  }
  return live.id
}
