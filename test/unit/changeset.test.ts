import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {changeCount, changeSetFromItemize} from '../../src/plan/changeset.js'
import {diffTrees} from '../../src/plan/diff-trees.js'
import {MARKER_NAME} from '../../src/config/resolve.js'
import {planArgv} from '../../src/rsync/argv.js'
import {type ItemizedChange, parseItemize} from '../../src/rsync/itemize.js'
import {fsPath} from '../../src/file-names.js'
import {HashCache} from '../../src/store/hash-cache.js'
import {hashFile} from '../../src/store/hash.js'
import {walkTree, walkTreeNode} from '../../src/store/walk.js'
import {compilePatterns, matchesPathOrParent} from '../../src/plan/patterns.js'
import {tmpDir, writeTree} from './helpers.js'

const item = (code: string, p: string): ItemizedChange => parseItemize(`${code} ${p}`)[0]!
const never = () => false
const always = () => true

describe('changeSetFromItemize (synthetic items)', () => {
  it('added, deleted, sorted; root dir and ignored paths skipped', () => {
    const items = [
      item('>f+++++++++', 'z.txt'),
      item('cd+++++++++', 'adir/'),
      item('*deleting  ', 'old'),
      item('.d..t......', './'),
      item('>f+++++++++', MARKER_NAME),
    ]
    const cs = changeSetFromItemize(items, always, (rel) => rel === MARKER_NAME)
    expect(cs).toEqual({added: ['adir', 'z.txt'], changed: [], deleted: ['old']})
  })

  it('a size change is a change without consulting content', () => {
    let asked = 0
    const cs = changeSetFromItemize([item('>f.st......', 'a')], () => (asked++, true), never)
    expect(cs.changed).toEqual(['a'])
    expect(asked).toBe(0)
  })

  it('only the mtime differs: content decides', () => {
    expect(changeSetFromItemize([item('>f..t......', 'a')], always, never).changed).toEqual([])
    expect(changeSetFromItemize([item('>f..t......', 'a')], never, never).changed).toEqual(['a'])
    expect(changeSetFromItemize([item('.f..t......', 'a')], always, never).changed).toEqual([])
  })

  it('a permission change on a file is a change even with equal content', () => {
    expect(changeSetFromItemize([item('.f...p.....', 'run.sh')], always, never).changed).toEqual(['run.sh'])
    expect(changeSetFromItemize([item('>f..tp.....', 'run.sh')], always, never).changed).toEqual(['run.sh'])
  })

  it('directories: a time-only difference never counts, a permission change does', () => {
    expect(changeSetFromItemize([item('.d..t......', 'dir/')], never, never).changed).toEqual([])
    expect(changeSetFromItemize([item('.d...p.....', 'dir/')], never, never).changed).toEqual(['dir'])
  })

  it('a changed symlink target is a change', () => {
    expect(changeSetFromItemize([item('cL.s.......', 'cur')], always, never).changed).toEqual(['cur'])
  })

  it('counts', () => {
    expect(changeCount({added: ['a'], changed: ['b', 'c'], deleted: ['d']})).toBe(4)
    expect(changeCount({added: [], changed: [], deleted: []})).toBe(0)
  })
})

// The real planning scan: rsync's dry run with planArgv, then content comparison by hash cache,
// exactly as the local target does it.
const hasRsync = spawnSync('rsync', ['--version']).status === 0

function setup(src: Record<string, string>, dst: Record<string, string>) {
  const root = tmpDir()
  const s = path.join(root, 'src')
  const d = path.join(root, 'dst')
  fs.mkdirSync(s)
  fs.mkdirSync(d)
  writeTree(s, src)
  writeTree(d, dst)
  return {s, d}
}

function plan(s: string, d: string, excludes: string[] = [], perishable: string[] = []) {
  const r = spawnSync('rsync', planArgv({source: s, target: d, excludes: [...excludes, MARKER_NAME], perishable}))
  expect(r.status, String(r.stderr)).toBe(0)
  const skip = compilePatterns([...excludes, ...perishable])
  const src = walkTree(s, skip)
  const dst = walkTree(d, skip)
  const srcCache = HashCache.open()
  const dstCache = HashCache.open()
  const sameContent = (rel: string) => {
    const a = src.entries.get(rel)
    const b = dst.entries.get(rel)
    return (
      !!a &&
      !!b &&
      a.type === 'file' &&
      b.type === 'file' &&
      a.size === b.size &&
      srcCache.hash(s, rel, a) === dstCache.hash(d, rel, b)
    )
  }
  const cs = changeSetFromItemize(
    parseItemize(r.stdout),
    sameContent,
    (rel, isDir) => rel === MARKER_NAME || matchesPathOrParent(skip, rel, isDir),
  )
  // The planner LocalTarget uses (two walks, no rsync) must agree with rsync's own scan.
  const protect = compilePatterns(excludes)
  const walked = diffTrees(
    walkTree(s, skip, protect),
    walkTree(d, skip, protect),
    (rel, a, b, mtimeEqual) => mtimeEqual || srcCache.hash(s, rel, a) === dstCache.hash(d, rel, b),
    (rel) => rel === MARKER_NAME,
  )
  expect(walked).toEqual(cs)
  // The lstat walk (what walkTree falls back to without GNU find) plans the same.
  const byLstat = diffTrees(
    walkTreeNode(s, skip, protect),
    walkTreeNode(d, skip, protect),
    (rel, a, b, mtimeEqual) => mtimeEqual || srcCache.hash(s, rel, a) === dstCache.hash(d, rel, b),
    (rel) => rel === MARKER_NAME,
  )
  expect(byLstat).toEqual(cs)
  return {cs, srcCache, dstCache, stdout: r.stdout}
}

const setMtime = (file: string, seconds: number) => fs.utimesSync(file, seconds, seconds)
const empty = {added: [], changed: [], deleted: []}

describe.runIf(hasRsync)('planning scan on real trees (rsync dry run + content)', () => {
  it('identical trees with identical mtimes: no change, nothing hashed', () => {
    const {s, d} = setup({'a.txt': 'A', 'dir/b.txt': 'B'}, {'a.txt': 'A', 'dir/b.txt': 'B'})
    for (const rel of ['a.txt', 'dir/b.txt', 'dir']) {
      setMtime(path.join(s, rel), 1_500_000_000)
      setMtime(path.join(d, rel), 1_500_000_000)
    }
    const {cs, srcCache, dstCache} = plan(s, d)
    expect(cs).toEqual(empty)
    expect(srcCache.hashed + dstCache.hashed).toBe(0)
  })

  it('same content with different mtimes (a fresh clone): no change, decided by hash', () => {
    const {s, d} = setup({'a.txt': 'same content', 'dir/b': 'bb'}, {'a.txt': 'same content', 'dir/b': 'bb'})
    setMtime(path.join(s, 'a.txt'), 2_000_000_000)
    setMtime(path.join(d, 'a.txt'), 1_000_000_000)
    setMtime(path.join(s, 'dir'), 2_000_000_000)
    const {cs, srcCache} = plan(s, d)
    expect(cs).toEqual(empty)
    expect(srcCache.hashed).toBeGreaterThanOrEqual(1)
  })

  it('different content, same size, different mtime: changed', () => {
    const {s, d} = setup({'a.txt': 'AAAA', 'b.txt': 'same'}, {'a.txt': 'BBBB', 'b.txt': 'same'})
    for (const f of ['a.txt', 'b.txt']) {
      setMtime(path.join(s, f), 2_000_000_000)
      setMtime(path.join(d, f), 1_000_000_000)
    }
    expect(plan(s, d).cs).toEqual({added: [], changed: ['a.txt'], deleted: []})
  })

  it('different content, same size, mtimes differing by less than a second: changed', () => {
    const {s, d} = setup({'a.txt': 'AAAA'}, {'a.txt': 'BBBB'})
    fs.utimesSync(path.join(s, 'a.txt'), 1_000_000_000.5, 1_000_000_000.5)
    fs.utimesSync(path.join(d, 'a.txt'), 1_000_000_000.25, 1_000_000_000.25)
    expect(plan(s, d).cs.changed).toEqual(['a.txt'])
  })

  it('different size: changed', () => {
    const {s, d} = setup({'a.txt': 'longer content'}, {'a.txt': 'short'})
    expect(plan(s, d).cs.changed).toEqual(['a.txt'])
  })

  it('added and deleted files and directories', () => {
    const {s, d} = setup(
      {'keep.txt': 'k', 'new/z.txt': 'z', 'b-new.txt': 'b'},
      {'keep.txt': 'k', 'gone/y.txt': 'y', 'a-gone.txt': 'a'},
    )
    setMtime(path.join(s, 'keep.txt'), 1_500_000_000)
    setMtime(path.join(d, 'keep.txt'), 1_500_000_000)
    const {cs} = plan(s, d)
    expect(cs.added).toEqual(['b-new.txt', 'new', 'new/z.txt'])
    expect(cs.deleted).toEqual(['a-gone.txt', 'gone', 'gone/y.txt'])
    expect(cs.changed).toEqual([])
  })

  it('a mode change is a change (content equal)', () => {
    const {s, d} = setup({'run.sh': 'echo'}, {'run.sh': 'echo'})
    fs.chmodSync(path.join(s, 'run.sh'), 0o755)
    fs.chmodSync(path.join(d, 'run.sh'), 0o644)
    expect(plan(s, d).cs.changed).toEqual(['run.sh'])
  })

  it('a directory mode change is a change', () => {
    const {s, d} = setup({'dir/x': 'x'}, {'dir/x': 'x'})
    fs.chmodSync(path.join(s, 'dir'), 0o700)
    fs.chmodSync(path.join(d, 'dir'), 0o755)
    expect(plan(s, d).cs.changed).toContain('dir')
  })

  it('a changed symlink target is a change', () => {
    const {s, d} = setup({t1: '1', t2: '2'}, {t1: '1', t2: '2'})
    fs.symlinkSync('t2', path.join(s, 'cur'))
    fs.symlinkSync('t1', path.join(d, 'cur'))
    expect(plan(s, d).cs.changed).toContain('cur')
  })

  it('an identical symlink with a different mtime (a fresh clone) is not a change', () => {
    const {s, d} = setup({t1: '1'}, {t1: '1'})
    setMtime(path.join(s, 't1'), 1_500_000_000)
    setMtime(path.join(d, 't1'), 1_500_000_000)
    fs.symlinkSync('t1', path.join(d, 'cur'))
    fs.symlinkSync('t1', path.join(s, 'cur')) // created later: newer lstat mtime
    const t = new Date(2_000_000_000 * 1000)
    fs.lutimesSync(path.join(s, 'cur'), t, t)
    expect(plan(s, d).cs).toEqual(empty)
  })

  it('the release marker in the target is neither deleted nor changed', () => {
    const {s, d} = setup({a: 'a'}, {a: 'a', [MARKER_NAME]: '{}'})
    setMtime(path.join(s, 'a'), 1_500_000_000)
    setMtime(path.join(d, 'a'), 1_500_000_000)
    expect(plan(s, d).cs).toEqual(empty)
  })

  it('excluded/protected paths are invisible to the change set', () => {
    const {s, d} = setup({a: 'a', 'node_modules/x': 'new'}, {a: 'a', 'data/db': 'live data'})
    setMtime(path.join(s, 'a'), 1_500_000_000)
    setMtime(path.join(d, 'a'), 1_500_000_000)
    expect(plan(s, d, ['node_modules', '/data']).cs).toEqual(empty)
  })

  it('a name with a leading space is planned under its own name, not its trimmed twin', () => {
    const {s, d} = setup({config: 'c', ' lead': 'new'}, {config: 'c', ' config': 'stale'})
    setMtime(path.join(s, 'config'), 1_500_000_000)
    setMtime(path.join(d, 'config'), 1_500_000_000)
    const {cs} = plan(s, d)
    expect(cs.deleted).toEqual([' config']) // not 'config', which must stay
    expect(cs.added).toEqual([' lead'])
  })

  it('names with spaces and non-ASCII survive the scan', () => {
    const {s, d} = setup({'my file.txt': 'x', 'ünï/çødé.py': 'y'}, {})
    expect(plan(s, d).cs.added).toEqual(['my file.txt', 'ünï', 'ünï/çødé.py'])
  })

  it('names that are not UTF-8 or hold control characters: planned by their bytes, content compared by hash', () => {
    const {s, d} = setup({}, {})
    const names = [Buffer.from([0xff]), Buffer.from([0x23, 0x0a, 0xe9]), Buffer.from('\\#101'), Buffer.from('a -> b')]
    for (const [root, content] of [
      [s, 'same'],
      [d, 'same'],
    ] as const) {
      for (const n of names) fs.writeFileSync(Buffer.concat([Buffer.from(`${root}/`), n]), content)
    }
    fs.writeFileSync(Buffer.concat([Buffer.from(`${s}/`), Buffer.from([0xfe])]), 'new')
    for (const n of names) fs.utimesSync(Buffer.concat([Buffer.from(`${s}/`), n]), 2_000_000_000, 2_000_000_000)
    const {cs, srcCache} = plan(s, d)
    expect(cs).toEqual({added: ['\udcfe'], changed: [], deleted: []}) // same content, new mtimes: no change
    expect(srcCache.hashed).toBe(names.length)
  })

  it('a directory replaced by a symlink: the symlink is added, the old contents deleted, the directory itself is not', () => {
    const {s, d} = setup({'vendor/lib/a.py': 'A'}, {'vendor/lib/a.py': 'A', 'lib/a.py': 'A', 'lib/sub/b.py': 'B'})
    fs.symlinkSync('vendor/lib', path.join(s, 'lib'))
    const {cs} = plan(s, d)
    expect(cs.added).toEqual(['lib'])
    expect(cs.deleted).toEqual(['lib/a.py', 'lib/sub', 'lib/sub/b.py'])
  })

  it('excluded leftovers (perishable) neither keep a removed directory nor block a type change', () => {
    const {s, d} = setup(
      {'vendor/lib/a.py': 'A', 'keep/k.py': 'k'},
      {
        'vendor/lib/a.py': 'A',
        'lib/a.py': 'A',
        'lib/__pycache__/a.pyc': 'c',
        'old/x.py': 'x',
        'old/__pycache__/x.pyc': 'c',
        'keep/k.py': 'k',
        'keep/__pycache__/k.pyc': 'c',
      },
    )
    fs.symlinkSync('vendor/lib', path.join(s, 'lib'))
    const {cs} = plan(s, d, [], ['__pycache__'])
    expect(cs.added).toEqual(['lib'])
    expect(cs.deleted).toEqual(['lib/a.py', 'old', 'old/x.py']) // excluded paths themselves are not listed; keep/ stays
  })

  it('hard excludes (protected) still keep a removed directory with them', () => {
    const {s, d} = setup({}, {'old/x.py': 'x', 'old/data/db': 'live'})
    expect(plan(s, d, ['data/']).cs.deleted).toEqual(['old/x.py'])
  })
})

describe('HashCache', () => {
  it('a persisted cache avoids rereading unchanged files', () => {
    const dir = tmpDir()
    writeTree(dir, {a: 'content-1'})
    const tree = walkTree(dir, compilePatterns([]))
    const cacheFile = path.join(tmpDir(), 'state', 'hashes.json')
    const c1 = HashCache.open(cacheFile)
    const h = c1.hash(dir, 'a', tree.entries.get('a')!)
    expect(h).toMatch(/^[0-9a-f]{64}$/)
    expect(c1.hashed).toBe(1)
    expect(c1.hash(dir, 'a', tree.entries.get('a')!)).toBe(h)
    expect(c1.hashed).toBe(1)
    c1.save(tree)
    const c2 = HashCache.open(cacheFile)
    expect(c2.hash(dir, 'a', tree.entries.get('a')!)).toBe(h)
    expect(c2.hashed).toBe(0)
  })

  it('notices an in-place edit that restored the mtime (ctime moves)', () => {
    const dir = tmpDir()
    writeTree(dir, {a: 'AAAA'})
    setMtime(path.join(dir, 'a'), 1_000_000_000)
    const cache = HashCache.open()
    const h1 = cache.hash(dir, 'a', walkTree(dir, compilePatterns([])).entries.get('a')!)
    fs.writeFileSync(path.join(dir, 'a'), 'BBBB')
    setMtime(path.join(dir, 'a'), 1_000_000_000)
    const h2 = cache.hash(dir, 'a', walkTree(dir, compilePatterns([])).entries.get('a')!)
    expect(h2).not.toBe(h1)
  })

  it('a save after a few new hashes appends their rows to the file it read; dropping a row rewrites it', () => {
    const dir = tmpDir()
    const files = Object.fromEntries(Array.from({length: 40}, (_, i) => [`f${i}`, `content ${i}`]))
    writeTree(dir, files)
    const tree = walkTree(dir, compilePatterns([]))
    const file = path.join(tmpDir(), 'h.json')
    const bin = path.join(path.dirname(file), 'h.bin')
    const c1 = HashCache.open(file)
    for (const rel of Object.keys(files)) c1.hash(dir, rel, tree.entries.get(rel)!)
    c1.save()
    const written = fs.readFileSync(bin)
    const ino = fs.statSync(bin).ino

    fs.writeFileSync(path.join(dir, 'f3'), 'edited')
    const edited = walkTree(dir, compilePatterns([]))
    const c2 = HashCache.open(file)
    const h3 = c2.hash(dir, 'f3', edited.entries.get('f3')!)
    c2.save()
    expect(fs.statSync(bin).ino).toBe(ino) // appended, not rewritten
    expect(fs.readFileSync(bin).subarray(0, written.length).equals(written)).toBe(true)
    const c3 = HashCache.open(file)
    expect(c3.peek('f3', edited.entries.get('f3')!)).toBe(h3) // the later row wins
    expect(c3.size).toBe(40)
    expect(c3.peek('f4', edited.entries.get('f4')!)).toBe(c1.peek('f4', tree.entries.get('f4')!))

    fs.rmSync(path.join(dir, 'f5'))
    c3.save(walkTree(dir, compilePatterns([])))
    expect(fs.statSync(bin).ino).not.toBe(ino)
    const c4 = HashCache.open(file)
    expect([c4.size, c4.knows('f5'), c4.peek('f3', edited.entries.get('f3')!)]).toEqual([39, false, h3])
  })

  it('rows recorded from raw digests (the hash pool) are appended too, not lost by an append save', () => {
    const dir = tmpDir()
    const files = Object.fromEntries(Array.from({length: 40}, (_, i) => [`f${i}`, `content ${i}`]))
    writeTree(dir, files)
    const tree = walkTree(dir, compilePatterns([]))
    const file = path.join(tmpDir(), 'h.json')
    const c1 = HashCache.open(file)
    for (const rel of Object.keys(files)) c1.hash(dir, rel, tree.entries.get(rel)!)
    c1.save()
    fs.writeFileSync(path.join(dir, 'f7'), 'edited by a fresh clone')
    const edited = walkTree(dir, compilePatterns([]))
    const c2 = HashCache.open(file)
    const digest = Buffer.from(hashFile(path.join(dir, 'f7')), 'hex')
    c2.recordDigest('f7', edited.entries.get('f7')!, digest, 0)
    c2.save()
    expect(HashCache.open(file).peek('f7', edited.entries.get('f7')!)).toBe(digest.toString('hex'))
  })

  it('save drops rows of paths no longer in the tree', () => {
    const dir = tmpDir()
    writeTree(dir, {a: 'a', b: 'b'})
    const file = path.join(tmpDir(), 'h.json')
    const c = HashCache.open(file)
    const tree = walkTree(dir, compilePatterns([]))
    c.hash(dir, 'a', tree.entries.get('a')!)
    c.hash(dir, 'b', tree.entries.get('b')!)
    fs.rmSync(path.join(dir, 'b'))
    c.save(walkTree(dir, compilePatterns([])))
    const again = HashCache.open(file)
    expect([again.knows('a'), again.knows('b')]).toEqual([true, false])
  })

  it('persists names that are not UTF-8 by their bytes, in a binary file beside the .json name', () => {
    const dir = tmpDir()
    const names = ['plain', 'ünï', 'bad\udcff\udcfe', 'nl\n']
    for (const n of names) fs.writeFileSync(fsPath(path.join(dir, n)), n)
    const tree = walkTree(dir, compilePatterns([]))
    const file = path.join(tmpDir(), 'h.json')
    const c1 = HashCache.open(file)
    const hashes = names.map((n) => c1.hash(dir, n, tree.entries.get(n)!))
    c1.save()
    expect(fs.existsSync(file)).toBe(false)
    expect(
      fs
        .readFileSync(path.join(path.dirname(file), 'h.bin'))
        .subarray(0, 15)
        .toString(),
    ).toBe('hotctl hashes 2')
    const c2 = HashCache.open(file)
    expect(names.map((n) => c2.peek(n, tree.entries.get(n)!))).toEqual(hashes)
    expect(c2.hashed).toBe(0)
  })

  it('reads the JSON file of earlier versions, and replaces it with the binary one at the next save', () => {
    const dir = tmpDir()
    writeTree(dir, {a: 'content-a'})
    const e = walkTree(dir, compilePatterns([])).entries.get('a')!
    const file = path.join(tmpDir(), 'target-hashes.json')
    const h = HashCache.open().hash(dir, 'a', e)
    fs.writeFileSync(file, JSON.stringify([['a', e.size, e.mtimeMs, e.ctimeMs, e.ino, h]]))
    const c = HashCache.open(file)
    expect(c.peek('a', e)).toBe(h)
    c.save()
    expect(fs.existsSync(file)).toBe(false)
    expect(HashCache.open(file).peek('a', e)).toBe(h)
  })

  it('a cut-off binary file keeps the whole rows before the cut; a cut image starts empty', () => {
    const dir = tmpDir()
    const files = Object.fromEntries(Array.from({length: 40}, (_, i) => [`f${i}`, `content ${i}`]))
    writeTree(dir, {...files, b: 'b'})
    const tree = walkTree(dir, compilePatterns([]))
    const file = path.join(tmpDir(), 'h.bin')
    const c = HashCache.open(file)
    for (const n of Object.keys(files)) c.hash(dir, n, tree.entries.get(n)!)
    c.save()
    const image = fs.statSync(file).size
    const c2 = HashCache.open(file)
    c2.hash(dir, 'b', tree.entries.get('b')!)
    c2.save() // appended as a row after the image
    expect(fs.statSync(file).size).toBeGreaterThan(image)
    fs.truncateSync(file, fs.statSync(file).size - 1)
    const cut = HashCache.open(file)
    expect([cut.knows('f0'), cut.knows('f39'), cut.knows('b')]).toEqual([true, true, false])
    fs.truncateSync(file, image - 1)
    expect(HashCache.open(file).size).toBe(0)
  })

  it('a damaged image (an index with no empty place, a path past the bytes) starts empty instead of being used', () => {
    const dir = tmpDir()
    const files = Object.fromEntries(Array.from({length: 40}, (_, i) => [`f${i}`, `content ${i}`]))
    writeTree(dir, files)
    const tree = walkTree(dir, compilePatterns([]))
    const file = path.join(tmpDir(), 'h.bin')
    const c = HashCache.open(file)
    for (const n of Object.keys(files)) c.hash(dir, n, tree.entries.get(n)!)
    c.save()
    const good = fs.readFileSync(file)
    const head = new Uint32Array(good.buffer.slice(good.byteOffset + 16, good.byteOffset + 48))
    const [n, indexLen] = [head[1]!, head[4]!]
    const at = {ends: 48 + n * 64 + n * 4, index: 48 + n * 64 + n * 12}
    const fullIndex = Buffer.from(good)
    for (let i = 0; i < indexLen; i++) fullIndex.writeInt32LE((i % n) + 1, at.index + i * 4)
    fs.writeFileSync(file, fullIndex)
    const a = HashCache.open(file)
    expect([a.size, a.knows('never there')]).toEqual([0, false]) // no endless probing
    const pastEnd = Buffer.from(good)
    pastEnd.writeUInt32LE(1 << 30, at.ends)
    fs.writeFileSync(file, pastEnd)
    expect(HashCache.open(file).size).toBe(0)
    // A count of filled places below the real one would let inserts fill the index up: refused.
    const filledWrong = Buffer.from(good)
    filledWrong.writeUInt32LE(head[3]! - 1, 16 + 3 * 4)
    fs.writeFileSync(file, filledWrong)
    expect(HashCache.open(file).size).toBe(0)
    fs.writeFileSync(file, good)
    expect(HashCache.open(file).size).toBe(40)
  })

  it('the image file is taken back as it was saved: the same rows, also after forgetting and appending', () => {
    const dir = tmpDir()
    const files = Object.fromEntries(Array.from({length: 300}, (_, i) => [`d${i % 7}/f${i}`, `content ${i}`]))
    writeTree(dir, files)
    let tree = walkTree(dir, compilePatterns([]))
    const file = path.join(tmpDir(), 'h.json')
    const c1 = HashCache.open(file)
    const want = new Map(Object.keys(files).map((n) => [n, c1.hash(dir, n, tree.entries.get(n)!)]))
    c1.save()
    const c2 = HashCache.open(file)
    for (const [n, h] of want) expect(c2.peek(n, tree.entries.get(n)!)).toBe(h)
    // Forgetting a third of the paths rewrites the file without them; a new path added after loads too.
    for (let i = 0; i < 100; i++) fs.rmSync(path.join(dir, `d${i % 7}/f${i}`))
    fs.writeFileSync(path.join(dir, 'new'), 'new')
    tree = walkTree(dir, compilePatterns([]))
    c2.hash(dir, 'new', tree.entries.get('new')!)
    c2.save(tree)
    const c3 = HashCache.open(file)
    expect(c3.size).toBe(201)
    expect(c3.knows('d0/f0')).toBe(false)
    expect(c3.peek('new', tree.entries.get('new')!)).toBe(c2.peek('new', tree.entries.get('new')!))
    for (const [n, h] of want) if (tree.entries.has(n)) expect(c3.peek(n, tree.entries.get(n)!)).toBe(h)
    c3.record('new2', {size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1}, 'ab'.repeat(32))
    c3.save()
    const c4 = HashCache.open(file)
    expect([c4.size, c4.knows('new2'), c4.knows('d5/f299')]).toEqual([202, true, true])
  })

  it('an unreadable cache file starts empty', () => {
    const f = path.join(tmpDir(), 'hashes.json')
    fs.writeFileSync(f, '{torn')
    const dir = tmpDir()
    writeTree(dir, {a: 'x'})
    const c = HashCache.open(f)
    c.hash(dir, 'a', walkTree(dir, compilePatterns([])).entries.get('a')!)
    expect(c.hashed).toBe(1)
  })
})

describe('diffTrees over two local walks by their slots', () => {
  it('plans what it plans by paths and entries, leaving the ignored paths out on both sides', () => {
    const s = tmpDir()
    const d = tmpDir()
    writeTree(s, {
      'a.py': 'same',
      'b.py': 'new size!',
      'c.py': 'src',
      'dir/new.py': 'n',
      [MARKER_NAME]: '{}',
      'x/y': 'y',
    })
    writeTree(d, {
      'a.py': 'same',
      'b.py': 'old',
      'c.py': 'dst',
      'gone.py': 'g',
      'gone/deep': 'g',
      [MARKER_NAME]: '{"id":1}',
    })
    fs.mkdirSync(path.join(d, 'x'))
    fs.writeFileSync(path.join(d, 'x/y'), 'y')
    for (const f of ['a.py', 'c.py']) for (const root of [s, d]) setMtime(path.join(root, f), 1_600_000_000)
    const [src, dst] = [walkTree(s, compilePatterns([])), walkTree(d, compilePatterns([]))]
    const byContent = (rel: string) => hashFile(path.join(s, rel)) === hashFile(path.join(d, rel))
    const byPath = diffTrees(
      src,
      dst,
      (rel) => byContent(rel),
      (rel) => rel === MARKER_NAME,
    )
    const asked: string[] = []
    const bySlot = diffTrees(
      src,
      dst,
      () => {
        throw new Error('asked by path')
      },
      () => {
        throw new Error('ignore asked')
      },
      (a, b, mtimeEqual) => {
        asked.push(src.entries.nameAt(a))
        expect(dst.entries.nameAt(b)).toBe(src.entries.nameAt(a))
        return byContent(src.entries.nameAt(a)) || !mtimeEqual
      },
      [MARKER_NAME],
    )
    expect(bySlot).toEqual(byPath)
    expect(byPath).toEqual({
      added: ['dir', 'dir/new.py'],
      changed: ['b.py', 'c.py'],
      deleted: ['gone', 'gone.py', 'gone/deep'],
    })
    expect(asked.sort()).toEqual(['a.py', 'c.py', 'x/y'])
  })
})
