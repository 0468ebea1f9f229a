import path from 'node:path'
import {STEP_BACKUP_DIR_ENV, type StepSpec} from '../config/resolve.js'
import type {Command} from '../config/schema.js'
import {errorMessage, EXIT, HotctlError} from '../errors.js'
import type {ChangeSet} from '../plan/changeset.js'
import {compilePatterns} from '../plan/patterns.js'
import {type Operation as JournalOp, type StepEvent} from '../state/journal.js'
import {formatDuration} from '../ui/format.js'
import type {OpContext} from './context.js'
import type {Step} from './steps.js'
import {recordFile, replayedStep, writeStepRecord} from './step-record.js'

/**
 * Release steps (issue 9): commands that change more than the files — dependencies, a database —
 * made part of the same all-or-nothing deploy.
 *
 * - Every selected step's `backup` runs before anything is touched, into a directory of its own
 *   in the state dir ($HOTCTL_STEP_BACKUP_DIR), kept with the release so a later rollback can
 *   undo the step from it.
 * - Steps run in the task tree at their place (before or after the sync). A failure anywhere later
 *   runs the `undo` of every step that ran (the failing one included: it may have half-run), in
 *   reverse order, before the files are restored.
 * - Each backup, run and undo is journaled before it starts and again with its outcome, so the
 *   next run recovers a killed one: it undoes the steps that ran, then restores the files.
 * - Each step's commands are recorded as the config wrote them (step-record.ts) in its backup
 *   directory, so a rollback or a recovery replays the commands the release was deployed with.
 *   The journal holds names and directories, never commands (they may carry secrets).
 * - A rollback makes the steps agree with the release it ends with (planRollbackSteps): it undoes
 *   the steps applied since, re-applies (backup, then run) those undone since (roll-forward), and
 *   if it fails, undoes what it re-applied and redoes what it undid once the files are back.
 *
 * Every command runs through the Target (`runServiceCommand`), in the target directory, on the
 * host of a remote target.
 *
 * Maintenance window (marker file through the Target, or the configured on/off commands): it opens
 * when the first step with `maintenance: true` starts (with the first change under
 * `--maintenance`) and lasts while code and data may disagree: until the new release is confirmed
 * live, or after a failure until the undone steps and the restored files are confirmed live. It
 * closes before the smoke tests (they test the service as users will see it), and in any case
 * when the operation ends; recovery closes one a killed run left open.
 */

export {STEP_BACKUP_DIR_ENV} from '../config/resolve.js'

/** Where step `index` (0-based, config order) of `release` keeps its backup. */
export function stepBackupDir(stateDir: string, release: string, index: number, name: string): string {
  const slug =
    name
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[-.]+|-+$/g, '') || 'step'
  return path.posix.join(stateDir, 'step-backups', release, `${String(index + 1).padStart(2, '0')}-${slug}`)
}

/**
 * After backups were pruned: their releases' step backup directories go too (a rollback past a
 * release needs its file snapshot as much as its step backups). Through the Target, on the host.
 */
export async function pruneStepBackups(ctx: OpContext, removed: string[]): Promise<void> {
  for (const id of removed.filter((r) => /^\d{14}$/.test(r))) {
    const dir = path.posix.join(ctx.config.stateDir, 'step-backups', id)
    const r = await ctx.target.runServiceCommand({argv: ['rm', '-rf', '--', dir]}, {env: ctx.env, timeoutMs: 60_000})
    if (!r.ok) ctx.ui.say(`hotctl: warning: could not remove ${dir}: ${r.tail}`)
  }
}

/** The steps this change set runs: those without `when`, and those with a pattern matching a changed path. */
export function selectSteps(steps: StepSpec[], changes: ChangeSet): StepSpec[] {
  const paths = [...changes.added, ...changes.changed, ...changes.deleted]
  return steps.filter((s) => {
    if (!s.when) return true
    const matches = compilePatterns(s.when)
    return paths.some((p) => matches(p, false))
  })
}

/** What the steps did, for the result. */
export interface StepsReport {
  /** Steps that ran (or started), in order. */
  ran: string[]
  /** Steps whose `when` matched no changed path. */
  skipped: string[]
  /** Steps undone after a failure, in the order they were undone. */
  undone: string[]
  /** Steps that could not be undone (no undo, or it failed): the target needs attention. */
  notUndone: {step: string; why: string}[]
}

/** A step of one release, with its backup directory: what is run, undone or re-run. */
export interface RanStep {
  spec: StepSpec
  dir: string
  release: string
  /** Its place in the config it was deployed with (names its backup directory). */
  index: number
}

/** Appends a step record (before the command: no `ok`; after: with it). */
function journalStep(ctx: OpContext, opId: string, e: Omit<StepEvent, 'event' | 'opId' | 't'>): Promise<void> {
  return ctx.target.state.append({event: 'step', opId, t: new Date().toISOString(), ...e})
}

async function runStepCommand(
  ctx: OpContext,
  cmd: Command,
  what: string,
  env: Record<string, string>,
  timeoutMs: number,
  signal: AbortSignal,
  opId?: string,
): Promise<void> {
  // Journaled: a killed hotctl's step command is stopped by the next run before it undoes anything.
  const onChild = opId
    ? (pgid: number) => ctx.target.state.append({event: 'child', opId, t: new Date().toISOString(), pgid})
    : undefined
  const r = await ctx.target.runServiceCommand(cmd, {
    env: {...ctx.env, ...env},
    signal,
    timeoutMs,
    tailLines: 15,
    onChild,
  })
  if (r.ok) return
  const how = r.timedOut
    ? `timed out after ${formatDuration(timeoutMs)}`
    : r.canceled
      ? 'was interrupted'
      : `failed (exit ${r.exitCode ?? 'none'})`
  throw new Error(`${what} ${how}${r.tail ? `:\n${r.tail}` : ''}`)
}

function stepEnv(s: RanStep): Record<string, string> {
  return {[STEP_BACKUP_DIR_ENV]: s.dir, HOTCTL_STEP_NAME: s.spec.name, HOTCTL_RELEASE_ID: s.release}
}

/**
 * The maintenance window of one operation: opened on demand, closed once, journaled both ways so
 * recovery closes a window a killed run left open.
 */
export class MaintenanceWindow {
  private open = false

  constructor(
    private readonly ctx: OpContext,
    private readonly opId: () => string,
  ) {}

  get isOpen(): boolean {
    return this.open
  }

  async enter(reason: string, expectedMs: number): Promise<void> {
    if (this.open) return
    await this.ctx.target.state.append({event: 'maintenance', opId: this.opId(), t: new Date().toISOString(), on: true})
    this.open = true
    await setMaintenance(this.ctx, true, {reason, until: new Date(Date.now() + expectedMs).toISOString()})
  }

  /** Closes the window if open; never throws (a failure to close is said, and leaves it journaled open). */
  async leave(): Promise<string | undefined> {
    if (!this.open) return undefined
    try {
      await setMaintenance(this.ctx, false)
      this.open = false
      await this.ctx.target.state.append({
        event: 'maintenance',
        opId: this.opId(),
        t: new Date().toISOString(),
        on: false,
      })
      return undefined
    } catch (err) {
      const msg = `could not leave maintenance mode: ${errorMessage(err)}`
      this.ctx.ui.say(`hotctl: ${msg}`)
      return msg
    }
  }
}

/** Maintenance on or off: the configured commands, else the marker file through the Target. */
async function setMaintenance(ctx: OpContext, on: boolean, marker?: {reason: string; until: string}): Promise<void> {
  const cmds = ctx.config.maintenance
  const signal = new AbortController().signal // switching it off must happen even after an interrupt
  if (cmds) {
    const env: Record<string, string> = marker
      ? {HOTCTL_MAINTENANCE_REASON: marker.reason, HOTCTL_MAINTENANCE_UNTIL: marker.until}
      : {}
    await runStepCommand(ctx, on ? cmds.on : cmds.off, `maintenance.${on ? 'on' : 'off'}`, env, 60_000, signal)
  } else if (on) await ctx.target.writeMaintenance(marker!)
  else await ctx.target.clearMaintenance()
}

export interface DeployStepsOptions {
  release: () => string
  changes: () => ChangeSet | undefined
  opId: () => string
  dryRun: boolean
  /** Why the operation's later steps do not run (nothing to deploy), or false. */
  skipWhy: () => string | false
  /** `deploy --maintenance`: the window spans the whole deploy. */
  maintenance: boolean
  /** Called before a step runs: from then on the target may have changed. */
  onTouch: () => void
  /** Extra time the window is expected to last beyond the steps (reload, confirm, smoke). */
  proofMs: number
}

/** The release steps of one deploy: their tasks at each place, their undo, the maintenance window. */
export class DeploySteps {
  readonly report: StepsReport = {ran: [], skipped: [], undone: [], notUndone: []}
  private readonly ran: RanStep[] = []
  private selectedCache?: StepSpec[]
  readonly window: MaintenanceWindow

  constructor(
    private readonly ctx: OpContext,
    private readonly opts: DeployStepsOptions,
  ) {
    this.window = new MaintenanceWindow(ctx, opts.opId)
  }

  private get all(): StepSpec[] {
    return this.ctx.config.steps
  }

  private selected(): StepSpec[] {
    if (!this.selectedCache) {
      const changes = this.opts.changes()
      this.selectedCache = changes ? selectSteps(this.all, changes) : []
      this.report.skipped = this.all.filter((s) => !this.selectedCache!.includes(s)).map((s) => s.name)
    }
    return this.selectedCache
  }

  private dirOf(spec: StepSpec): string {
    return stepBackupDir(this.ctx.config.stateDir, this.opts.release(), this.all.indexOf(spec), spec.name)
  }

  private skip(what: string): string | false {
    return this.opts.skipWhy() || (this.opts.dryRun && `dry run: would ${what}`)
  }

  /** After the file backup: every selected step's backup, before anything is touched. */
  backupTasks(): Step[] {
    if (this.all.length === 0) return []
    return [
      {
        title: 'Back up what the steps change',
        does: `back up what the steps change (${
          this.all
            .filter((s) => s.backup)
            .map((s) => s.name)
            .join(', ') || 'none has a backup'
        })`,
        skip: () =>
          this.skip('back up what the steps change') ||
          (this.selected().length === 0 && 'no step runs for these changes'),
        task: async (_c, task) => {
          const done: string[] = []
          for (const spec of this.selected()) {
            const s: RanStep = {
              spec,
              dir: this.dirOf(spec),
              release: this.opts.release(),
              index: this.all.indexOf(spec),
            }
            // The directory exists for every step, so an undo can rely on it.
            await runStepCommand(
              this.ctx,
              {argv: ['mkdir', '-p', s.dir]},
              `creating ${s.dir}`,
              {},
              60_000,
              this.ctx.signal,
            )
            if (!spec.backup) {
              await this.record(s)
              continue
            }
            const base = {step: spec.name, action: 'backup' as const, release: s.release, dir: s.dir}
            await journalStep(this.ctx, this.opts.opId(), base)
            try {
              await runStepCommand(
                this.ctx,
                spec.backup,
                `step ${spec.name}: backup`,
                stepEnv(s),
                spec.timeoutMs,
                this.ctx.signal,
                this.opts.opId(),
              )
            } catch (err) {
              await journalStep(this.ctx, this.opts.opId(), {...base, ok: false})
              throw err
            }
            await journalStep(this.ctx, this.opts.opId(), {...base, ok: true})
            await this.record(s) // after the backup: a backup that empties its directory keeps it
            done.push(spec.name)
          }
          task.title = done.length > 0 ? `Back up what the steps change: ${done.join(', ')}` : 'No step has a backup'
        },
      },
    ]
  }

  /** Records the step's commands in its directory, for a later rollback (step-record.ts). */
  private async record(s: RanStep): Promise<void> {
    const warning = await writeStepRecord(this.ctx, s.dir, s.spec, s.index)
    if (warning) this.ctx.ui.say(`hotctl: warning: ${warning}`)
  }

  /** The steps at one place of the tree; under --maintenance the window opens with the first change. */
  tasks(at: StepSpec['at']): Step[] {
    const out: Step[] = []
    if (at === 'before-sync' && this.opts.maintenance) {
      out.push({
        title: 'Maintenance mode on',
        does: 'maintenance mode on (until the release, or the restored one, is confirmed live)',
        skip: () => this.skip('enter maintenance mode'),
        task: () => this.window.enter('deploy', this.expectedMs(this.selected())),
      })
    }
    for (const spec of this.all.filter((s) => s.at === at)) {
      out.push({
        title: `Step ${spec.name}`,
        does: `step ${spec.name}: ${spec.undo ? 'run (undo on failure)' : 'run (no undo)'}${spec.when ? ` when ${spec.when.join(', ')} changed` : ''}`,
        skip: () =>
          this.skip(`run step ${spec.name}`) ||
          (!this.selected().includes(spec) && `step ${spec.name}: no change matches ${spec.when!.join(', ')}`),
        task: () => this.runStep(spec),
      })
    }
    return out
  }

  /** Expected length of a window covering `steps` and the reload: an upper bound, for Retry-After. */
  private expectedMs(steps: StepSpec[]): number {
    return steps.reduce((ms, s) => ms + s.timeoutMs, this.opts.proofMs)
  }

  private async runStep(spec: StepSpec): Promise<void> {
    if (this.ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
    const order = this.selected()
    if (spec.maintenance)
      await this.window.enter(`step ${spec.name}`, this.expectedMs(order.slice(order.indexOf(spec))))
    const s: RanStep = {spec, dir: this.dirOf(spec), release: this.opts.release(), index: this.all.indexOf(spec)}
    const base = {step: spec.name, action: 'run' as const, release: s.release, dir: s.dir}
    await journalStep(this.ctx, this.opts.opId(), base)
    this.opts.onTouch()
    this.ran.push(s)
    this.report.ran.push(spec.name)
    try {
      await runStepCommand(
        this.ctx,
        spec.run,
        `step ${spec.name}`,
        stepEnv(s),
        spec.timeoutMs,
        this.ctx.signal,
        this.opts.opId(),
      )
    } catch (err) {
      await journalStep(this.ctx, this.opts.opId(), {...base, ok: false})
      throw err
    }
    await journalStep(this.ctx, this.opts.opId(), {...base, ok: true})
  }

  /** Before the smoke tests (of the new release, or of the restored one): the service opens again. */
  leaveTask(): Step {
    return {
      ...leaveWindowTask(this.window),
      enabled: () => this.opts.maintenance || this.all.some((s) => s.maintenance),
    }
  }

  /** After a failure: undo every step that ran, newest first. Resolves ok=false if any could not be. */
  async undo(): Promise<{ok: boolean; error?: string}> {
    const r = await undoSteps(this.ctx, this.opts.opId(), [...this.ran].reverse(), this.window, this.opts.maintenance)
    this.report.undone.push(...r.undone)
    this.report.notUndone.push(...r.notUndone)
    return r
  }

  /** Leaves maintenance mode if it is on: after success, and after a failure's restore. */
  close(): Promise<string | undefined> {
    return this.window.leave()
  }
}

/**
 * Runs the undo of `steps` in the order given, journaled; stops at the first that cannot be undone
 * (the ones after it may depend on it). A step's maintenance window is entered around its undo.
 */
async function undoSteps(
  ctx: OpContext,
  opId: string,
  steps: RanStep[],
  window: MaintenanceWindow,
  holdWindow: boolean,
): Promise<{ok: boolean; error?: string; undone: string[]; notUndone: {step: string; why: string}[]}> {
  const undone: string[] = []
  const notUndone: {step: string; why: string}[] = []
  const own = new AbortController().signal // the undo is what an interrupt asks for: it runs to the end
  for (const [i, s] of steps.entries()) {
    const {spec} = s
    const label = `undo step ${spec.name} of ${s.release}`
    try {
      if (!spec.undo) throw new Error(`step ${spec.name} has no undo: what it changed is still in place`)
      if (spec.maintenance || holdWindow) await window.enter(`undo ${spec.name}`, spec.timeoutMs)
      ctx.ui.say(`hotctl: ${label}`)
      const base = {step: spec.name, action: 'undo' as const, release: s.release, dir: s.dir}
      await journalStep(ctx, opId, base)
      try {
        await runStepCommand(ctx, spec.undo, label, stepEnv(s), spec.timeoutMs, own, opId)
      } catch (err) {
        await journalStep(ctx, opId, {...base, ok: false})
        throw err
      }
      await journalStep(ctx, opId, {...base, ok: true})
      undone.push(spec.name)
    } catch (err) {
      notUndone.push(
        ...steps
          .slice(i)
          .map((x, j) => ({step: x.spec.name, why: j === 0 ? errorMessage(err) : 'not tried: an earlier undo failed'})),
      )
      const error = `${label}: ${errorMessage(err)}`
      return {ok: false, error, undone, notUndone}
    }
  }
  return {ok: true, undone, notUndone}
}

const keyOf = (e: {release: string; step: string}) => `${e.release}/${e.step}`

/** Folds one operation's step records: a run applies its step from its start (it may have half-run); a finished undo takes it back. */
function fold(applied: Map<string, StepEvent>, op: JournalOp): void {
  for (const e of op.steps) {
    if (e.action === 'run' && e.ok === undefined) {
      applied.delete(keyOf(e)) // kept in the order they were applied
      applied.set(keyOf(e), e)
    } else if (e.action === 'undo' && e.ok === true) applied.delete(keyOf(e))
  }
}

/** Step runs recorded in the journal that no later undo put back (their latest run), in the order they were applied. */
export function appliedSteps(ops: JournalOp[]): StepEvent[] {
  const applied = new Map<string, StepEvent>()
  for (const op of ops) fold(applied, op)
  return [...applied.values()]
}

/**
 * The steps that were applied when `release` was last proven live (a deploy of it, or a rollback
 * to it, ended ok): what its code goes with. None for the tree from before hotctl (null). A journal
 * that never saw it live: the applied steps of releases up to it.
 */
export function appliedWhenLive(ops: JournalOp[], release: string | null): StepEvent[] {
  if (release === null) return []
  const applied = new Map<string, StepEvent>()
  let then: StepEvent[] | undefined
  for (const op of ops) {
    fold(applied, op)
    if (op.end?.result === 'ok' && op.op !== 'recover' && op.start.release === release) then = [...applied.values()]
  }
  return then ?? [...applied.values()].filter((e) => e.release <= release)
}

/** The step a journal record ran, with its recorded commands (or the config's); notes said by the caller. */
async function replayOf(ctx: OpContext, e: StepEvent, notes: string[]): Promise<RanStep | undefined> {
  const r = await replayedStep(ctx, e)
  if (r.note) notes.push(r.note)
  return r.spec ? {spec: r.spec, dir: e.dir, release: e.release, index: r.index} : undefined
}

/**
 * Runs the `run` of `steps` in the order given, journaled as runs of their own release (so they
 * count as applied again); a step's maintenance window is entered around it. Stops at the first
 * that fails: `failed` names it.
 */
async function runSteps(
  ctx: OpContext,
  opId: string,
  steps: RanStep[],
  window: MaintenanceWindow,
  signal: AbortSignal,
  verb: string,
): Promise<{ran: string[]; failed?: {step: RanStep; error: string}}> {
  const ran: string[] = []
  for (const s of steps) {
    const {spec} = s
    const label = `${verb} step ${spec.name} of ${s.release}`
    try {
      if (signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
      if (spec.maintenance) await window.enter(`${verb} ${spec.name}`, spec.timeoutMs)
      ctx.ui.say(`hotctl: ${label}`)
      const base = {step: spec.name, action: 'run' as const, release: s.release, dir: s.dir}
      await journalStep(ctx, opId, base)
      ran.push(spec.name)
      try {
        await runStepCommand(ctx, spec.run, label, stepEnv(s), spec.timeoutMs, signal, opId)
      } catch (err) {
        await journalStep(ctx, opId, {...base, ok: false})
        throw err
      }
      await journalStep(ctx, opId, {...base, ok: true})
    } catch (err) {
      return {ran, failed: {step: s, error: errorMessage(err)}}
    }
  }
  return {ran}
}

/** What is left when the redo of an undone step fails, and what to do about it. */
function redoFailure(f: {step: RanStep; error: string}): string {
  const {spec, dir} = f.step
  return (
    `redo of step ${spec.name} (release ${f.step.release}) failed: ${f.error}. ` +
    `Its data is as the undo left it, behind the files: fix the cause, then run the step's run command by hand ` +
    `(recorded in ${recordFile(dir)}) or deploy that release again`
  )
}

/** A step undone by an operation that did not finish, to be run again once its files are back. */
export interface RedoStep extends RanStep {
  /** Its undo was cut short: finished first (from its backup), then the step runs. */
  finishUndo?: boolean
}

/**
 * The task that re-runs steps an unfinished rollback undid, once the files it replaced are back
 * and verified (before the reload): in their original order, with their recorded commands, from
 * the backups they were deployed with. Runs to the end after an interrupt (it is part of the
 * restore); fails naming the step that could not be redone.
 */
export function redoTask(
  ctx: OpContext,
  opId: () => string,
  redo: RedoStep[],
  window: MaintenanceWindow,
  done: string[],
): Step {
  return {
    title: `Redo release steps the rollback undid: ${redo.map((s) => s.spec.name).join(', ')}`,
    task: async () => {
      const own = new AbortController().signal
      for (const s of redo.filter((x) => x.finishUndo)) {
        const u = await undoSteps(ctx, opId(), [s], window, false)
        if (!u.ok)
          throw new Error(redoFailure({step: s, error: `its interrupted undo could not be finished: ${u.error}`}))
      }
      const r = await runSteps(ctx, opId(), redo, window, own, 'redo')
      done.push(...(r.failed ? r.ran.slice(0, -1) : r.ran))
      if (r.failed) throw new Error(redoFailure(r.failed))
    },
  }
}

/**
 * Recovery of a killed operation: undo the steps it ran (newest first) before its files are
 * restored, and close a maintenance window it left open. A killed rollback's undone steps are
 * returned as `redo`, for redoTask once the files are back. `recoverOpId` journals all of it.
 */
export async function recoverSteps(
  ctx: OpContext,
  open: JournalOp,
  recoverOpId: string,
): Promise<{ok: boolean; error?: string; undone: string[]; redo: RedoStep[]; notes: string[]}> {
  const notes: string[] = []
  const ran = appliedSteps([open]).reverse()
  const window = new MaintenanceWindow(ctx, () => recoverOpId)
  let r: {ok: boolean; error?: string; undone: string[]} = {ok: true, undone: []}
  const resolved: RanStep[] = []
  for (const e of ran) {
    const s = await replayOf(ctx, e, notes)
    if (!s) {
      r = {
        ok: false,
        error: `step ${e.step} ran, but its commands are not recorded and it is no longer in the config: its undo is unknown`,
        undone: [],
      }
      break
    }
    resolved.push(s)
  }
  if (r.ok && resolved.length > 0) r = await undoSteps(ctx, recoverOpId, resolved, window, false)
  // Steps applied before the killed operation that it undid (their first record in it is an undo).
  const first = new Map<string, StepEvent>()
  for (const e of open.steps) if (!first.has(keyOf(e))) first.set(keyOf(e), e)
  const redo: RedoStep[] = []
  // Undone newest first: reversed, they are in their original order.
  for (const e of [...first.values()].filter((x) => x.action === 'undo').reverse()) {
    const s = await replayOf(ctx, e, notes)
    const finished = open.steps.some((x) => keyOf(x) === keyOf(e) && x.action === 'undo' && x.ok === true)
    if (s) redo.push({...s, finishUndo: !finished})
    else
      r = {
        ...r,
        ok: false,
        error: [r.error, `step ${e.step} was undone and cannot be redone: its commands are unknown`]
          .filter(Boolean)
          .join('; '),
      }
  }
  for (const n of notes) ctx.ui.say(`hotctl: ${n}`)
  if (open.maintenance || window.isOpen) {
    // The killed run's window: close it whatever the undo did.
    await setMaintenance(ctx, false).catch((err) =>
      ctx.ui.say(`hotctl: could not leave maintenance mode: ${errorMessage(err)}`),
    )
    await ctx.target.state.append({event: 'maintenance', opId: recoverOpId, t: new Date().toISOString(), on: false})
  }
  return {...r, redo, notes}
}

/** Did the killed operation run or undo a step (the target may have changed)? */
export const stepsRan = (open: JournalOp) => open.steps.some((e) => e.action === 'run' || e.action === 'undo')

/**
 * What a rollback to `to` does to release steps, so that data and code agree: the steps applied
 * now but not when `to` was live are undone (newest first, before the files are restored), and
 * those applied then but undone since (a roll-forward) are re-applied (oldest first: backed up,
 * then run at their place around the restore).
 */
export interface RollbackStepsPlan {
  undo: RanStep[]
  reapply: RanStep[]
  /** Steps that cannot be undone or re-run (no undo, or commands unknown): refused without --force. */
  irreversible: string[]
  /** Steps whose commands are unknown (no record, not in the config): passed over under --force. */
  unknown: string[]
  /** Where the recorded commands and the config part ways, or a record is missing. */
  notes: string[]
}

export async function planRollbackSteps(
  ctx: OpContext,
  ops: JournalOp[],
  to: string | null,
): Promise<RollbackStepsPlan> {
  const applied = appliedSteps(ops)
  const wanted = appliedWhenLive(ops, to)
  const wantedKeys = new Set(wanted.map(keyOf))
  const appliedKeys = new Set(applied.map(keyOf))
  const plan: RollbackStepsPlan = {undo: [], reapply: [], irreversible: [], unknown: [], notes: []}
  for (const e of applied.filter((x) => !wantedKeys.has(keyOf(x))).reverse()) {
    const s = await replayOf(ctx, e, plan.notes)
    if (!s) {
      plan.unknown.push(e.step)
      plan.irreversible.push(`${e.step} (release ${e.release}, commands unknown)`)
    } else {
      plan.undo.push(s)
      if (!s.spec.undo) plan.irreversible.push(`${e.step} (release ${e.release})`)
    }
  }
  for (const e of wanted.filter((x) => !appliedKeys.has(keyOf(x)))) {
    const s = await replayOf(ctx, e, plan.notes)
    if (s) plan.reapply.push(s)
    else {
      plan.unknown.push(e.step)
      plan.irreversible.push(`${e.step} (release ${e.release}, to re-run: commands unknown)`)
    }
  }
  return plan
}

/** Refuses a rollback over irreversible steps unless forced: the refusal names them. */
export function requireReversible(plan: RollbackStepsPlan, force: boolean): void {
  if (plan.irreversible.length === 0 || force) return
  throw new HotctlError(
    `rollback would have to undo steps that have no undo: ${plan.irreversible.join(', ')}`,
    EXIT.failed,
    'Nothing was changed. Add `undo:` to those steps in the config (a release without recorded commands takes them from there, by name), or pass --force to roll the files back and leave what the steps changed in place.',
    {irreversible: plan.irreversible},
  )
}

/**
 * Rollback: replays the undo of the planned steps from their stored backups (skipping those
 * without one under --force). A step's maintenance window stays open until the caller leaves it
 * (the rolled-back release confirmed live). `undone` lists what was undone, newest first.
 */
export async function undoForRollback(
  ctx: OpContext,
  opId: string,
  plan: RollbackStepsPlan,
  window: MaintenanceWindow,
): Promise<{ok: boolean; error?: string; undone: RanStep[]; skipped: string[]}> {
  const reversible = plan.undo.filter((s) => s.spec.undo)
  const skipped = [...plan.undo.filter((s) => !s.spec.undo).map((s) => s.spec.name), ...plan.unknown]
  const r = await undoSteps(ctx, opId, reversible, window, false)
  return {...r, undone: reversible.slice(0, r.undone.length), skipped}
}

/**
 * Roll-forward, part one: every re-applied step's backup, into a directory of its own beside the
 * one it was deployed with (that backup stays as it was), with its record copied there. Before any
 * of them runs, as in a deploy. Returns the steps with their new directories.
 */
export async function backupForReapply(ctx: OpContext, opId: string, steps: RanStep[]): Promise<RanStep[]> {
  const out: RanStep[] = []
  for (const s of steps) {
    const t: RanStep = {...s, dir: `${s.dir}.reapplied-${opId}`}
    await runStepCommand(ctx, {argv: ['mkdir', '-p', t.dir]}, `creating ${t.dir}`, {}, 60_000, ctx.signal)
    if (t.spec.backup) {
      const base = {step: t.spec.name, action: 'backup' as const, release: t.release, dir: t.dir}
      await journalStep(ctx, opId, base)
      try {
        await runStepCommand(
          ctx,
          t.spec.backup,
          `step ${t.spec.name} of ${t.release}: backup`,
          stepEnv(t),
          t.spec.timeoutMs,
          ctx.signal,
          opId,
        )
      } catch (err) {
        await journalStep(ctx, opId, {...base, ok: false})
        throw err
      }
      await journalStep(ctx, opId, {...base, ok: true})
    }
    const warning = await writeStepRecord(ctx, t.dir, t.spec, t.index)
    if (warning) ctx.ui.say(`hotctl: warning: ${warning}`)
    out.push(t)
  }
  return out
}

/**
 * Roll-forward, part two: the `run` of re-applied steps (those at one place), in order, journaled.
 * `onRun` gets each step as it starts (it may half-run: a later failure undoes it).
 */
export async function reapplySteps(
  ctx: OpContext,
  opId: string,
  steps: RanStep[],
  window: MaintenanceWindow,
  onRun: (s: RanStep) => void,
): Promise<void> {
  for (const s of steps) {
    onRun(s)
    const r = await runSteps(ctx, opId, [s], window, ctx.signal, 're-apply')
    if (r.failed) throw new Error(r.failed.error)
  }
}

/** A failed rollback: undo the steps it re-applied, newest first (as a deploy's failure does). */
export function undoReapplied(
  ctx: OpContext,
  opId: string,
  steps: RanStep[],
  window: MaintenanceWindow,
): Promise<{ok: boolean; error?: string; undone: string[]; notUndone: {step: string; why: string}[]}> {
  return undoSteps(ctx, opId, [...steps].reverse(), window, false)
}

/** A task that leaves `window` (before a smoke); a failure to leave fails the operation. */
export function leaveWindowTask(window: MaintenanceWindow): Step {
  return {
    title: 'Maintenance mode off',
    skip: () => !window.isOpen && 'not in maintenance mode',
    task: async () => {
      const failed = await window.leave()
      if (failed) throw new Error(failed)
    },
  }
}
