/**
 * Regression tests for the review fixes (commit "Review fixes: rsync runs in its own journaled
 * process group ..."): rsync patterns agree with hotctl's matcher (checked against real rsync),
 * a backup records the size of what it copied, and a stale lock is taken over by exactly one of
 * two racing processes.
 */
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {describe, expect, it} from 'vitest'
import {compilePatterns, matchesPathOrParent, rsyncPatterns} from '../../src/plan/patterns.js'
import {HashCache} from '../../src/store/hash-cache.js'
import {ObjectStore} from '../../src/store/objects.js'
import {diffAgainst, restoreTree, snapshotTree} from '../../src/store/snapshot.js'
import {walkTree} from '../../src/store/walk.js'
import {tmpDir, writeTree} from './helpers.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

// ---------------------------------------------------------------------------------------------
// Fix: rsync is given rsyncPatterns(...) — inner-slash patterns anchored, `**/` also matching no
// directory — so what rsync skips is exactly what compilePatterns + matchesPathOrParent skip.

const TREE = [
  'README.md',
  'app/main.py',
  'app/__pycache__/main.cpython-311.pyc',
  'm.pyc',
  'config/secrets.env',
  'config/prod/secrets.env',
  'config/prod/eu/secrets.env',
  'config/app.ini',
  'config/local.py',
  'lib/config/local.py',
  'lib/config/secrets.env',
  'data/app.db',
  'data/cache/c1',
  'src/data/cache/c2',
  'x/data/y.txt',
  'build/out.js',
  'src/build/out.js',
  'x.so',
  'lib/a/b/y.so',
  'a/c.txt',
  'a/b/c.txt',
  'a/x/b/c.txt',
  'a/b/y/c.txt',
  'a/x/b/y/c.txt',
  'z/a/b/c.txt',
  'docs/readme.md',
  'docs/sub/deep.md',
  'x/docs/readme.md',
  'static/index.html',
  'static/css/site.css',
  'node_modules/pkg/index.js',
  'app/mod/tmp/t.txt',
  'app/tmp/t.txt',
  'notes/a1.txt',
  'notes/c1.txt',
]

const PATTERN_SETS: string[][] = [
  ['config/**/secrets.env'],
  ['config/local.py'],
  ['data/'],
  ['data/cache'],
  ['/build'],
  ['/build/'],
  ['**/*.so'],
  ['a/**/b/**/c.txt'],
  ['docs/*.md'],
  ['static/**'],
  ['app/*/tmp/'],
  ['notes/[ab]*.txt'],
  ['__pycache__', '*.pyc', 'node_modules'],
  ['data/', '.env', 'config/**/secrets.env', 'config/local.py', '**/*.so', 'a/**/b/**/c.txt', '.hotctl-release.json'],
]

function sourceTree(): string {
  const src = path.join(tmpDir(), 'src')
  writeTree(src, Object.fromEntries(TREE.map((f) => [f, `${f}\n`])))
  return src
}

/** What real rsync transfers (files and dirs, dirs without their slash) with these --exclude's. */
function rsyncTransfers(src: string, excludes: string[]): Set<string> {
  const dst = path.join(path.dirname(src), 'dst')
  const r = spawnSync('rsync', ['-n', '-r', '--out-format=%n', ...excludes.map((p) => `--exclude=${p}`), '--', `${src}/`, `${dst}/`], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`rsync failed (${r.status}): ${r.stderr}`)
  return new Set(
    r.stdout
      .split('\n')
      .map((l) => l.trim().replace(/\/$/, ''))
      .filter((l) => l && l !== '.'),
  )
}

/** What hotctl's matcher says is deployable: every file and dir not excluded itself or by a parent. */
function hotctlTransfers(patterns: string[]): Set<string> {
  const m = compilePatterns(patterns)
  const out = new Set<string>()
  for (const f of TREE) {
    const parts = f.split('/')
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/')
      if (!matchesPathOrParent(m, dir, true)) out.add(dir)
    }
    if (!matchesPathOrParent(m, f, false)) out.add(f)
  }
  return out
}

const sorted = (s: Set<string>) => [...s].sort()

describe('rsyncPatterns against real rsync', () => {
  const haveRsync = spawnSync('rsync', ['--version']).status === 0

  it.skipIf(!haveRsync).each(PATTERN_SETS.map((p) => [p.join(' '), p] as const))('rsync skips exactly what hotctl skips: %s', (_name, patterns) => {
    const src = sourceTree()
    expect(sorted(rsyncTransfers(src, rsyncPatterns(patterns)))).toEqual(sorted(hotctlTransfers(patterns)))
  })

  it.skipIf(!haveRsync)('the raw patterns alone disagree with hotctl (so the comparison above has teeth)', () => {
    const src = sourceTree()
    for (const patterns of [['config/**/secrets.env'], ['config/local.py'], ['a/**/b/**/c.txt']]) {
      expect(sorted(rsyncTransfers(src, patterns)), patterns.join(' ')).not.toEqual(sorted(hotctlTransfers(patterns)))
    }
    // The two cases from the review, spelled out.
    expect(rsyncTransfers(src, rsyncPatterns(['config/**/secrets.env'])).has('config/secrets.env')).toBe(false)
    expect(rsyncTransfers(src, rsyncPatterns(['config/local.py'])).has('lib/config/local.py')).toBe(true)
    expect(rsyncTransfers(src, rsyncPatterns(['config/local.py'])).has('config/local.py')).toBe(false)
  })
})

// ---------------------------------------------------------------------------------------------
// Fix: the manifest records the size of what was copied (putFile's), not the walk's stat, so a
// file that grew between the walk and the copy restores and verifies cleanly.

describe('snapshotTree of a file that grows after the walk', () => {
  it('records the copied size; restore + diffAgainst is empty', () => {
    const base = tmpDir()
    const live = path.join(base, 'live')
    const store = new ObjectStore(path.join(base, 'state', 'objects'))
    writeTree(live, {'app/log.txt': 'line 1\n', 'app/main.py': 'print(1)\n'})
    const tree = walkTree(live, compilePatterns([]))
    const walkedSize = tree.entries.get('app/log.txt')!.size
    fs.appendFileSync(path.join(live, 'app/log.txt'), 'line 2, written after the walk\n')
    const grownSize = fs.statSync(path.join(live, 'app/log.txt')).size
    expect(grownSize).toBeGreaterThan(walkedSize)

    const snap = snapshotTree(tree, HashCache.open(), store)
    store.flush()
    const entry = snap.manifest.get('app/log.txt')!
    expect(entry.size).toBe(fs.statSync(store.pathOf(entry.hash!)).size) // the size of the stored object
    expect(entry.size).toBe(grownSize)
    expect(snap.bytes).toBe(grownSize + 'print(1)\n'.length)

    const restored = path.join(base, 'restored')
    restoreTree(snap.manifest, walkTree(restored, compilePatterns([])), store, HashCache.open())
    expect(diffAgainst(snap.manifest, walkTree(restored, compilePatterns([])), HashCache.open())).toEqual([])
    expect(fs.readFileSync(path.join(restored, 'app/log.txt'), 'utf8')).toBe('line 1\nline 2, written after the walk\n')
  })
})

// ---------------------------------------------------------------------------------------------
// Fix: taking over a stale lock is serialised (<lock>.break), so two hotctls that both find the
// dead owner's lock cannot both end up "holding" it. Runs the built dist/state/lock.js in two
// separate processes; for each of many lock files (each holding a dead pid) both are released at
// the same instant (sub-millisecond clock) to take it.

const LOCK_JS = path.join(ROOT, 'dist', 'state', 'lock.js')
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

async function deadPid(): Promise<number> {
  const p = spawn('true')
  await new Promise((r) => p.once('exit', r))
  return p.pid!
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
    if (!fs.existsSync(LOCK_JS)) throw new Error(`${LOCK_JS} is missing: run \`npx tsc -p .\` first (the racers run the built code)`)
    const dir = tmpDir()
    const script = childScript(dir)
    const dead = await deadPid()
    const stale = {pid: dead, host: os.hostname(), user: os.userInfo().username, command: 'hotctl deploy (killed)', started: new Date(Date.now() - 60_000).toISOString()}
    for (let r = 0; r < ROUNDS; r++) fs.writeFileSync(path.join(dir, `lock-${r}`), JSON.stringify(stale))
    const goAt = Date.now() + 1000
    const racers = [0, 1].map(() => spawn(process.execPath, [script, dir, String(ROUNDS), String(goAt), String(STEP_MS)], {stdio: ['pipe', 'pipe', 'pipe']}))
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
      await Promise.all(racers.map((r) => (r.exitCode !== null ? undefined : new Promise((res) => r.once('exit', res)))))
    }
  })
})
