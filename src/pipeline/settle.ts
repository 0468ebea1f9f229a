import {errorMessage, EXIT, type ExitCode, HotctlError} from '../errors.js'
import type {OpResult} from '../state/journal.js'

/** How an operation that did not succeed ended, for the result, the exit code and the journal. */
export interface Settlement {
  outcome: 'failed' | 'restored' | 'needs-attention' | 'interrupted' | 'recovered'
  exitCode: ExitCode
  /** The journal's end record for the operation. */
  result: OpResult
  error: string
}

export interface FailureFacts {
  /** Did the operation reach a phase that may have changed the target? */
  targetChanged: boolean
  error: unknown
  /** The operator interrupted (SIGINT/SIGTERM). */
  interrupted: boolean
  /** The restore that followed, when the target had changed. */
  restore?: {ok: boolean; error?: string}
  /** Journal recovery of an interrupted operation: a proven restore is its success. */
  recovering?: boolean
}

/**
 * The one place that turns a failure into an outcome, an exit code and a journal record, for
 * deploy, rollback and recovery alike: 1 before the target changed (or the error's own code: 5
 * locked, 6 needs a restart), 3 restored and proven, 4 restore failed, 130 interrupted.
 */
export function settle(f: FailureFacts): Settlement {
  const own = f.error instanceof HotctlError ? f.error.exitCode : undefined
  const error = f.interrupted ? 'interrupted by signal' : errorMessage(f.error)
  if (!f.targetChanged) {
    if (f.interrupted) return {outcome: 'interrupted', exitCode: EXIT.interrupted, result: 'interrupted', error}
    const exitCode = own === EXIT.locked || own === EXIT.needsRestart || own === EXIT.usage ? own : EXIT.failed
    return {outcome: 'failed', exitCode, result: 'failed', error}
  }
  if (!f.restore?.ok) {
    const why = f.restore?.error ? `${error}; restore: ${f.restore.error}` : error
    return {outcome: 'needs-attention', exitCode: EXIT.needsAttention, result: 'attention', error: why}
  }
  if (f.recovering) return {outcome: 'recovered', exitCode: EXIT.ok, result: 'recovered', error}
  if (f.interrupted) return {outcome: 'interrupted', exitCode: EXIT.interrupted, result: 'interrupted', error}
  // The service itself said the change needs a restart (--no-restart): restored, and exit 6 says why.
  if (own === EXIT.needsRestart) return {outcome: 'restored', exitCode: EXIT.needsRestart, result: 'restored', error}
  return {outcome: 'restored', exitCode: EXIT.restored, result: 'restored', error}
}

/**
 * A failure before the operation started. An interrupt says 130, unless the error says more: a
 * recovery that could not restore (4) or a lock held by another operation (5).
 */
export function beforeTheOperation(ctx: {signal: AbortSignal}, err: unknown): unknown {
  const telling = err instanceof HotctlError && (err.exitCode === EXIT.needsAttention || err.exitCode === EXIT.locked)
  return ctx.signal.aborted && !telling ? new HotctlError('interrupted', EXIT.interrupted) : err
}
