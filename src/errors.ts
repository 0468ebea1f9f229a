/** The one exit-code table (documented in README). */
export const EXIT = {
  ok: 0,
  // Failed before the target changed (preflight, checks, planning): nothing was touched.
  failed: 1,
  usage: 2,
  restored: 3,
  needsAttention: 4,
  locked: 5,
  needsRestart: 6,
  interrupted: 130,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** Every failure hotctl reports: what went wrong, what to do, and the exit code it maps to. */
export class HotctlError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly hint?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
    this.name = 'HotctlError'
  }
}

export const usageError = (message: string, hint?: string, details?: Record<string, unknown>) =>
  new HotctlError(message, EXIT.usage, hint, details)

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
