import {EXIT, HotctlError} from '../errors.js'
import type {SshConnection} from '../ssh/connection.js'
import {Journal, type JournalEvent, journalLine} from '../state/journal.js'
import {currentOwner, describeOwner, isStale, type LockOwner, parseLock} from '../state/lock.js'
import type {StateStore} from './target.js'

/**
 * The lock on the host: exclusive create (noclobber is O_EXCL), flushed; when held, its age in
 * seconds and its text. Once taken, in the same round trip, what every operation reads first under
 * it: the journal and the release marker ($3), each as its length in bytes (`-`: none) and its bytes.
 */
const TAKE_LOCK = `d=$1
mkdir -p -- "$d" || exit 4
if ( set -C; printf '%s' "$2" > "$d/lock" ) 2>/dev/null; then
  sync -- "$d/lock" 2>/dev/null
  for f in "$d/journal.jsonl" "$3"; do
    if [ -f "$f" ]; then n=$(wc -c < "$f") && echo $n && head -c "$n" -- "$f" || exit 6; else echo -; fi
  done
  exit 0
fi
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

/** Journal lines appended and fsync'd (coreutils sync FILE) before the script returns. */
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
  /**
   * While this run holds the lock, nobody else writes the journal: its text as the lock read it,
   * with every line appended since, serves `read` (one round trip per run, not one per read).
   */
  private held?: {text: string}
  /** Lines appended but not yet on the host: they ride in front of the next script (see `append`). */
  private pending = ''

  constructor(
    private readonly conn: SshConnection,
    private readonly stateDir: string,
    warn: (message: string) => void,
    /** The release marker's path on the host, and who wants it as the lock read it (its text; undefined: none). */
    private readonly marker?: {file: string; onLocked: (text: string | undefined) => void; onUnlocked: () => void},
  ) {
    this.journal = new Journal(`${conn.host.name}:${stateDir}/journal.jsonl`)
    this.journal.onBadLine = warn
  }

  /**
   * Appended and fsync'd on the host before the action it records: a `start` and the phases whose
   * actions are all scripts on this host (backup, sync, marker) go in front of the next script of
   * this connection, in its round trip, and that script does not run unless they are durable
   * (rsync's sync first runs a script too). Every other event is appended now, with those queued.
   * A controller killed in between loses only lines whose action never began.
   */
  async append(event: JournalEvent): Promise<void> {
    const line = journalLine(event)
    if (this.held) this.held.text += line
    this.pending += line
    if (this.held && deferrable(event)) {
      this.conn.defer('journal', () => {
        const lines = this.pending
        this.pending = ''
        return lines ? {script: APPEND, args: [this.stateDir, lines], what: 'appending to the journal'} : undefined
      })
      return
    }
    const lines = this.pending
    this.pending = ''
    await this.conn.must('appending to the journal', APPEND, [this.stateDir, lines])
  }

  /** Whether this run holds the lock now. */
  get locked(): boolean {
    return this.held !== undefined
  }

  async read(): Promise<JournalEvent[]> {
    if (this.held) return this.journal.parse(this.held.text)
    const out = await this.conn.must('reading the journal', CAT, [`${this.stateDir}/journal.jsonl`])
    return this.journal.parse(out.toString('utf8'))
  }

  async lock(command: string, onStale: (old: LockOwner) => void): Promise<() => Promise<void>> {
    const owner = JSON.stringify(currentOwner(command))
    const where = `${this.conn.host.name}:${this.stateDir}/lock`
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await this.conn.run(TAKE_LOCK, [this.stateDir, owner, this.marker?.file ?? ''], {exact: true})
      if (r.exitCode === 0) {
        const [journal, marker] = lengthPrefixed(r.stdout, 2)
        if (journal === null) throw new Error(`reading the journal on ${this.conn.host.name}: output cut short`)
        this.held = {text: journal?.toString('utf8') ?? ''}
        this.marker?.onLocked(marker?.toString('utf8'))
        return async () => {
          this.held = undefined
          this.marker?.onUnlocked()
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

/** Events whose action is a script on the host (see SshStateStore.append). */
function deferrable(e: JournalEvent): boolean {
  return (
    e.event === 'start' || (e.event === 'phase' && (e.phase === 'backup' || e.phase === 'sync' || e.phase === 'marker'))
  )
}

/** `count` fields, each `<length>\n<bytes>` or `-\n` (absent: undefined); null when the output is cut short. */
function lengthPrefixed(out: Buffer, count: number): (Buffer | undefined)[] | [null] {
  const fields: (Buffer | undefined)[] = []
  let at = 0
  for (let i = 0; i < count; i++) {
    const nl = out.indexOf(0x0a, at)
    if (nl === -1) return [null]
    const head = out.toString('latin1', at, nl).trim()
    at = nl + 1
    if (head === '-') {
      fields.push(undefined)
      continue
    }
    const n = Number(head)
    if (!Number.isInteger(n) || at + n > out.length) return [null]
    fields.push(out.subarray(at, at + n))
    at += n
  }
  return fields
}
