import {spawnSync} from 'node:child_process'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {compilePatterns, matchesPathOrParent, rsyncPatterns} from '../../src/plan/patterns.js'
import {tmpDir, writeTree} from './helpers.js'

const m = (patterns: string[]) => compilePatterns(patterns)

describe('compilePatterns', () => {
  it('a bare name matches at any depth, files and dirs', () => {
    const p = m(['node_modules'])
    expect(p('node_modules', true)).toBe(true)
    expect(p('a/b/node_modules', true)).toBe(true)
    expect(p('a/node_modules', false)).toBe(true)
    expect(p('node_modules2', true)).toBe(false)
    expect(p('my_node_modules', true)).toBe(false)
    expect(p('node_modules/x', false)).toBe(false) // the child itself is not named node_modules
  })

  it('dir/ matches directories only', () => {
    const p = m(['cache/'])
    expect(p('cache', true)).toBe(true)
    expect(p('x/cache', true)).toBe(true)
    expect(p('cache', false)).toBe(false)
    expect(p('x/cache', false)).toBe(false)
  })

  it('an inner slash anchors at the root', () => {
    const p = m(['data/cache'])
    expect(p('data/cache', true)).toBe(true)
    expect(p('data/cache', false)).toBe(true)
    expect(p('x/data/cache', true)).toBe(false)
    expect(p('cache', true)).toBe(false)
  })

  it('a leading slash anchors at the root', () => {
    const p = m(['/build'])
    expect(p('build', true)).toBe(true)
    expect(p('src/build', true)).toBe(false)
    const d = m(['/build/'])
    expect(d('build', true)).toBe(true)
    expect(d('build', false)).toBe(false)
    expect(d('a/build', true)).toBe(false)
  })

  it('* stays within one segment', () => {
    const p = m(['*.pyc'])
    expect(p('x.pyc', false)).toBe(true)
    expect(p('a/b/x.pyc', false)).toBe(true) // unanchored: basename
    expect(p('x.pyc.bak', false)).toBe(false)
    const a = m(['logs/*.log'])
    expect(a('logs/a.log', false)).toBe(true)
    expect(a('logs/sub/a.log', false)).toBe(false)
    expect(a('x/logs/a.log', false)).toBe(false)
  })

  it('many patterns together match as each does alone (they are joined into a few expressions)', () => {
    const all = ['*.pyc', 'logs/*.log', 'cache/', '/build/', 'v?.txt', '[ab]x', 'node_modules', 'a|b', '(x)']
    const together = m(all)
    const paths = ['x.pyc', 'a/x.pyc', 'logs/a.log', 'x/logs/a.log', 'cache', 'x/cache', 'build', 'a/build']
    paths.push('v1.txt', 'ax', 'cx', 'node_modules', 'a|b', 'a', 'b', '(x)', 'x', 'logs', 'pyc', 'build.pyc/x')
    for (const rel of paths)
      for (const isDir of [true, false])
        expect(together(rel, isDir), `${rel} ${isDir}`).toBe(all.some((p) => m([p])(rel, isDir)))
  })

  it('? is one character, not a slash', () => {
    const p = m(['v?.txt'])
    expect(p('v1.txt', false)).toBe(true)
    expect(p('v12.txt', false)).toBe(false)
    expect(p('v.txt', false)).toBe(false)
    const a = m(['a?b'])
    expect(a('a/b', false)).toBe(false)
  })

  it('**/ matches zero or more directories', () => {
    const p = m(['**/*.so'])
    expect(p('x.so', false)).toBe(true)
    expect(p('lib/x.so', false)).toBe(true)
    expect(p('a/b/c/x.so', false)).toBe(true)
    expect(p('x.so.1', false)).toBe(false)
    const q = m(['vendor/**/native'])
    expect(q('vendor/native', true)).toBe(true)
    expect(q('vendor/a/b/native', true)).toBe(true)
    expect(q('other/vendor/native', true)).toBe(false)
  })

  it('** without a slash crosses segments', () => {
    const p = m(['static/**'])
    expect(p('static/a', false)).toBe(true)
    expect(p('static/a/b/c', false)).toBe(true)
    expect(p('static', true)).toBe(false)
  })

  it('regex metacharacters are literal', () => {
    const p = m(['a.b+c(d)'])
    expect(p('a.b+c(d)', false)).toBe(true)
    expect(p('aXb+c(d)', false)).toBe(false)
    expect(p('a.bbc(d)', false)).toBe(false)
    const dollar = m(['$HOME'])
    expect(dollar('$HOME', false)).toBe(true)
  })

  it('character classes, with ! negation', () => {
    const p = m(['file[0-9].txt'])
    expect(p('file3.txt', false)).toBe(true)
    expect(p('filex.txt', false)).toBe(false)
    const n = m(['file[!0-9].txt'])
    expect(n('filex.txt', false)).toBe(true)
    expect(n('file3.txt', false)).toBe(false)
  })

  it('no patterns match nothing; several patterns are or-ed', () => {
    expect(m([])('anything', false)).toBe(false)
    const p = m(['*.log', '/tmp/'])
    expect(p('a/x.log', false)).toBe(true)
    expect(p('tmp', true)).toBe(true)
    expect(p('a/tmp', true)).toBe(false)
  })

  it('surrounding whitespace in a pattern is ignored', () => {
    expect(m(['  *.log  '])('x.log', false)).toBe(true)
  })
})

describe('matchesPathOrParent', () => {
  it('matches a file through a matched parent directory', () => {
    const p = m(['node_modules'])
    expect(matchesPathOrParent(p, 'a/node_modules/pkg/index.js')).toBe(true)
    expect(matchesPathOrParent(p, 'a/src/index.js')).toBe(false)
  })
  it('dir-only patterns match parents (dirs) but not the file itself', () => {
    const p = m(['native/'])
    expect(matchesPathOrParent(p, 'lib/native/x.so')).toBe(true)
    expect(matchesPathOrParent(p, 'lib/native')).toBe(false) // a file called native
  })
  it('anchored parent patterns', () => {
    const p = m(['/config'])
    expect(matchesPathOrParent(p, 'config/app.yml')).toBe(true)
    expect(matchesPathOrParent(p, 'src/config/app.yml')).toBe(false)
  })
  it('the path itself', () => {
    expect(matchesPathOrParent(m(['**/*.so']), 'x.so')).toBe(true)
    expect(matchesPathOrParent(m(['**/*.so']), 'a/b/x.so')).toBe(true)
    expect(matchesPathOrParent(m(['**/*.so']), 'a/b/x.py')).toBe(false)
  })
})

// rsync is given rsyncPatterns(...) (inner-slash patterns anchored, `**/` also matching no
// directory), so what rsync skips is exactly what compilePatterns + matchesPathOrParent skip.

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
  const argv = ['-n', '-r', '--out-format=%n', ...excludes.map((p) => `--exclude=${p}`), '--', `${src}/`, `${dst}/`]
  const r = spawnSync('rsync', argv, {encoding: 'utf8'})
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

  const cases = PATTERN_SETS.map((p) => [p.join(' '), p] as const)
  it.skipIf(!haveRsync).each(cases)('rsync skips exactly what hotctl skips: %s', (_name, patterns) => {
    const src = sourceTree()
    expect(sorted(rsyncTransfers(src, rsyncPatterns(patterns)))).toEqual(sorted(hotctlTransfers(patterns)))
  })

  it.skipIf(!haveRsync)('the raw patterns alone disagree with hotctl (so the comparison above has teeth)', () => {
    const src = sourceTree()
    for (const patterns of [['config/**/secrets.env'], ['config/local.py'], ['a/**/b/**/c.txt']]) {
      expect(sorted(rsyncTransfers(src, patterns)), patterns.join(' ')).not.toEqual(sorted(hotctlTransfers(patterns)))
    }
    // The two cases where the raw patterns go wrong, spelled out.
    expect(rsyncTransfers(src, rsyncPatterns(['config/**/secrets.env'])).has('config/secrets.env')).toBe(false)
    expect(rsyncTransfers(src, rsyncPatterns(['config/local.py'])).has('lib/config/local.py')).toBe(true)
    expect(rsyncTransfers(src, rsyncPatterns(['config/local.py'])).has('config/local.py')).toBe(false)
  })
})

describe('compilePatterns: the last-character check (tails)', () => {
  it('plain names, suffixes and paths match as when every path is asked in full', () => {
    const plain = [
      '.git',
      '__pycache__',
      '*.pyc',
      'node_modules',
      '/.hotctl-maintenance.json',
      'build/out.txt',
      'ü',
      'q',
      '*z',
    ]
    const fast = compilePatterns(plain)
    // A pattern the last-character check cannot serve makes the matcher ask about every path.
    const full = compilePatterns([...plain, 'never[q]matched'])
    expect(fast.tails).toBeDefined()
    expect(full.tails).toBeUndefined()
    const paths = [
      '.git',
      'a/.git',
      'a/x.git',
      'a/b/__pycache__',
      'm.pyc',
      'd/m.pyc',
      'd/m.py',
      'pyc',
      'node_modules',
      'x/node_modules',
      '.hotctl-maintenance.json',
      'a/.hotctl-maintenance.json',
      'build/out.txt',
      'x/build/out.txt',
      'ü',
      'a/ü',
      'aü',
      'plain.txt',
      'a/b/c',
      'q',
      'a/q',
      'aq',
      'z',
      'a.z',
      'a/yz',
    ]
    for (const p of paths)
      for (const dir of [false, true]) expect([p, dir, fast(p, dir)]).toEqual([p, dir, full(p, dir)])
    expect(paths.filter((p) => fast(p, false))).toEqual([
      '.git',
      'a/.git',
      'a/b/__pycache__',
      'm.pyc',
      'd/m.pyc',
      'node_modules',
      'x/node_modules',
      '.hotctl-maintenance.json',
      'build/out.txt',
      'ü',
      'a/ü',
      'q',
      'a/q',
      'z',
      'a.z',
      'a/yz',
    ])
  })
})
