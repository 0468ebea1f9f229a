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

/** A failure's message; a raw errno error (ENOTDIR … scandir) is told in words, its code kept in brackets. */
export function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  return explainSystemError(err as NodeJS.ErrnoException) ?? err.message
}

/** What a file-system errno means for the path it names, or undefined when it is not one. */
export function explainSystemError(err: NodeJS.ErrnoException): string | undefined {
  const p = err.path
  if (!p || !err.code || !err.syscall) return undefined
  const what = {
    ENOTDIR: `${p} is not a directory (it, or a directory above it, is a file)`,
    EISDIR: `${p} is a directory, not a file`,
    ENOENT: `${p} does not exist`,
    EACCES: `${p}: permission denied`,
    EPERM: `${p}: operation not permitted`,
    EROFS: `${p} is on a read-only filesystem`,
    ENOSPC: `no space left on the device holding ${p}`,
    EEXIST: `${p} already exists`,
  }[err.code]
  return what ? `${what} (${err.code}, ${err.syscall})` : undefined
}

/** Why a path is not a usable directory, in words: the file that is in the way, when there is one. */
export function notADirectory(p: string, isFile: (q: string) => boolean): string {
  for (let q = p; ;) {
    if (isFile(q)) return q === p ? `${p} is a file, not a directory` : `${q} is a file, not a directory (above ${p})`
    const up = q.slice(0, Math.max(q.lastIndexOf('/'), 1))
    if (up === q) return `${p} is not a directory`
    q = up
  }
}
