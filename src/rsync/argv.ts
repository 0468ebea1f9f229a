/**
 * rsync argv builders: pure, unit-tested, never a shell string. hotctl hands rsync the exact
 * list of paths to write (--files-from), worked out by content beforehand, so an unchanged file
 * is never rewritten (a fresh CI clone has new mtimes everywhere).
 */
import {encodeName} from '../file-names.js'

/**
 * --itemize-changes without its `%L`: the ` -> target` of a symlink cannot be told apart from a
 * name or target holding " -> " itself, and nothing here needs it.
 */
const ITEMIZE = '--out-format=%i %n'

export interface SyncArgs {
  source: string
  target: string
  /** rsync patterns that must never be written (protected paths, excludes): a second guard. */
  excludes: string[]
  dryRun?: boolean
}

export function syncArgv(a: SyncArgs): string[] {
  return [
    '--from0',
    '--files-from=-', // the planned paths, NUL-separated on stdin
    '--links', // symlinks as symlinks
    '--perms',
    // Every listed path differs by content: never let rsync's size+mtime quick check skip one
    // (a same-size edit within the target file's mtime second would otherwise be left out).
    '--ignore-times',
    '--dirs', // listed directories are created, not recursed
    // No --times: written files get a fresh mtime, never one older than the file they replace
    // (stale .pyc and mtime-comparing watchers). Never --inplace: a file is replaced by rename.
    '--delay-updates', // changed files land together at the end, narrowing the mixed-tree window
    ITEMIZE,
    '--8-bit-output', // names as they are (only control characters come escaped)
    // A preview runs before hotctl has cleared a directory that becomes a file or symlink: let the
    // dry run pretend it away (--force, perishable excludes). Never in a real sync, where rsync
    // must not delete: the plan refuses such a directory holding protected content.
    ...(a.dryRun ? ['--dry-run', '--force'] : []),
    ...a.excludes.map((p) => (a.dryRun ? `--filter=-p ${p}` : `--exclude=${p}`)),
    '--',
    withSlash(a.source),
    withSlash(a.target),
  ]
}

/**
 * The planning scan: rsync's own dry run over both trees with --delete, comparing size and mtime
 * to the nanosecond (--modify-window=-1; the default compares whole seconds). Its itemized output
 * is the candidate change set; hotctl then compares content where only the mtime differs.
 * `perishable` patterns (generated leftovers such as __pycache__) are excluded too, but do not keep
 * a directory alive that is going away or turning into a file or symlink: rsync's `p` modifier.
 */
export function planArgv(a: Omit<SyncArgs, 'dryRun'> & {perishable?: string[]}): string[] {
  return [
    '--dry-run',
    '--recursive',
    '--links',
    '--perms',
    '--times',
    '--delete',
    '--modify-window=-1',
    ITEMIZE,
    '--8-bit-output',
    ...a.excludes.map((p) => `--exclude=${p}`),
    ...(a.perishable ?? []).map((p) => `--filter=-p ${p}`),
    '--',
    withSlash(a.source),
    withSlash(a.target),
  ]
}

/**
 * stdin for --files-from with --from0: each path's exact bytes, NUL-terminated. rsync skips a
 * files-from line starting with '#' or ';' as a comment even with --from0, so every path gets
 * a `./` prefix, which rsync drops again (the implied --relative keeps the path below `./`).
 */
export function filesFromInput(paths: string[]): Buffer {
  return Buffer.concat(paths.flatMap((p) => [DOT_SLASH, encodeName(p), NUL]))
}

const DOT_SLASH = Buffer.from('./')
const NUL = Buffer.from([0])

function withSlash(dir: string): string {
  return dir.endsWith('/') ? dir : `${dir}/`
}

/** rsync's exit codes, as distinct failures. */
export function describeRsyncExit(code: number): string {
  const known: Record<number, string> = {
    1: 'syntax or usage error',
    2: 'protocol incompatibility',
    3: 'errors selecting input/output files or directories',
    5: 'error starting client-server protocol',
    10: 'error in socket I/O',
    11: 'error in file I/O (disk full? permissions?)',
    12: 'error in rsync protocol data stream',
    20: 'received SIGUSR1 or SIGINT',
    23: 'partial transfer due to error (some files were not written)',
    24: 'partial transfer: source files vanished during the sync',
    25: 'the --max-delete limit stopped deletions',
    30: 'timeout in data send/receive',
    35: 'timeout waiting for daemon connection',
  }
  return known[code] ?? `exit code ${code}`
}
