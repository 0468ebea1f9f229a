import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {compilePatterns, type PathMatcher} from '../../src/plan/patterns.js'
import {statEntry, type Tree, walks, walkTree, walkTreeAsync, walkTreeNode} from '../../src/store/walk.js'
import {tmpDir, writeTree} from './helpers.js'

// walkTree and walkTreeAsync read GNU find's records; walkTreeNode is the lstat walk they fall
// back to. All three must give the same tree, to the last bit of every time.
const hasGnuFind = spawnSync('find', ['/', '-maxdepth', '0', '-printf', '%y']).stdout?.toString() === 'd'

const sorted = (t: Tree) => ({
  root: t.root,
  entries: [...t.entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  dirsWithSkipped: [...t.dirsWithSkipped].sort(),
  dirsWithProtected: [...t.dirsWithProtected].sort(),
})

/** A tree with every kind of entry and name the walk must keep exactly. */
function hostileTree(): string {
  const root = tmpDir()
  const raw = (...parts: (string | number[])[]) =>
    Buffer.concat([
      Buffer.from(`${root}/`),
      ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))),
    ])
  writeTree(root, {
    'plain.txt': 'plain',
    'dir/a.py': 'a',
    'dir/sub/b.py': 'bb',
    'dir/x.pyc': 'compiled',
    '-leading-dash': 'dash',
    ' spaced name ': 'space',
    'back\\slash': 'bs',
    'new\nline/inner\n': 'nl',
    'ünï/çødé.py': 'utf8',
    '.git/objects/ab/cdef': 'object',
    'deep/.git/HEAD': 'ref',
    'build/out.js': 'built',
    'keep/data/db.sqlite': 'live data',
    'keep/app.py': 'app',
  })
  fs.mkdirSync(raw([0x64, 0xff]))
  fs.writeFileSync(raw([0x64, 0xff, 0x2f, 0xfe, 0x0a]), 'not utf-8')
  fs.symlinkSync(Buffer.from([0x74, 0x0a, 0xff]), raw('weird-link'))
  fs.symlinkSync('dir', raw('dir-link'))
  fs.symlinkSync('missing/target', raw('dangling'))
  fs.mkdirSync(path.join(root, 'empty'))
  spawnSync('mkfifo', [path.join(root, 'fifo')])
  fs.chmodSync(path.join(root, 'dir/sub'), 0o1755)
  fs.chmodSync(path.join(root, 'plain.txt'), 0o4755)
  fs.chmodSync(path.join(root, 'dir/a.py'), 0o600)
  // Times with nanoseconds, one before 1970 and one far ahead.
  fs.utimesSync(path.join(root, 'dir/a.py'), 1_700_000_000.123456, 1_700_000_000.987654)
  fs.utimesSync(path.join(root, 'dir/sub/b.py'), 4_102_444_800.5, 4_102_444_800.000001)
  spawnSync('touch', [
    '-h',
    '-d',
    '1969-12-31 23:59:58.75',
    path.join(root, ' spaced name '),
    path.join(root, 'dangling'),
  ])
  return root
}

describe.runIf(hasGnuFind)('walkTree with find agrees with the lstat walk', () => {
  const cases: [string, PathMatcher, PathMatcher | undefined][] = [
    ['nothing skipped', compilePatterns([]), undefined],
    [
      'names, globs, anchored and directory-only patterns, some protected',
      compilePatterns(['.git', '*.pyc', '/build', 'data/', 'node_modules']),
      compilePatterns(['data/', '.git']),
    ],
    ['a skipped name that holds everything below', compilePatterns(['dir', 'new\nline']), compilePatterns(['dir'])],
    [
      'plain names, suffixes and paths only (records whose last byte no pattern ends in are not decoded)',
      compilePatterns(['.git', '*.pyc', '/build', 'node_modules', 'keep/data/db.sqlite', 'b.py']),
      compilePatterns(['keep/data/db.sqlite', 'b.py']),
    ],
  ]
  for (const [what, skip, protect] of cases) {
    it(what, async () => {
      const root = hostileTree()
      const byNode = sorted(walkTreeNode(root, skip, protect))
      const before = {...walks}
      expect(sorted(walkTree(root, skip, protect))).toEqual(byNode)
      expect(sorted(await walkTreeAsync(root, skip, protect))).toEqual(byNode)
      expect(walks).toEqual({find: before.find + 2, lstat: before.lstat}) // no fallback hid a difference
    })
  }

  it('every entry is exactly what lstat says (times to the last bit: hash caches compare them)', async () => {
    const root = hostileTree()
    const tree = await walkTreeAsync(root, compilePatterns([]))
    expect(tree.entries.size).toBeGreaterThan(20)
    for (const [rel, e] of tree.entries) expect(e, rel).toEqual(statEntry(path.join(root, rel)))
    expect(tree.entries.get('dir/a.py')).toMatchObject({mode: 0o600})
    expect(Math.round(tree.entries.get('dir/a.py')!.mtimeMs)).toBe(1_700_000_000_988) // sub-ms digits kept, not rounded
    expect(tree.entries.get('dir/sub')).toMatchObject({type: 'dir', mode: 0o1755})
    expect(tree.entries.get('plain.txt')).toMatchObject({mode: 0o4755})
    expect(tree.entries.get('weird-link')).toMatchObject({type: 'symlink', link: 't\n\udcff'})
    expect(tree.entries.has('fifo')).toBe(false)
    expect(tree.entries.get(' spaced name ')).toMatchObject({mtimeMs: -1250})
  })

  it('a pruned name (.git) is reported as skipped, protected where it is, and nothing under it is listed', async () => {
    const root = hostileTree()
    const tree = await walkTreeAsync(root, compilePatterns(['.git']), compilePatterns(['.git']))
    expect([...tree.entries.keys()].filter((k) => k.includes('.git'))).toEqual([])
    expect([...tree.dirsWithProtected].sort()).toEqual(['', 'deep'])
  })

  it('a missing root is an empty tree; a root that is a file fails as the lstat walk does', async () => {
    const root = tmpDir()
    expect((await walkTreeAsync(path.join(root, 'none'), compilePatterns([]))).entries.size).toBe(0)
    fs.writeFileSync(path.join(root, 'file'), 'x')
    expect(() => walkTree(path.join(root, 'file'), compilePatterns([]))).toThrow(/ENOTDIR/)
    await expect(walkTreeAsync(path.join(root, 'file'), compilePatterns([]))).rejects.toThrow(/ENOTDIR/)
  })

  it('a root given through a symlink is walked (as readdir follows it)', async () => {
    const root = hostileTree()
    const link = path.join(tmpDir(), 'link')
    fs.symlinkSync(root, link)
    const viaLink = await walkTreeAsync(link, compilePatterns([]))
    expect(sorted(viaLink).entries).toEqual(sorted(walkTreeNode(root, compilePatterns([]))).entries)
  })
})

// Last: without find on PATH the walk falls back to lstat (and stays there for this process).
describe('walkTree without find', () => {
  it('walks with lstat', async () => {
    const root = hostileTree()
    const want = sorted(walkTreeNode(root, compilePatterns(['.git'])))
    const saved = process.env.PATH
    process.env.PATH = tmpDir()
    const before = {...walks}
    try {
      expect(sorted(await walkTreeAsync(root, compilePatterns(['.git'])))).toEqual(want)
      expect(sorted(walkTree(root, compilePatterns(['.git'])))).toEqual(want)
      expect(walks).toEqual({find: before.find, lstat: before.lstat + 2})
    } finally {
      process.env.PATH = saved
    }
  })
})
