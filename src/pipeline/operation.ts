import os from 'node:os'
import {EXIT, HotctlError} from '../errors.js'
import {newId} from '../ids.js'
import {interruptedOperation, operations, type OpResult, type Phase, TARGET_CHANGING} from '../state/journal.js'
import {describeOwner} from '../state/lock.js'
import {reapGroup} from '../process/group.js'
import type {OpContext} from './context.js'
import {restoreAndProve, type RestoreOutcome} from './restore.js'

/** One journaled operation: start, phases (each appended before it starts), end. */
export class Operation {
  private readonly started = Date.now()
  private ended = false

  constructor(
    private readonly ctx: OpContext,
    readonly op: 'deploy' | 'rollback' | 'recover',
    readonly opId: string,
    extra: {backup?: string; release?: string; restores?: string; from?: string | null},
  ) {
    ctx.target.journal.append({event: 'start', op, opId, t: new Date().toISOString(), ...extra, user: os.userInfo().username, host: os.hostname(), pid: process.pid, argv: process.argv.slice(2)})
  }

  phase = (phase: Phase): void => {
    this.ctx.target.journal.append({event: 'phase', opId: this.opId, t: new Date().toISOString(), phase})
  }

  child = (pgid: number): void => {
    this.ctx.target.journal.append({event: 'child', opId: this.opId, t: new Date().toISOString(), pgid})
  }

  end(result: OpResult, exitCode: number, extra: {error?: string; changes?: number; recovered?: string} = {}): void {
    if (this.ended) return
    this.ended = true
    this.ctx.target.journal.append({event: 'end', opId: this.opId, t: new Date().toISOString(), result, exitCode, durationMs: Date.now() - this.started, ...extra})
  }
}

/** A fresh id, later than every backup and journaled operation of this target. */
export function nextId(ctx: OpContext): string {
  const used = [...ctx.target.backups().map((b) => b.id), ...operations(ctx.target.journal.read()).map((o) => o.opId)]
  return newId(used.filter((id) => /^\d{14}$/.test(id)))
}

/** Takes the target's lock (clearing a dead owner's, with a message). Returns the release. */
export function lockTarget(ctx: OpContext, command: string): () => void {
  return ctx.target.lock(command, (old) => ctx.ui.say(`hotctl: cleared a stale lock: ${describeOwner(old)} is no longer running`))
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
  const open = interruptedOperation(ctx.target.journal.read())
  if (!open) return undefined
  // A killed hotctl's rsync may still be writing: stop it before looking at the target.
  for (const pgid of open.children) {
    if (!(await reapGroup(pgid, '--files-from=-'))) {
      throw new HotctlError(`process group ${pgid} left by the interrupted ${open.op} ${open.opId} is still running`, EXIT.needsAttention, `Stop it (kill -KILL -${pgid}), then run hotctl again.`)
    }
  }
  const touched = open.phases.some((p) => TARGET_CHANGING.has(p))
  const backup = open.start.backup
  if (!touched || !backup) {
    ctx.ui.say(`hotctl: ${open.op} ${open.opId} was interrupted before it changed the target; closing it in the journal`)
    new Operation(ctx, 'recover', `${open.opId}-recover`, {}).end('recovered', 0, {recovered: open.opId})
    ctx.target.journal.append({event: 'end', opId: open.opId, t: new Date().toISOString(), result: 'interrupted', exitCode: EXIT.interrupted, durationMs: 0})
    return {interrupted: open.opId, op: open.op}
  }
  ctx.ui.say(`hotctl: ${open.op} ${open.opId} was interrupted after changing the target (last phase: ${open.phases.at(-1)}); restoring its backup ${backup} first`)
  const rec = new Operation(ctx, 'recover', `${open.opId}-recover`, {backup})
  const restored = await restoreAndProve(ctx, backup, rec.phase, opts)
  rec.end(restored.ok ? 'recovered' : 'attention', restored.ok ? 0 : EXIT.needsAttention, {recovered: open.opId, error: restored.error})
  ctx.target.journal.append({event: 'end', opId: open.opId, t: new Date().toISOString(), result: 'interrupted', exitCode: EXIT.interrupted, durationMs: 0, recovered: restored.ok ? backup : undefined})
  if (!restored.ok) {
    throw new HotctlError(`could not restore backup ${backup} of interrupted ${open.op} ${open.opId}: ${restored.error}`, EXIT.needsAttention, 'The target needs attention: inspect it, then `hotctl rollback --to RELEASE` to a known-good release (`hotctl backups` lists them).', {restored})
  }
  ctx.ui.say(`hotctl: restored backup ${backup} of the interrupted ${open.op} and verified it`)
  return {interrupted: open.opId, op: open.op, restored}
}
