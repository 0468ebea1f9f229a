import {EXIT, HotctlError} from '../errors.js'
import type {SshConnection} from '../ssh/connection.js'
import {Journal, type JournalEvent, journalLine} from '../state/journal.js'
import {currentOwner, describeOwner, isStale, type LockOwner, parseLock} from '../state/lock.js'
import type {StateStore} from './target.js'

/** The lock on the host: exclusive create (noclobber is O_EXCL), flushed; when held, its age in seconds and its text. */
const TAKE_LOCK = `d=$1
mkdir -p -- "$d" || exit 4
if ( set -C; printf '%s' "$2" > "$d/lock" ) 2>/dev/null; then sync -- "$d/lock" 2>/dev/null; exit 0; fi
m=$(stat -c %Y -- "$d/lock" 2>/dev/null) || exit 5
echo $(( $(date +%s) - m ))
cat -- "$d/lock"
exit 3`

/**
 * Removes the lock only while it is still the stale one that was read, and only by the holder of
 * lock.break (mkdir is atomic), so two controllers clearing it at once cannot remove a fresh lock.
 */
const BREAK_LOCK = `d=$1
if ! mkdir -- "$d/lock.break" 2>/dev/null; then
  m=$(stat -c %Y -- "$d/lock.break" 2>/dev/null) && [ $(( $(date +%s) - m )) -gt 10 ] && rmdir -- "$d/lock.break"
  exit 3
fi
[ "$(cat -- "$d/lock" 2>/dev/null)" = "$2" ] && rm -f -- "$d/lock"
rmdir -- "$d/lock.break"`

const RELEASE_LOCK = `[ "$(cat -- "$1/lock" 2>/dev/null)" = "$2" ] && rm -f -- "$1/lock"
exit 0`

/** One journal line appended and fsync'd (coreutils sync FILE) before the script returns. */
const APPEND = `mkdir -p -- "$1" && printf '%s' "$2" >> "$1/journal.jsonl" && sync -- "$1/journal.jsonl"`

const CAT = `cat -- "$1" 2>/dev/null
exit 0`

/**
 * The journal and the lock in the state dir on the host, so every controller (a laptop, two CI
 * runners) sees the same lock and history. Whether a lock's owner is gone can only be decided on
 * the machine it ran on: a lock taken by another controller is never cleared, it is exit 5.
 */
export class SshStateStore implements StateStore {
  private readonly journal: Journal

  constructor(
    private readonly conn: SshConnection,
    private readonly stateDir: string,
    warn: (message: string) => void,
  ) {
    this.journal = new Journal(`${conn.host.name}:${stateDir}/journal.jsonl`)
    this.journal.onBadLine = warn
  }

  async append(event: JournalEvent): Promise<void> {
    await this.conn.must('appending to the journal', APPEND, [this.stateDir, journalLine(event)])
  }

  async read(): Promise<JournalEvent[]> {
    const out = await this.conn.must('reading the journal', CAT, [`${this.stateDir}/journal.jsonl`])
    return this.journal.parse(out.toString('utf8'))
  }

  async lock(command: string, onStale: (old: LockOwner) => void): Promise<() => Promise<void>> {
    const owner = JSON.stringify(currentOwner(command))
    const where = `${this.conn.host.name}:${this.stateDir}/lock`
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await this.conn.run(TAKE_LOCK, [this.stateDir, owner])
      if (r.exitCode === 0) {
        return async () => {
          await this.conn.run(RELEASE_LOCK, [this.stateDir, owner])
        }
      }
      if (r.exitCode === 5) continue // removed meanwhile: take it again
      if (r.exitCode !== 3)
        throw new HotctlError(
          `could not take the lock ${where}: ${r.stderr.trim()}`,
          EXIT.failed,
          'Check the state dir on the host.',
        )
      const text = r.stdout.toString('utf8')
      const nl = text.indexOf('\n')
      const ageS = Number(text.slice(0, nl))
      const body = text.slice(nl + 1)
      const held = parseLock(body)
      if (!held && ageS < 10)
        throw new HotctlError(
          `target is being locked by another hotctl right now (${where})`,
          EXIT.locked,
          'Retry in a moment.',
        )
      if (held && !isStale(held)) {
        const foreign = held.host !== currentOwner('').host
        throw new HotctlError(
          `target ${where.slice(0, -5)} is locked by ${describeOwner(held)}`,
          EXIT.locked,
          foreign
            ? `Wait for that operation to finish. It ran on ${held.host}, another machine: only there can hotctl tell whether it is gone; if it really is, remove ${where}.`
            : `Wait for that operation to finish; if its process is really gone, remove ${where}.`,
          {lock: held},
        )
      }
      const b = await this.conn.run(BREAK_LOCK, [this.stateDir, body])
      if (b.exitCode === 3)
        throw new HotctlError(
          `another hotctl is taking over the stale lock ${where}`,
          EXIT.locked,
          'Retry in a moment.',
        )
      onStale(held ?? {pid: 0, host: '?', user: '?', command: '(unreadable lock)', started: '?'})
    }
    throw new HotctlError(`could not take the lock ${where}`, EXIT.locked, 'Retry; another hotctl raced for it.')
  }

  async readLock(): Promise<LockOwner | undefined> {
    const out = await this.conn.must('reading the lock', CAT, [`${this.stateDir}/lock`])
    return out.length ? parseLock(out.toString('utf8')) : undefined
  }

  /** Decidable only when the owner ran on this controller machine; otherwise it is never stale. */
  async isStale(owner: LockOwner): Promise<boolean> {
    return isStale(owner)
  }
}
