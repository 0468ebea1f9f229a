import {EXIT, HotctlError} from '../errors.js'
import {newId} from '../ids.js'
import {
  type FileCounts,
  interruptedOperation,
  operations,
  type OpResult,
  type Phase,
  TARGET_CHANGING,
} from '../state/journal.js'
import {describeOwner} from '../state/lock.js'
import type {OpContext} from './context.js'
import {leaveWindowTask, MaintenanceWindow, recoverSteps, redoTask, stepsRan} from './release-steps.js'
import {restoreAndProve, type RestoreOutcome} from './restore.js'
import {settle} from './settle.js'

/** One journaled operation: start, phases (each appended before it starts), end. */
export class Operation {
  private ended = false

  private constructor(
    private readonly ctx: OpContext,
    readonly op: 'deploy' | 'rollback' | 'recover',
    readonly opId: string,
    /** When the command's work began (its preflight), so the journal's duration is the one it prints. */
    private readonly started: number,
  ) {}

  /** Journals the start (who, where, what) and returns the operation. */
  static async start(
    ctx: OpContext,
    op: Operation['op'],
    opId: string,
    extra: {backup?: string; release?: string; restores?: string; from?: string | null},
    since = Date.now(),
  ): Promise<Operation> {
    const {user, host} = await ctx.target.identity()
    await ctx.target.state.append({
      event: 'start',
      op,
      opId,
      t: new Date().toISOString(),
      ...extra,
      user,
      host,
      pid: process.pid,
      argv: process.argv.slice(2),
    })
    return new Operation(ctx, op, opId, since)
  }

  phase = (phase: Phase): Promise<void> =>
    this.ctx.target.state.append({event: 'phase', opId: this.opId, t: new Date().toISOString(), phase})

  child = (pgid: number): Promise<void> =>
    this.ctx.target.state.append({event: 'child', opId: this.opId, t: new Date().toISOString(), pgid})

  /** Journals the end; returns the duration it recorded (the one the command prints). */
  async end(
    result: OpResult,
    exitCode: number,
    extra: {error?: string; changes?: number; files?: FileCounts; recovered?: string} = {},
  ): Promise<number> {
    const durationMs = Date.now() - this.started
    if (this.ended) return durationMs
    this.ended = true
    await this.ctx.target.state.append({
      event: 'end',
      opId: this.opId,
      t: new Date().toISOString(),
      result,
      exitCode,
      durationMs,
      ...extra,
    })
    return durationMs
  }
}

/** A fresh id, later than every backup and journaled operation of this target. */
export async function nextId(ctx: OpContext): Promise<string> {
  const [backups, events] = await Promise.all([ctx.target.backups.list(), ctx.target.state.read()])
  const used = [...backups.map((b) => b.id), ...operations(events).map((o) => o.opId)]
  return newId(used.filter((id) => /^\d{14}$/.test(id)))
}

/** Takes the target's lock (clearing a dead owner's, with a message). Resolves to its release. */
export function lockTarget(ctx: OpContext, command: string): Promise<() => Promise<void>> {
  return ctx.target.state.lock(command, (old) =>
    ctx.ui.say(`hotctl: cleared a stale lock: ${describeOwner(old)} is no longer running`),
  )
}

export interface Recovery {
  interrupted: string
  op: string
  restored?: RestoreOutcome
}

/**
 * Journal-driven recovery, run under the lock before any new operation: an operation that
 * started and never ended (hotctl killed, even by SIGKILL) had its backup taken before the target
 * changed; put it back, prove it, and record it.
 */
export async function recoverInterrupted(ctx: OpContext, opts: {allowRestart: boolean}): Promise<Recovery | undefined> {
  const open = interruptedOperation(await ctx.target.state.read())
  if (!open) return undefined
  // A killed hotctl's rsync may still be writing: stop it before looking at the target.
  const [running] = await ctx.target.reapChildren(open.children)
  if (running !== undefined) {
    throw new HotctlError(
      `process group ${running} left by the interrupted ${open.op} ${open.opId} is still running`,
      EXIT.needsAttention,
      `Stop it (kill -KILL -${running}), then run hotctl again.`,
    )
  }
  const touched = open.phases.some((p) => TARGET_CHANGING.has(p)) || stepsRan(open)
  const backup = open.start.backup
  if (!touched || !backup) {
    ctx.ui.say(
      `hotctl: ${open.op} ${open.opId} was interrupted before it changed the target; closing it in the journal`,
    )
    const rec = await Operation.start(ctx, 'recover', `${open.opId}-recover`, {})
    await recoverSteps(ctx, open, rec.opId) // a maintenance window it opened is closed
    await rec.end('recovered', 0, {recovered: open.opId})
    await closeInterrupted(ctx, open.opId)
    return {interrupted: open.opId, op: open.op}
  }
  ctx.ui.say(
    `hotctl: ${open.op} ${open.opId} was interrupted after changing the target (last phase: ${open.phases.at(-1)}); restoring its backup ${backup} first`,
  )
  const rec = await Operation.start(ctx, 'recover', `${open.opId}-recover`, {backup})
  // Release steps it ran are undone first (newest first), then its files are restored: one unit.
  // A killed rollback's undone steps run again once the files are back, before the proof.
  const undo = await recoverSteps(ctx, open, rec.opId)
  const window = new MaintenanceWindow(ctx, () => rec.opId)
  const redo = undo.ok && undo.redo.length > 0 ? undo.redo : []
  let restored = await restoreAndProve(ctx, backup, rec.phase, {
    ...opts,
    ...(redo.length > 0
      ? {afterVerify: redoTask(ctx, () => rec.opId, redo, window, []), beforeSmoke: leaveWindowTask(window)}
      : {}),
  })
  await window.leave()
  if (!undo.ok) {
    const notRedone = undo.redo.length > 0 ? ' (the release steps it undid are not redone)' : ''
    restored = {...restored, ok: false, error: [`${undo.error}${notRedone}`, restored.error].filter(Boolean).join('; ')}
  }
  // The same settlement as deploy and rollback: a proven restore is this operation's success.
  const settled = settle({
    targetChanged: true,
    error: `${open.op} ${open.opId} was interrupted`,
    interrupted: false,
    restore: restored,
    recovering: true,
  })
  await rec.end(settled.result, settled.exitCode, {recovered: open.opId, error: restored.error})
  await closeInterrupted(ctx, open.opId, restored.ok ? backup : undefined)
  if (!restored.ok) {
    throw new HotctlError(
      `could not restore backup ${backup} of interrupted ${open.op} ${open.opId}: ${restored.error}`,
      EXIT.needsAttention,
      'The target needs attention: inspect it, then `hotctl rollback --to RELEASE` to a known-good release (`hotctl backups` lists them).',
      {restored},
    )
  }
  ctx.ui.say(`hotctl: restored backup ${backup} of the interrupted ${open.op} and verified it`)
  return {interrupted: open.opId, op: open.op, restored}
}

/** The interrupted operation's own end record, written by the run that recovered it. */
function closeInterrupted(ctx: OpContext, opId: string, recovered?: string): Promise<void> {
  const t = new Date().toISOString()
  return ctx.target.state.append({
    event: 'end',
    opId,
    t,
    result: 'interrupted',
    exitCode: EXIT.interrupted,
    durationMs: 0,
    recovered,
  })
}
