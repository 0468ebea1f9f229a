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
 * - The undo commands come from the config, by step name: the journal holds names and
 *   directories, never commands (they may carry secrets).
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

interface RanStep {
  spec: StepSpec
  dir: string
  release: string
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
            const s: RanStep = {spec, dir: this.dirOf(spec), release: this.opts.release()}
            // The directory exists for every step, so an undo can rely on it.
            await runStepCommand(
              this.ctx,
              {argv: ['mkdir', '-p', s.dir]},
              `creating ${s.dir}`,
              {},
              60_000,
              this.ctx.signal,
            )
            if (!spec.backup) continue
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
            done.push(spec.name)
          }
          task.title = done.length > 0 ? `Back up what the steps change: ${done.join(', ')}` : 'No step has a backup'
        },
      },
    ]
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
    const s: RanStep = {spec, dir: this.dirOf(spec), release: this.opts.release()}
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

/** Step runs recorded in `events` that no later undo put back, keyed `release/step`, oldest first. */
export function appliedSteps(ops: JournalOp[]): StepEvent[] {
  const applied = new Map<string, StepEvent>()
  for (const op of ops) {
    for (const e of op.steps) {
      const key = `${e.release}/${e.step}`
      if (e.action === 'run' && e.ok === undefined) applied.set(key, e)
      else if (e.action === 'undo' && e.ok === true) applied.delete(key)
    }
  }
  return [...applied.values()]
}

/** The config's step for a journaled record, by name. */
function specFor(ctx: OpContext, e: StepEvent): StepSpec | undefined {
  return ctx.config.steps.find((s) => s.name === e.step)
}

/**
 * Recovery of a killed operation: undo the steps it ran (newest first) before its files are
 * restored, and close a maintenance window it left open. `recoverOpId` journals the undos.
 */
export async function recoverSteps(
  ctx: OpContext,
  open: JournalOp,
  recoverOpId: string,
): Promise<{ok: boolean; error?: string; undone: string[]}> {
  const ran = appliedSteps([open]).reverse()
  const window = new MaintenanceWindow(ctx, () => recoverOpId)
  let r: {ok: boolean; error?: string; undone: string[]} = {ok: true, undone: []}
  if (ran.length > 0) {
    const missing = ran.find((e) => !specFor(ctx, e))
    r = missing
      ? {ok: false, error: `step ${missing.step} ran but is no longer in the config: its undo is unknown`, undone: []}
      : await undoSteps(
          ctx,
          recoverOpId,
          ran.map((e) => ({spec: specFor(ctx, e)!, dir: e.dir, release: e.release})),
          window,
          false,
        )
  }
  if (open.maintenance || window.isOpen) {
    // The killed run's window: close it whatever the undo did.
    await setMaintenance(ctx, false).catch((err) =>
      ctx.ui.say(`hotctl: could not leave maintenance mode: ${errorMessage(err)}`),
    )
    await ctx.target.state.append({event: 'maintenance', opId: recoverOpId, t: new Date().toISOString(), on: false})
  }
  return r
}

/** Does the killed operation's journal show a step that started running (the target may have changed)? */
export const stepsRan = (open: JournalOp) => open.steps.some((e) => e.action === 'run')

/** What a rollback to `to` must undo: applied steps of releases after it, newest first. */
export interface RollbackStepsPlan {
  undo: StepEvent[]
  /** Steps among them without an undo in the config (or no longer in it): refused without --force. */
  irreversible: string[]
}

export function planRollbackSteps(ctx: OpContext, ops: JournalOp[], to: string | null): RollbackStepsPlan {
  const after = (release: string) => to === null || release > to
  const undo = appliedSteps(ops)
    .filter((e) => after(e.release))
    .reverse()
  const irreversible = undo
    .filter((e) => !specFor(ctx, e)?.undo)
    .map((e) => `${e.step} (release ${e.release}${specFor(ctx, e) ? '' : ', no longer configured'})`)
  return {undo, irreversible}
}

/** Refuses a rollback over irreversible steps unless forced: the refusal names them. */
export function requireReversible(plan: RollbackStepsPlan, force: boolean): void {
  if (plan.irreversible.length === 0 || force) return
  throw new HotctlError(
    `rollback would have to undo steps that have no undo: ${plan.irreversible.join(', ')}`,
    EXIT.failed,
    'Nothing was changed. Add `undo:` to those steps in the config, or pass --force to roll the files back and leave what the steps changed in place.',
    {irreversible: plan.irreversible},
  )
}

/**
 * Rollback: replays the undo of the planned steps from their stored backups (skipping those
 * without one under --force). A step's maintenance window stays open until the caller leaves it
 * (the rolled-back release confirmed live).
 */
export async function undoForRollback(
  ctx: OpContext,
  opId: string,
  plan: RollbackStepsPlan,
  window: MaintenanceWindow,
): Promise<{ok: boolean; error?: string; undone: string[]; skipped: string[]}> {
  const reversible = plan.undo.filter((e) => specFor(ctx, e)?.undo)
  const skipped = plan.undo.filter((e) => !specFor(ctx, e)?.undo).map((e) => e.step)
  const r = await undoSteps(
    ctx,
    opId,
    reversible.map((e) => ({spec: specFor(ctx, e)!, dir: e.dir, release: e.release})),
    window,
    false,
  )
  return {...r, skipped}
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
