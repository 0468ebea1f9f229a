import {EXIT, HotctlError, errorMessage} from '../errors.js'
import {operations} from '../state/journal.js'
import {BackupDamagedError} from '../store/integrity.js'
import {runTasks} from '../ui/render.js'
import type {OpContext} from './context.js'
import {lockTarget, nextId, Operation, recoverInterrupted, type Recovery} from './operation.js'
import {emptyProof, type LiveProof, proveLiveTasks} from './prove-live.js'
import {preflight, requirePreflight} from './preflight.js'
import {pinnedBackups, pruneAfter} from './prune.js'
import {catalogOf, type Choice, describe, INITIAL, type ReleaseCatalog, resolvePrevious, resolveTo} from './releases.js'
import {beforeLast, restoreAndProve, type RestoreOutcome} from './restore.js'
import {
  backupForReapply,
  leaveWindowTask,
  MaintenanceWindow,
  planRollbackSteps,
  type RanStep,
  reapplySteps,
  redoTask,
  requireReversible,
  type RollbackStepsPlan,
  undoForRollback,
  undoReapplied,
} from './release-steps.js'
import {beforeTheOperation, settle} from './settle.js'
import {type Step, steps} from './steps.js'

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
  /**
   * Release steps (config `steps:`), with the commands recorded when they were deployed: those of
   * the releases being undone, undone (or skipped under --force); those of the releases being
   * re-applied (roll-forward), run again; after a failure, the undone ones redone.
   */
  releaseSteps?: RollbackStepsReport
  error?: string
  durationMs: number
}

/**
 * `--to R` ends with release R live (`initial`: the tree from before hotctl); without --to, one
 * step back to the release live before the live one, so a second rollback goes one further back.
 * Snapshots the current tree first so the rollback itself can be undone; then restore → verify →
 * reload → confirm → smoke. `--to` the live release changes nothing: it confirms it and exits 0.
 */
export async function rollback(ctx: OpContext, opts: {to?: string; force?: boolean}): Promise<RollbackResult> {
  const run = newRollbackRun(ctx, opts.force)
  const {result} = run
  // The lock is held until the journal records the end and any restore is done.
  try {
    await runTasks(ctx.ui, steps(rollbackSteps(ctx, opts, run)), {})
    if (ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
    await finishRollback(ctx, run)
  } catch (err) {
    if (run.choice && !run.choice.snapshot && !(err instanceof HotctlError && err.exitCode === EXIT.interrupted)) {
      const hint = 'Nothing was changed. `hotctl status` shows what the service reports.'
      throw new HotctlError(
        `${describe(run.choice.release)} is already in the target, but it is not proven live: ${errorMessage(err)}`,
        EXIT.failed,
        hint,
      )
    }
    if (!run.op) throw beforeTheOperation(ctx, err)
    return await settleRollback(ctx, run, err)
  } finally {
    await run.window.leave() // whatever the outcome
    await run.unlock?.()
  }
  return {...result, durationMs: result.durationMs || Date.now() - run.started}
}

export interface RollbackStepsReport {
  undone: string[]
  skipped: string[]
  irreversible: string[]
  /** Roll-forward: steps of the releases re-applied, run again (oldest first). */
  reapplied: string[]
  /** After a failure, once the files were back: the undone steps run again. */
  redone: string[]
  /** Recorded commands that differ from the config's, records missing (older hotctl). */
  notes: string[]
}

/** What the rollback's steps share as they run (one task tree, built once); a fleet keeps one per host. */
export interface RollbackRun {
  result: RollbackResult & {proof: LiveProof}
  unlock?: () => Promise<void>
  choice?: Choice
  /** The id of the snapshot taken before restoring; a fleet sets one for every host beforehand. */
  undo?: string
  op?: Operation
  changed: boolean
  stepsPlan?: RollbackStepsPlan
  /** Steps undone so far, newest first (redone if the rollback fails). */
  undoneSteps: RanStep[]
  /** Roll-forward: the re-applied steps, with their new backup directories, once backed up. */
  reapply?: RanStep[]
  /** Re-applied steps that started (undone if the rollback fails). */
  reappliedSteps: RanStep[]
  /** An undo of the rollback failed: that step's state is unknown, so nothing is redone over it. */
  undoFailed?: string
  /** Opened by the undo of a step with `maintenance: true`; left before the smoke. */
  window: MaintenanceWindow
  /** When rollback() began: the operation's duration (journal and output) counts from here. */
  started: number
  /** --force: undo what can be undone and pass over release steps without `undo`. */
  force: boolean
}

export function newRollbackRun(ctx: OpContext, force = false): RollbackRun {
  const run = {
    result: {exitCode: EXIT.ok, outcome: 'rolled-back', release: null, from: null, durationMs: 0, proof: emptyProof()},
    changed: false,
    started: Date.now(),
    force,
    undoneSteps: [] as RanStep[],
    reappliedSteps: [] as RanStep[],
  } as RollbackRun
  run.window = new MaintenanceWindow(ctx, () => run.op!.opId)
  return run
}

/** The proven rollback's end: journaled ok, old backups pruned, and the command that undoes it. */
export async function finishRollback(ctx: OpContext, run: RollbackRun): Promise<void> {
  if (!run.op) return
  // A restore writes and removes: written files count as changed (added ones among them).
  const files = {added: 0, changed: run.result.written ?? 0, deleted: run.result.removed ?? 0}
  run.result.durationMs = await run.op.end('ok', EXIT.ok, {files})
  await pruneAfter(ctx, [...(await pinnedBackups(ctx.target, run.undo)), run.choice!.snapshot!])
  run.result.undoWith = await catalogOf(ctx.target).then(
    (c) => undoCommand(c, run.result.from),
    () => undefined,
  )
}

/** Which snapshot holds the release asked for (or that it is already live), and what is live now. */
export async function chooseRollback(ctx: OpContext, run: RollbackRun, to: string | undefined): Promise<void> {
  run.choice = await chooseRestorable(ctx, to)
  run.result.release = run.choice.release
  run.result.from = (await ctx.target.readMarker())?.id ?? null
  if (!run.choice.snapshot) run.result.outcome = 'already-live'
  else run.result.snapshot = run.choice.snapshot
}

function rollbackSteps(ctx: OpContext, opts: {to?: string}, run: RollbackRun): Step[] {
  const {result} = run
  return [
    {
      title: 'Preflight',
      does: 'preflight: rsync, target, state dir, status URLs',
      task: async () => requirePreflight(await preflight(ctx, {source: false, createTarget: false, record: true})),
    },
    {
      title: 'Lock the target',
      task: async () => {
        run.unlock = await lockTarget(ctx, `hotctl ${process.argv.slice(2).join(' ')}`)
      },
    },
    {
      title: 'Finish an interrupted operation',
      task: async (_c, task) => {
        result.recovery = await recoverInterrupted(ctx, {allowRestart: true})
        if (!result.recovery) task.title = 'No interrupted operation'
      },
    },
    {
      title: 'Choose the snapshot',
      task: async (_c, task) => {
        await chooseRollback(ctx, run, opts.to)
        task.title = run.choice!.snapshot
          ? `Restore ${describe(run.choice!.release)} from snapshot ${run.choice!.snapshot}`
          : `${describe(run.choice!.release)} is already live: confirming it`
      },
    },
    ...restoreSteps(ctx, run),
    {title: 'Prune old backups', skip: () => alreadyLive(run), task: () => undefined}, // after the operation ends (rollback())
  ]
}

/**
 * One target's part of a rollback, once the snapshot is chosen (under the lock): snapshot the
 * current tree (the undo) → restore → verify → reload → confirm → smoke. The operation stays open:
 * the caller ends it (finishRollback) or settles it (settleRollback).
 */
export function restoreSteps(ctx: OpContext, run: RollbackRun): Step[] {
  const {target} = ctx
  const {result} = run
  const snapshot = () => run.choice!.snapshot!
  const prove = proveLiveTasks(ctx, () => run.choice?.release ?? null, result.proof, {
    allowRestart: true,
    reload: () => !alreadyLive(run), // the release already live: confirm it, do not reload
    phase: (p) => run.op?.phase(p) ?? Promise.resolve(),
    label: 'release',
    phases: {reload: 'reload', confirm: 'confirm', smoke: 'smoke'},
  })
  return [
    {
      title: 'Plan the release steps',
      skip: () => alreadyLive(run),
      task: async (_c, task) => {
        const plan = await planRollbackSteps(ctx, operations(await target.state.read()), run.choice!.release)
        for (const note of plan.notes) ctx.ui.say(`hotctl: ${note}`)
        if (plan.undo.length + plan.reapply.length + plan.unknown.length === 0) {
          task.title = 'No release step to undo or re-apply'
          return
        }
        run.stepsPlan = plan
        const {irreversible, notes} = plan
        result.releaseSteps = {undone: [], skipped: [], irreversible, reapplied: [], redone: [], notes}
        const named = (list: RanStep[]) => list.map((s) => `${s.spec.name} (${s.release})`).join(', ')
        task.title =
          [
            plan.undo.length ? `Undo release steps: ${named(plan.undo)}` : '',
            plan.reapply.length ? `Re-apply release steps: ${named(plan.reapply)}` : '',
          ]
            .filter(Boolean)
            .join('; ') || 'Release steps: commands unknown'
        requireReversible(plan, run.force)
      },
    },
    {
      title: 'Snapshot the current tree (to undo this rollback)',
      skip: () => alreadyLive(run),
      task: async (_c, task) => {
        const meta = (await target.backups.list()).find((b) => b.id === snapshot())!
        run.undo = result.undo = run.undo ?? (await nextId(ctx))
        const start = {backup: run.undo, release: meta.release ?? undefined, restores: snapshot(), from: result.from}
        run.op = await Operation.start(ctx, 'rollback', run.undo, start, run.started)
        await run.op.phase('backup')
        await target.backups.snapshot(run.undo, 'rollback')
        task.title = `Snapshot the current tree as ${run.undo} (to undo this rollback)`
      },
    },
    {
      title: 'Undo release steps',
      skip: () =>
        alreadyLive(run) ||
        (!run.stepsPlan?.undo.length && !run.stepsPlan?.unknown.length && 'no release step to undo'),
      task: async () => {
        if (ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
        run.changed = true
        const r = await undoForRollback(ctx, run.op!.opId, run.stepsPlan!, run.window)
        run.undoneSteps.push(...r.undone)
        Object.assign(result.releaseSteps!, {undone: r.undone.map((s) => s.spec.name), skipped: r.skipped})
        if (!r.ok) run.undoFailed = r.error
        if (!r.ok) throw new Error(r.error)
      },
    },
    {
      // Roll-forward: as in a deploy, every re-applied step is backed up before any of them runs.
      title: 'Back up what the re-applied steps change',
      skip: () => alreadyLive(run) || (!run.stepsPlan?.reapply.length && 'no release step to re-apply'),
      task: async () => {
        if (ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
        run.reapply = await backupForReapply(ctx, run.op!.opId, run.stepsPlan!.reapply)
      },
    },
    reapplyTask(ctx, run, 'before-sync'),
    {
      title: 'Restore',
      skip: () => alreadyLive(run),
      task: async (_c, task) => {
        if (ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted) // nothing changed yet: stop here
        await run.op!.phase('restore')
        run.changed = true
        let r: {written: string[]; removed: string[]}
        try {
          r = await target.backups.restore(snapshot())
        } catch (err) {
          // Refused before writing anything (checked against its hashes first): the target is untouched.
          if (err instanceof BackupDamagedError) run.changed = false
          throw err
        }
        result.written = r.written.length
        result.removed = r.removed.length
        task.title = `Restore ${describe(result.release)} (snapshot ${snapshot()}): ${r.written.length} written, ${r.removed.length} removed`
      },
    },
    {
      title: 'Verify target content equals the snapshot',
      skip: () => alreadyLive(run),
      task: async () => {
        const diffs = await target.backups.verify(snapshot())
        if (diffs.length > 0)
          throw new Error(`target differs from snapshot ${snapshot()} at: ${diffs.slice(0, 10).join(', ')}`)
      },
    },
    reapplyTask(ctx, run, 'after-sync'),
    ...beforeLast(prove, leaveWindowTask(run.window)),
  ]
}

/**
 * Roll-forward: the `run` of the re-applied steps at one place (before the files are restored, or
 * after they are verified, as a deploy runs them around its sync), journaled.
 */
function reapplyTask(ctx: OpContext, run: RollbackRun, at: RanStep['spec']['at']): Step {
  const here = () => (run.reapply ?? []).filter((s) => s.spec.at === at)
  return {
    title: `Re-apply release steps${at === 'before-sync' ? ' (before the files)' : ''}`,
    skip: () => alreadyLive(run) || (here().length === 0 && 'no release step to re-apply here'),
    task: async (_c, task) => {
      if (ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
      run.changed = true
      await reapplySteps(ctx, run.op!.opId, here(), run.window, (s) => {
        run.reappliedSteps.push(s)
        run.result.releaseSteps!.reapplied.push(s.spec.name)
      })
      task.title = `Re-apply release steps: ${here()
        .map((s) => `${s.spec.name} (${s.release})`)
        .join(', ')}`
    },
  }
}

/** Why the restore steps skip: the release asked for is the live one. */
const alreadyLive = (run: RollbackRun) =>
  run.choice && !run.choice.snapshot ? `${describe(run.choice.release)} is already live` : false

/** A failure after the rollback's operation started: put back the undo snapshot if the target changed. */
export async function settleRollback(ctx: OpContext, run: RollbackRun, err: unknown): Promise<RollbackResult> {
  const {result} = run
  const interrupted = ctx.signal.aborted
  result.error = interrupted ? 'interrupted by signal' : errorMessage(err)
  if (!run.changed) {
    const s = settle({targetChanged: false, error: err, interrupted})
    await run.op!.end(s.result, s.exitCode, {error: s.error})
    const damaged = err instanceof BackupDamagedError ? err : undefined
    throw new HotctlError(
      `rollback failed before changing the target: ${result.error}`,
      s.exitCode,
      damaged?.hint,
      damaged?.details,
    )
  }
  ctx.ui.say(`hotctl: rollback to ${run.choice!.snapshot} failed (${result.error}); putting back ${run.undo}`)
  // One unit, as a deploy's failure: the steps it re-applied are undone (newest first) while their
  // files are in place; then the files go back, and the steps it undid run again (oldest first)
  // before the release that was live is proven.
  const notRedone = run.undoneSteps.length
    ? ` (the release steps it undid are not redone: ${run.undoneSteps.map((x) => x.spec.name).join(', ')})`
    : ''
  let stepsError = run.undoFailed && `${run.undoFailed}${notRedone}`
  if (run.reappliedSteps.length > 0) {
    const u = await undoReapplied(ctx, run.op!.opId, run.reappliedSteps, run.window)
    if (!u.ok) stepsError = [stepsError, `${u.error}${notRedone}`].filter(Boolean).join('; ')
  }
  const redo = stepsError ? [] : [...run.undoneSteps].reverse()
  result.restore = await restoreAndProve(ctx, run.undo!, run.op!.phase, {
    label: 'release before the rollback',
    allowRestart: true,
    beforeSmoke: leaveWindowTask(run.window),
    afterVerify:
      redo.length > 0 ? redoTask(ctx, () => run.op!.opId, redo, run.window, result.releaseSteps!.redone) : undefined,
  })
  if (stepsError)
    result.restore = {
      ...result.restore,
      ok: false,
      error: [stepsError, result.restore.error].filter(Boolean).join('; '),
    }
  const s = settle({targetChanged: true, error: err, interrupted, restore: result.restore})
  const durationMs = await run.op!.end(s.result, s.exitCode, {error: s.error})
  return {
    ...result,
    durationMs,
    exitCode: s.exitCode,
    outcome: s.outcome === 'failed' || s.outcome === 'recovered' ? 'restored' : s.outcome,
  }
}

/** `--to` names the release to end with; without it, the release before the live one. */
async function chooseBackup(ctx: OpContext, to: string | undefined): Promise<Choice> {
  const c = await catalogOf(ctx.target)
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
 * chooseBackup sees only snapshots whose metadata can be read. When it finds nothing to restore and
 * a snapshot that would hold the release asked for exists with damaged metadata, that is the
 * answer: refused as damaged (exit 1, nothing touched). The journal says which snapshots hold a
 * release: those taken by the operations that replaced it (their start's `from`).
 */
async function chooseRestorable(ctx: OpContext, to: string | undefined): Promise<Choice> {
  try {
    return await chooseBackup(ctx, to)
  } catch (err) {
    const live = (await ctx.target.readMarker())?.id ?? null
    const ops = operations(await ctx.target.state.read())
    const candidates =
      to === undefined
        ? ops.filter((o) => o.op === 'deploy' && o.opId === live).map((o) => o.start.backup)
        : ops.filter((o) => (o.start.from ?? INITIAL) === to).map((o) => o.start.backup)
    const readable = new Set((await ctx.target.backups.list()).map((b) => b.id))
    for (const id of await ctx.target.backups.ids()) {
      if (readable.has(id) || !candidates.includes(id)) continue
      const {damage} = await ctx.target.backups.check(id)
      if (damage.length > 0) throw new BackupDamagedError(id, damage)
    }
    throw err
  }
}
