import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {describe, expect, it, vi} from 'vitest'
import {EXIT, HotctlError} from '../../src/errors.js'
import {Journal, type JournalEvent, TARGET_CHANGING, interruptedOperation, operations} from '../../src/state/journal.js'
import {type LockOwner, acquireLock, currentOwner, describeOwner, isStale, readLock} from '../../src/state/lock.js'
import {BackupIndex, type BackupMeta} from '../../src/state/backups.js'
import {registerSecret} from '../../src/secrets.js'
import {catchHotctl, tmpDir} from './helpers.js'

const T = '2025-01-01T00:00:00.000Z'
const start = (opId: string, op: 'deploy' | 'rollback' | 'recover' = 'deploy'): JournalEvent => ({
  event: 'start',
  op,
  opId,
  t: T,
  user: 'u',
  host: 'h',
  pid: 1,
  argv: [],
})
const phase = (opId: string, p: 'plan' | 'backup' | 'sync' | 'marker' | 'reload'): JournalEvent => ({
  event: 'phase',
  opId,
  t: T,
  phase: p,
})
const end = (opId: string, result: 'ok' | 'interrupted' | 'recovered' = 'ok'): JournalEvent => ({
  event: 'end',
  opId,
  t: T,
  result,
  exitCode: 0,
  durationMs: 1,
})

describe('Journal file', () => {
  it('appends one JSON line per event and reads them back in order', () => {
    const j = new Journal(path.join(tmpDir(), 'journal.jsonl'))
    const events = [start('20250101000000'), phase('20250101000000', 'backup'), end('20250101000000')]
    for (const e of events) j.append(e)
    expect(j.read()).toEqual(events)
    expect(fs.readFileSync(j.file, 'utf8').split('\n')).toHaveLength(4) // 3 lines + trailing newline
  })

  it('a missing journal reads as empty', () => {
    expect(new Journal(path.join(tmpDir(), 'none.jsonl')).read()).toEqual([])
  })

  it('tolerates a torn last line (crash mid-write)', () => {
    const j = new Journal(path.join(tmpDir(), 'journal.jsonl'))
    j.append(start('a'))
    j.append(phase('a', 'sync'))
    fs.appendFileSync(j.file, '{"event":"phase","opId":"a","t":"2025-01-0')
    expect(j.read()).toEqual([start('a'), phase('a', 'sync')])
    expect(interruptedOperation(j.read())).toMatchObject({opId: 'a', phases: ['sync']})
  })

  it('appending after a torn line keeps later events readable', () => {
    const j = new Journal(path.join(tmpDir(), 'journal.jsonl'))
    j.append(start('a'))
    fs.appendFileSync(j.file, '{"torn":')
    j.append(end('a')) // lands on the torn line's line: that line is lost, no crash
    const evs = j.read()
    expect(evs[0]).toEqual(start('a'))
  })

  it('skips lines of any other shape, warning once per line with its number and why', () => {
    const j = new Journal(path.join(tmpDir(), 'journal.jsonl'))
    j.append(start('20250101000000'))
    const bad = [
      'null',
      '42',
      '"text"',
      '[]',
      '{}',
      '{"event":"start","opId":"x","t":"t","op":"fly"}',
      '{"event":"phase","opId":"x","t":"t"}',
      '{"event":"child","opId":"x","t":"t","pgid":1}',
      '{"event":"end","opId":"x","t":"t"}',
      '{"event":"nope","opId":"x","t":"t"}',
    ]
    fs.appendFileSync(j.file, `${bad.join('\n')}\n`)
    j.append(end('20250101000000'))
    const warnings: string[] = []
    j.onBadLine = (m) => warnings.push(m)
    const events = j.read()
    expect(events.map((e) => e.event)).toEqual(['start', 'end'])
    expect(warnings).toHaveLength(bad.length)
    expect(warnings[0]).toContain('line 2 skipped (not an event object: null)')
    expect(warnings[7]).toContain('line 9 skipped (pgid is not a process group id)')
    j.read()
    expect(warnings).toHaveLength(bad.length) // once per line per process
    expect(operations(events)[0]!.end?.result).toBe('ok')
  })

  it('redacts registered secrets in what it writes', () => {
    registerSecret('journal-secret-value')
    const j = new Journal(path.join(tmpDir(), 'journal.jsonl'))
    j.append({
      event: 'end',
      opId: 'a',
      t: T,
      result: 'failed',
      exitCode: 1,
      durationMs: 1,
      error: 'auth journal-secret-value refused',
    })
    expect(fs.readFileSync(j.file, 'utf8')).not.toContain('journal-secret-value')
    expect(j.read()[0]).toMatchObject({error: 'auth *** refused'})
  })
})

describe('operations / interruptedOperation', () => {
  it('folds events into operations, oldest first, with phases and end', () => {
    const ops = operations([
      start('1'),
      phase('1', 'backup'),
      phase('1', 'sync'),
      end('1'),
      start('2', 'rollback'),
      phase('2', 'plan'),
    ])
    expect(ops.map((o) => [o.op, o.opId, o.phases, o.end?.result])).toEqual([
      ['deploy', '1', ['backup', 'sync'], 'ok'],
      ['rollback', '2', ['plan'], undefined],
    ])
  })

  it('ignores phase/end events of unknown operations', () => {
    expect(operations([phase('x', 'sync'), end('x'), start('1')]).map((o) => o.opId)).toEqual(['1'])
  })

  it('interleaved operations get their own events', () => {
    const ops = operations([start('1'), start('2', 'rollback'), phase('1', 'sync'), phase('2', 'backup'), end('2')])
    expect(ops[0]!.phases).toEqual(['sync'])
    expect(ops[0]!.end).toBeUndefined()
    expect(ops[1]!.phases).toEqual(['backup'])
    expect(ops[1]!.end).toBeDefined()
  })

  it('no interrupted operation when everything ended', () => {
    expect(interruptedOperation([start('1'), end('1'), start('2'), end('2')])).toBeUndefined()
    expect(interruptedOperation([])).toBeUndefined()
  })

  it('the latest unended deploy/rollback is the interrupted one', () => {
    const op = interruptedOperation([start('1'), phase('1', 'sync'), start('2'), phase('2', 'marker'), end('2')])
    expect(op?.opId).toBe('1')
    expect(op?.phases.at(-1)).toBe('sync')
  })

  it('an unended recover is never the interrupted operation', () => {
    expect(interruptedOperation([start('1'), end('1'), start('1-recover', 'recover')])).toBeUndefined()
  })

  it('once recovery closes the interrupted op (end event for it), nothing is interrupted', () => {
    const evs = [
      start('1'),
      phase('1', 'sync'),
      start('1-recover', 'recover'),
      end('1-recover', 'recovered'),
      end('1', 'interrupted'),
    ]
    expect(interruptedOperation(evs)).toBeUndefined()
    expect(operations(evs).map((o) => o.end?.result)).toEqual(['interrupted', 'recovered'])
  })

  it('TARGET_CHANGING starts at sync', () => {
    expect(TARGET_CHANGING.has('plan')).toBe(false)
    expect(TARGET_CHANGING.has('backup')).toBe(false)
    expect(TARGET_CHANGING.has('prune')).toBe(false)
    expect(TARGET_CHANGING.has('sync')).toBe(true)
    expect(TARGET_CHANGING.has('restore')).toBe(true)
  })
})

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', ''])
  expect(r.pid).toBeGreaterThan(0)
  expect(() => process.kill(r.pid!, 0)).toThrow()
  return r.pid!
}

describe('lock', () => {
  it('acquire writes the owner; release removes the file', () => {
    const file = path.join(tmpDir(), 'lock')
    const owner = currentOwner('deploy')
    const release = acquireLock(file, owner, () => {
      throw new Error('not stale')
    })
    expect(readLock(file)).toEqual(owner)
    release()
    expect(fs.existsSync(file)).toBe(false)
  })

  it('is exclusive: a second acquire throws exit code 5 naming the holder pid', () => {
    const file = path.join(tmpDir(), 'lock')
    const owner = currentOwner('deploy')
    acquireLock(file, owner, () => {})
    const onStale = vi.fn()
    const err = catchHotctl(() => acquireLock(file, {...currentOwner('rollback'), started: 'later'}, onStale))
    expect(err).toBeInstanceOf(HotctlError)
    expect(err.exitCode).toBe(EXIT.locked)
    expect(err.exitCode).toBe(5)
    expect(err.message).toContain(`pid ${process.pid}`)
    expect(err.hint).toContain(file)
    expect(onStale).not.toHaveBeenCalled()
    expect(readLock(file)).toEqual(owner) // untouched
  })

  it('a lock held by a dead pid on this host is cleared and onStale is called with it', () => {
    const file = path.join(tmpDir(), 'lock')
    const stale: LockOwner = {pid: deadPid(), host: os.hostname(), user: 'u', command: 'deploy', started: T}
    fs.writeFileSync(file, JSON.stringify(stale))
    const onStale = vi.fn()
    const me = currentOwner('deploy')
    const release = acquireLock(file, me, onStale)
    expect(onStale).toHaveBeenCalledTimes(1)
    expect(onStale).toHaveBeenCalledWith(stale)
    expect(readLock(file)).toEqual(me)
    release()
  })

  it('a lock from another host is never considered stale', () => {
    const file = path.join(tmpDir(), 'lock')
    const remote: LockOwner = {pid: deadPid(), host: `${os.hostname()}-other`, user: 'u', command: 'deploy', started: T}
    expect(isStale(remote)).toBe(false)
    fs.writeFileSync(file, JSON.stringify(remote))
    const err = catchHotctl(() => acquireLock(file, currentOwner('deploy'), () => {}))
    expect(err.exitCode).toBe(5)
    expect(err.message).toContain(`pid ${remote.pid}`)
  })

  it('isStale: live pid here → false, dead pid here → true', () => {
    expect(isStale({pid: process.pid, host: os.hostname(), user: 'u', command: 'c', started: T})).toBe(false)
    expect(isStale({pid: deadPid(), host: os.hostname(), user: 'u', command: 'c', started: T})).toBe(true)
  })

  it('release does not remove a lock that someone else now holds', () => {
    const file = path.join(tmpDir(), 'lock')
    const release = acquireLock(file, currentOwner('deploy'), () => {})
    const other: LockOwner = {pid: process.pid, host: os.hostname(), user: 'u', command: 'x', started: 'another-start'}
    fs.writeFileSync(file, JSON.stringify(other))
    release()
    expect(readLock(file)).toEqual(other)
  })

  it('describeOwner names pid, host, user, command', () => {
    const d = describeOwner({pid: 42, host: 'box', user: 'ann', command: 'deploy', started: T})
    for (const s of ['pid 42', 'box', 'ann', 'deploy', T]) expect(d).toContain(s)
  })

  it('readLock of a missing or garbage file is undefined', () => {
    const dir = tmpDir()
    expect(readLock(path.join(dir, 'none'))).toBeUndefined()
    fs.writeFileSync(path.join(dir, 'bad'), 'not json')
    expect(readLock(path.join(dir, 'bad'))).toBeUndefined()
  })
})

// Taking over a stale lock is serialised (<lock>.break), so two hotctls that both find the dead
// owner's lock cannot both end up "holding" it. Runs the built dist/state/lock.js in two separate
// processes; for each of many lock files (each holding a dead pid) both are released at the same
// instant (sub-millisecond clock) to take it.

const LOCK_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../dist/state/lock.js')
const ROUNDS = 150
const STEP_MS = 15

function childScript(dir: string): string {
  const file = path.join(dir, 'race.mjs')
  fs.writeFileSync(
    file,
    `import {performance} from 'node:perf_hooks'
import {acquireLock, currentOwner} from ${JSON.stringify(pathToFileURL(LOCK_JS).href)}
const [dir, rounds, goAt, step] = process.argv.slice(2).map((a, i) => (i === 0 ? a : Number(a)))
const now = () => performance.timeOrigin + performance.now()
const results = []
for (let r = 0; r < rounds; r++) {
  while (now() < goAt + r * step) {} // spin: both racers start within microseconds
  try {
    acquireLock(dir + '/lock-' + r, currentOwner('race'), () => {})
    results.push({won: true})
  } catch (err) {
    results.push({won: false, exitCode: err.exitCode, message: err.message})
  }
}
process.stdout.write(JSON.stringify({pid: process.pid, results}) + '\\n')
// Stay alive (holding the locks won) until the test has both answers.
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
`,
  )
  return file
}

function firstLine(p: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    p.stdout!.on('data', (d) => {
      out += String(d)
      if (out.includes('\n')) resolve(out.split('\n')[0]!)
    })
    p.stderr!.on('data', (d) => (err += String(d)))
    p.once('exit', (code) => reject(new Error(`racer exited (${code}) without an answer: ${err}`)))
  })
}

type Answer = {pid: number; results: {won: boolean; exitCode?: number; message?: string}[]}

describe('stale lock takeover race', () => {
  it('two processes breaking the same stale lock: exactly one wins, the other exits 5', {timeout: 60_000}, async () => {
    if (!fs.existsSync(LOCK_JS))
      throw new Error(`${LOCK_JS} is missing: run \`npx tsc -p .\` first (the racers run the built code)`)
    const dir = tmpDir()
    const script = childScript(dir)
    const dead = deadPid()
    const started = new Date(Date.now() - 60_000).toISOString()
    const stale = {
      pid: dead,
      host: os.hostname(),
      user: os.userInfo().username,
      command: 'hotctl deploy (killed)',
      started,
    }
    for (let r = 0; r < ROUNDS; r++) fs.writeFileSync(path.join(dir, `lock-${r}`), JSON.stringify(stale))
    const goAt = Date.now() + 1000
    const args = [script, dir, String(ROUNDS), String(goAt), String(STEP_MS)]
    const racers = [0, 1].map(() => spawn(process.execPath, args, {stdio: ['pipe', 'pipe', 'pipe']}))
    try {
      const [a, b] = (await Promise.all(racers.map(firstLine))).map((l) => JSON.parse(l) as Answer)
      const bad: string[] = []
      for (let r = 0; r < ROUNDS; r++) {
        const ra = a!.results[r]!
        const rb = b!.results[r]!
        const winners = [ra.won ? a!.pid : undefined, rb.won ? b!.pid : undefined].filter((p) => p !== undefined)
        const loser = ra.won ? rb : ra
        const holder = JSON.parse(fs.readFileSync(path.join(dir, `lock-${r}`), 'utf8')).pid
        if (winners.length !== 1) bad.push(`round ${r}: ${winners.length} winners`)
        else if (loser.exitCode !== 5) bad.push(`round ${r}: loser exit ${loser.exitCode}: ${loser.message}`)
        else if (holder !== winners[0]) bad.push(`round ${r}: lock names pid ${holder}, winner ${winners[0]}`)
        if (fs.existsSync(path.join(dir, `lock-${r}.break`))) bad.push(`round ${r}: .break left behind`)
      }
      expect(bad).toEqual([])
    } finally {
      for (const r of racers) r.stdin!.end()
      await Promise.all(
        racers.map((r) => (r.exitCode !== null ? undefined : new Promise((res) => r.once('exit', res)))),
      )
    }
  })
})

describe('BackupIndex', () => {
  const meta = (id: string): BackupMeta => ({
    id,
    time: T,
    reason: 'deploy',
    release: null,
    gitSha: null,
    files: 1,
    bytes: 2,
    added: 2,
    root: {'': 'abc'},
  })

  it('lists complete backups oldest first, skipping temp, foreign and unreadable files', () => {
    const dir = path.join(tmpDir(), 'backups')
    const idx = new BackupIndex(dir)
    idx.write(meta('20250102000000'))
    idx.write(meta('20250101000000'))
    fs.writeFileSync(path.join(dir, '20250103000000.json.tmp'), '{}')
    fs.writeFileSync(path.join(dir, '20250104000000.json'), '{torn')
    fs.writeFileSync(path.join(dir, 'notes.json'), '{}')
    expect(idx.list().map((b) => b.id)).toEqual(['20250101000000', '20250102000000'])
    expect(idx.get('20250102000000')).toEqual(meta('20250102000000'))
    expect(idx.get('20250104000000')).toBeUndefined()
    idx.remove('20250101000000')
    expect(idx.list().map((b) => b.id)).toEqual(['20250102000000'])
  })

  it('a missing dir lists nothing', () => {
    expect(new BackupIndex(path.join(tmpDir(), 'nope')).list()).toEqual([])
  })

  it('lists again reading only metadata files that changed: one rewritten, added or removed (by anyone) is seen', () => {
    const dir = path.join(tmpDir(), 'backups')
    const idx = new BackupIndex(dir)
    const other = new BackupIndex(dir) // another process, say
    idx.write(meta('20250101000000'))
    idx.write(meta('20250102000000'))
    expect(idx.list().map((b) => b.id)).toEqual(['20250101000000', '20250102000000'])
    const reads = vi.spyOn(fs, 'readFileSync')
    try {
      expect(idx.list().map((b) => b.id)).toEqual(['20250101000000', '20250102000000'])
      expect(reads).not.toHaveBeenCalled()
      other.write({...meta('20250102000000'), release: 'r2'})
      expect(idx.get('20250102000000')?.release).toBe('r2')
      expect(reads).toHaveBeenCalledTimes(1) // the rewritten file only
      other.write(meta('20250103000000'))
      other.remove('20250101000000')
      expect(idx.list().map((b) => b.id)).toEqual(['20250102000000', '20250103000000'])
      expect(reads).toHaveBeenCalledTimes(2) // and the new one
    } finally {
      reads.mockRestore()
    }
  })
})
