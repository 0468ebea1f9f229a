import {EXIT, HotctlError, errorMessage} from '../errors.js'
import {operations} from '../state/journal.js'
import {BackupDamagedError} from '../store/integrity.js'
import {runTasks} from '../ui/render.js'
import type {OpContext} from './context.js'
import {lockTarget, nextId, Operation, recoverInterrupted, type Recovery} from './operation.js'
import {emptyProof, type LiveProof, proveLiveTasks} from './prove-live.js'
import {preflight, requirePreflight} from './preflight.js'
import {pinnedBackups, pruneAfter} from './prune.js'
import {type Choice, describe, INITIAL, releaseCatalog, type ReleaseCatalog, resolvePrevious, resolveTo} from './releases.js'
import {restoreAndProve, type RestoreOutcome} from './restore.js'

export interface RollbackResult {
  exitCode: number
  outcome: 'rolled-back' | 'already-live' | 'restored' | 'needs-attention' | 'interrupted'
  /** The release asked for (null: the tree from before hotctl's first deploy). */
  release: string | null
  /** The snapshot put back (internal id; absent when the release was already live). */
  snapshot?: string
  from: string | null
  /** Snapshot of the tree before the rollback (internal id). */
  undo?: string
  /** The command that undoes this rollback, when the replaced release is a valid `--to` target. */
  undoWith?: string
  written?: number
  removed?: number
  proof?: LiveProof
  restore?: RestoreOutcome
  recovery?: Recovery
  error?: string
  durationMs: number
}

/**
 * `--to R` ends with release R live (`initial`: the tree from before hotctl); without --to, one
 * step back to the release live before the live one, so a second rollback goes one further back.
 * Snapshots the current tree first so the rollback itself can be undone; then restore → verify →
 * reload → confirm → smoke. `--to` the live release changes nothing: it confirms it and exits 0.
 */
export async function rollback(ctx: OpContext, opts: {to?: string}): Promise<RollbackResult> {
  const started = Date.now()
  const {target} = ctx
  // The same preflight as `check`, before the lock and before anything is touched (exit 1).
  requirePreflight(await preflight(ctx, {source: false, createTarget: false}))
  const unlock = lockTarget(ctx, `hotctl ${process.argv.slice(2).join(' ')}`)
  try {
    const recovery = await recoverInterrupted(ctx, {allowRestart: true})
    const choice = chooseRestorable(ctx, opts.to)
    if (!choice.snapshot) return {...(await confirmLive(ctx, choice, recovery)), durationMs: Date.now() - started}
    const to = choice.snapshot
    const meta = target.backups().find((b) => b.id === to)!
    const from = target.readMarker()?.id ?? null
    const undo = nextId(ctx)
    const op = new Operation(ctx, 'rollback', undo, {backup: undo, release: meta.release ?? undefined, restores: to, from})
    const result: RollbackResult = {exitCode: EXIT.ok, outcome: 'rolled-back', release: meta.release, snapshot: to, from, undo, recovery, durationMs: 0}
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
            title: `Restore ${describe(meta.release)} (snapshot ${to})`,
            task: (_c, task) => {
              op.phase('restore')
              changed = true
              let r: {written: string[]; removed: string[]}
              try {
                r = target.restore(to)
              } catch (err) {
                // Refused before writing anything (checked against its hashes first): the target is untouched.
                if (err instanceof BackupDamagedError) changed = false
                throw err
              }
              result.written = r.written.length
              result.removed = r.removed.length
              task.title = `Restore ${describe(meta.release)} (snapshot ${to}): ${r.written.length} written, ${r.removed.length} removed`
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
        const damaged = err instanceof BackupDamagedError ? err : undefined
        const code = ctx.signal.aborted ? EXIT.interrupted : EXIT.checksFailed
        throw new HotctlError(`rollback failed before changing the target: ${result.error}`, code, damaged?.hint, damaged?.details)
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
    result.undoWith = undoCommand(catalog(ctx), from)
    return {...result, durationMs: Date.now() - started}
  } finally {
    unlock()
  }
}

function catalog(ctx: OpContext): ReleaseCatalog {
  return releaseCatalog(ctx.target.backups(), operations(ctx.target.journal.read()), ctx.target.readMarker()?.id ?? null)
}

/** `--to` names the release to end with; without it, the release before the live one. */
function chooseBackup(ctx: OpContext, to: string | undefined): Choice {
  const c = catalog(ctx)
  return to === undefined ? resolvePrevious(c) : resolveTo(c, to)
}

/** `rollback --to` the release it replaced, if that is a valid target now (it was proven live). */
function undoCommand(c: ReleaseCatalog, from: string | null): string | undefined {
  try {
    return resolveTo(c, from ?? INITIAL).snapshot ? `hotctl rollback --to ${from ?? INITIAL}` : undefined
  } catch {
    return undefined
  }
}

/**
 * `--to` the live release: nothing to restore. Confirms the service reports it and smoke passes
 * (no reload, no restart: nothing changed), so a script can ask for a release idempotently.
 */
async function confirmLive(ctx: OpContext, choice: Choice, recovery: Recovery | undefined): Promise<Omit<RollbackResult, 'durationMs'>> {
  const proof = emptyProof()
  const phases = {reload: 'reload', confirm: 'confirm', smoke: 'smoke'} as const
  try {
    await runTasks(ctx.ui, proveLiveTasks(ctx, choice.release, proof, {allowRestart: false, reload: false, phase: () => {}, label: 'release', phases}), {})
  } catch (err) {
    throw new HotctlError(
      `${describe(choice.release)} is already in the target, but it is not proven live: ${errorMessage(err)}`,
      ctx.signal.aborted ? EXIT.interrupted : EXIT.checksFailed,
      'Nothing was changed. `hotctl status` shows what the service reports.',
    )
  }
  return {exitCode: EXIT.ok, outcome: 'already-live', release: choice.release, from: choice.release, proof, recovery}
}

/**
 * chooseBackup sees only snapshots whose metadata can be read. When it finds nothing to restore and
 * a snapshot that would hold the release asked for exists with damaged metadata, that is the
 * answer: refused as damaged (exit 1, nothing touched). The journal says which snapshots hold a
 * release: those taken by the operations that replaced it (their start's `from`).
 */
function chooseRestorable(ctx: OpContext, to: string | undefined): Choice {
  try {
    return chooseBackup(ctx, to)
  } catch (err) {
    const live = ctx.target.readMarker()?.id ?? null
    const ops = operations(ctx.target.journal.read())
    const candidates =
      to === undefined
        ? ops.filter((o) => o.op === 'deploy' && o.opId === live).map((o) => o.start.backup)
        : ops.filter((o) => (o.start.from ?? INITIAL) === to).map((o) => o.start.backup)
    const readable = new Set(ctx.target.backups().map((b) => b.id))
    for (const id of ctx.target.backupIds()) {
      if (readable.has(id) || !candidates.includes(id)) continue
      const {damage} = ctx.target.checkBackups(id)
      if (damage.length > 0) throw new BackupDamagedError(id, damage)
    }
    throw err
  }
}
