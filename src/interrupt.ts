/**
 * After SIGINT/SIGTERM the restore has to be done inside a CI runner's grace period: GitHub Actions
 * sends SIGTERM 7.5 s after SIGINT and SIGKILL 2.5 s after that (docker stop: SIGKILL after 10 s).
 * So once interrupted, a restore's proof takes its short form: every HTTP call ≤ 2 s with at most
 * one retry, commands ≤ 3 s, command smoke checks skipped, and all of it aimed at a deadline
 * 7 s after the first signal. The content is still verified in full.
 */
export const INTERRUPT_BUDGET_MS = 7000
const SHORT_HTTP_MS = 2000
const SHORT_COMMAND_MS = 3000
/** Even past the deadline a check gets this long: a proof cut to nothing proves nothing. */
const MIN_TRY_MS = 500

/** The abort reason base-command gives the operation's signal: which signal, and when. */
export class InterruptReason extends Error {
  constructor(
    readonly signalName: string,
    readonly at = Date.now(),
  ) {
    super(`interrupted by ${signalName}`)
    this.name = 'InterruptReason'
  }
}

/** The operator's interrupt as a restore sees it: has it fired, and by when must the proof be done? */
export class Interrupt {
  private seen?: number

  constructor(readonly signal: AbortSignal) {
    if (signal.aborted) this.seen = Date.now()
    else signal.addEventListener('abort', () => (this.seen = Date.now()), {once: true})
  }

  get fired(): boolean {
    return this.signal.aborted
  }

  /** Epoch ms by which the proof should be done; Infinity until the interrupt. */
  get deadline(): number {
    if (!this.signal.aborted) return Number.POSITIVE_INFINITY
    const reason: unknown = this.signal.reason
    return (reason instanceof InterruptReason ? reason.at : (this.seen ?? Date.now())) + INTERRUPT_BUDGET_MS
  }

  /** Milliseconds left until the deadline (0 when past it, Infinity before the interrupt). */
  remaining(): number {
    return Math.max(0, this.deadline - Date.now())
  }

  /** An HTTP request's limits in the short form (unchanged before the interrupt). */
  shortHttp<T extends {timeoutMs: number; retries: number}>(req: T): T {
    if (!this.fired) return req
    const timeoutMs = Math.max(MIN_TRY_MS, Math.min(req.timeoutMs, SHORT_HTTP_MS, this.remaining()))
    const retries = this.remaining() > 2 * timeoutMs ? Math.min(req.retries, 1) : 0
    return {...req, timeoutMs, retries}
  }

  /** A command's time limit in the short form (unchanged before the interrupt). */
  shortCommandMs(timeoutMs?: number): number | undefined {
    if (!this.fired) return timeoutMs
    return Math.max(MIN_TRY_MS, Math.min(timeoutMs ?? Number.POSITIVE_INFINITY, SHORT_COMMAND_MS, this.remaining()))
  }
}
