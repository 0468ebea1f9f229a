import {spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {compilePatterns} from '../../src/plan/patterns.js'
import {HashCache} from '../../src/store/hash-cache.js'
import {hashFile} from '../../src/store/hash.js'
import type {ResolvedConfig} from '../../src/config/resolve.js'
import {BackupIndex} from '../../src/state/backups.js'
import {
  BackupDamagedError,
  checkBackup,
  checkBackupBeside,
  checkStore,
  StoreChecker,
} from '../../src/store/integrity.js'
import {
  inDepthFirstOrder,
  type Manifest,
  ManifestWriter,
  objectsOf,
  parseChunk,
  readManifest,
  writeManifest,
} from '../../src/store/manifest.js'
import {ObjectStore} from '../../src/store/objects.js'
import {putPool, STAGED} from '../../src/store/put-pool.js'
import {fsPath} from '../../src/file-names.js'
import {
  applyRestore,
  dirSignatures,
  diffAgainst,
  planRestore,
  planRestoreDirs,
  restoreTree,
  snapshotCounts,
  snapshotTree,
  verifyRestored,
} from '../../src/store/snapshot.js'
import {openTarget} from '../../src/target/open.js'
import {walkTree} from '../../src/store/walk.js'
import {tmpDir, writeTree} from './helpers.js'

const sha = (s: string | Buffer) => crypto.createHash('sha256').update(s).digest('hex')

/** Every entry of a tree as comparable data: type, mode, content or link. */
function describeTree(root: string, skip = compilePatterns([])): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [rel, e] of walkTree(root, skip).entries) {
    const abs = path.join(root, rel)
    const mode = e.mode.toString(8)
    out[rel] =
      e.type === 'file'
        ? `file ${mode} ${fs.readFileSync(abs, 'utf8')}`
        : e.type === 'dir'
          ? `dir ${mode}`
          : `link ${e.link}`
  }
  return out
}

function fixture() {
  const base = tmpDir()
  const target = path.join(base, 'live')
  const store = new ObjectStore(path.join(base, 'state', 'objects'))
  writeTree(target, {
    'app/main.py': 'print("v1")\n',
    'app/util.py': 'def f(): pass\n',
    'app/empty/.keep': '',
    'README.md': '# app\n',
    'static/css/site.css': 'body{}\n',
    'uploads/user.jpg': 'JPEGDATA',
    'local.env': 'SECRET=1\n',
  })
  fs.mkdirSync(path.join(target, 'emptydir'))
  fs.symlinkSync('app/main.py', path.join(target, 'entry'))
  fs.chmodSync(path.join(target, 'app/util.py'), 0o755)
  return {base, target, store}
}

describe('ObjectStore', () => {
  it('putBytes stores by sha256, dedups, reports bytes added', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const a = store.putBytes('hello')
    expect(a).toEqual({hash: sha('hello'), added: 5})
    expect(store.read(a.hash).toString()).toBe('hello')
    expect(store.pathOf(a.hash)).toBe(path.join(store.dir, a.hash.slice(0, 2), a.hash))
    expect(store.putBytes(Buffer.from('hello'))).toEqual({hash: a.hash, added: 0})
    expect(store.has(a.hash)).toBe(true)
    expect(store.has(sha('other'))).toBe(false)
  })

  it('putFile copies (not links) and hashes the content; a second store instance sees it', () => {
    const dir = tmpDir()
    const f = path.join(dir, 'f.txt')
    fs.writeFileSync(f, 'file content')
    const store = new ObjectStore(path.join(dir, 'objects'))
    const put = store.putFile(f)
    expect(put).toEqual({hash: sha('file content'), added: 12, size: 12})
    expect(put.hash).toBe(hashFile(f))
    expect(fs.statSync(store.pathOf(put.hash)).ino).not.toBe(fs.statSync(f).ino)
    fs.writeFileSync(f, 'changed in place')
    expect(store.read(put.hash).toString()).toBe('file content')
    const again = new ObjectStore(store.dir)
    expect(again.has(put.hash)).toBe(true)
    expect(again.putBytes('file content')).toEqual({hash: put.hash, added: 0})
    expect(fs.readdirSync(path.join(store.dir, 'tmp'))).toEqual([]) // no temp file left
  })

  it('collectGarbage removes unkept objects and temp files, returns bytes freed', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const keep = store.putBytes('keep me')
    const drop = store.putBytes('drop me!!')
    fs.writeFileSync(path.join(store.dir, 'tmp', 'leftover'), 'x')
    expect(store.collectGarbage(new Set([keep.hash]))).toBe(9)
    expect(store.has(keep.hash)).toBe(true)
    expect(store.has(drop.hash)).toBe(false)
    expect(fs.existsSync(store.pathOf(drop.hash))).toBe(false)
    expect(fs.existsSync(path.join(store.dir, 'tmp'))).toBe(false)
    expect(store.putBytes('drop me!!').added).toBe(9) // can be stored again
  })

  it('the persisted index names only objects that exist, across processes and garbage collection', () => {
    const dir = path.join(tmpDir(), 'objects')
    const first = new ObjectStore(dir)
    const a = first.putBytes('object a')
    const b = first.putBytes('object b')
    first.flush()
    expect(fs.readFileSync(path.join(dir, 'index'), 'utf8').split('\n').sort()).toEqual([a.hash, b.hash].sort())
    // A later process trusts the index, so it never lists the objects...
    const later = new ObjectStore(dir)
    expect(later.has(a.hash)).toBe(true)
    // ...and GC rewrites it before deleting, so no process is told a deleted object exists.
    later.collectGarbage(new Set([a.hash]))
    const after = new ObjectStore(dir)
    expect(after.has(b.hash)).toBe(false)
    expect(after.has(a.hash)).toBe(true)
    expect(after.putBytes('object b').added).toBe(8)
  })

  it('without an index the store lists what is on disk', () => {
    const dir = path.join(tmpDir(), 'objects')
    const h = new ObjectStore(dir).putBytes('unindexed').hash // never flushed
    expect(fs.existsSync(path.join(dir, 'index'))).toBe(false)
    expect(new ObjectStore(dir).has(h)).toBe(true)
  })

  it('a batch writes objects where no reader sees them, and moves them in together at makeDurable', () => {
    const dir = tmpDir()
    const store = new ObjectStore(path.join(dir, 'objects'))
    const old = store.putBytes('stored before the batch') // its fan-out directory exists: object by object
    store.flush()
    const big = path.join(dir, 'big.bin')
    fs.writeFileSync(big, Buffer.alloc((1 << 20) + 5, 7)) // bigger than the copy buffer: streamed
    const small = path.join(dir, 'small.txt')
    fs.writeFileSync(small, 'small file')
    store.beginBatch()
    const a = store.putFile(small)
    const b = store.putFile(big)
    const sameFan = crypto.randomBytes(16).toString('hex')
    // Content whose hash shares the fan-out directory of the object stored before.
    let c = ''
    for (let i = 0; !c; i++) if (sha(`${sameFan}${i}`).slice(0, 2) === old.hash.slice(0, 2)) c = `${sameFan}${i}`
    const d = store.putBytes(c)
    expect(store.putBytes('small file')).toEqual({hash: a.hash, added: 0}) // deduplicated within the batch
    for (const h of [a.hash, b.hash, d.hash]) expect(fs.existsSync(store.pathOf(h))).toBe(false)
    expect(b).toEqual({hash: hashFile(big), added: (1 << 20) + 5, size: (1 << 20) + 5})
    store.makeDurable()
    for (const [h, content] of [
      [a.hash, Buffer.from('small file')],
      [b.hash, fs.readFileSync(big)],
      [d.hash, Buffer.from(c)],
      [old.hash, Buffer.from('stored before the batch')],
    ] as const)
      expect(store.read(h)).toEqual(content)
    expect(fs.readdirSync(path.join(store.dir, 'tmp'))).toEqual([]) // the staging directory is gone
    store.flush()
    expect(new ObjectStore(store.dir).has(d.hash)).toBe(true)
  }, 60_000) // fsyncs on a busy disk

  it('a big batch starts syncing its staged content in the background while it is still copying', async () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const put = (count: number, size: number, tag = '') => {
      const hashes: string[] = []
      for (let i = 0; i < count; i++) {
        const data = Buffer.alloc(size, i % 251)
        data.write(`${size}/${i}${tag}`)
        hashes.push(store.putBytes(data).hash)
      }
      return hashes
    }
    store.beginBatch()
    put(300, 1024) // many objects, few bytes: the final syncfs alone
    expect(store.writeBehinds).toBe(0)
    const hashes = put(300, 128 * 1024) // 37.5 MiB staged
    expect(store.writeBehinds).toBe(1)
    // One shell runs them all: it answers when a sync is done, and the next one starts then.
    for (let i = 0; i < 600 && store.writeBehindsDone < 1; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    expect(store.writeBehindsDone).toBe(1)
    hashes.push(...put(270, 128 * 1024, 'again'))
    expect(store.writeBehinds).toBe(2)
    for (const h of hashes) expect(fs.existsSync(store.pathOf(h))).toBe(false) // still staged, invisible
    store.makeDurable()
    for (const h of hashes.slice(0, 5)) expect(sha(store.read(h))).toBe(h)
    expect(fs.readdirSync(path.join(store.dir, 'tmp'))).toEqual([])
  }, 60_000)

  it("a new batch removes the staging directory of a killed process's batch, never a live one's", () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const tmp = path.join(store.dir, 'tmp')
    const dead = path.join(tmp, '999999999-0a1b2c-batch-0') // no such pid
    const live = path.join(tmp, `${process.pid}-0a1b2c-batch-0`)
    for (const d of [dead, live]) {
      fs.mkdirSync(path.join(d, 'ab'), {recursive: true})
      fs.writeFileSync(path.join(d, 'ab', 'ab12'), 'half a backup')
    }
    store.beginBatch()
    expect(fs.existsSync(dead)).toBe(false)
    expect(fs.existsSync(live)).toBe(true)
    store.abortBatch()
  })

  it('a batch that fails leaves nothing under an object name, and the store forgets its objects', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    store.beginBatch()
    const a = store.putBytes('never completed')
    store.abortBatch()
    expect(fs.existsSync(store.pathOf(a.hash))).toBe(false)
    expect(store.has(a.hash)).toBe(false)
    expect(fs.readdirSync(path.join(store.dir, 'tmp'))).toEqual([])
    expect(store.putBytes('never completed').added).toBe(15) // stored again when asked
    expect(store.read(a.hash).toString()).toBe('never completed')
  })

  it('collectGarbage on a missing dir frees nothing', () => {
    expect(new ObjectStore(path.join(tmpDir(), 'nope')).collectGarbage(new Set())).toBe(0)
  })
})

describe('manifest chunks', () => {
  const manifest: Manifest = new Map([
    ['a', {type: 'dir', mode: 0o755}],
    ['a/x.txt', {type: 'file', mode: 0o644, size: 3, hash: sha('xxx')}],
    ['a/b', {type: 'dir', mode: 0o700}],
    ['a/b/l', {type: 'symlink', mode: 0o777, link: '../x.txt'}],
    ['top', {type: 'file', mode: 0o600, size: 0, hash: sha('')}],
  ])

  it('round-trips through the store, one chunk per directory holding entries', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const {root, added} = writeManifest(manifest, store)
    expect(Object.keys(root).sort()).toEqual(['', 'a', 'a/b'])
    expect(added).toBeGreaterThan(0)
    const back = readManifest(root, store)
    expect(new Map([...back].sort())).toEqual(new Map([...manifest].sort()))
  })

  it('is deterministic regardless of insertion order; rewriting adds nothing', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const first = writeManifest(manifest, store)
    const reversed: Manifest = new Map([...manifest].reverse())
    const second = writeManifest(reversed, store)
    expect(second.root).toEqual(first.root)
    expect(second.added).toBe(0)
  })

  it('streamed in depth-first order, each chunk is stored as its directory ends: the same chunks and root', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const depthFirst: Manifest = new Map([
      ['a', {type: 'dir', mode: 0o755}],
      ['a/b', {type: 'dir', mode: 0o700}],
      ['a/b/l', {type: 'symlink', mode: 0o777, link: '../x.txt'}],
      ['a/x.txt', {type: 'file', mode: 0o644, size: 3, hash: sha('xxx')}],
      ['empty', {type: 'dir', mode: 0o755}],
      ['top', {type: 'file', mode: 0o600, size: 0, hash: sha('')}],
    ])
    expect(inDepthFirstOrder(depthFirst)).toBe(true)
    const writer = new ManifestWriter(store)
    const chunkOfAB = sha(JSON.stringify([['l', 'l', 0o777, '../x.txt']]))
    for (const [rel, e] of depthFirst) {
      // 'a/b' is stored once the rows leave it (at a/x.txt), before the whole manifest is written.
      expect(store.has(chunkOfAB)).toBe(rel === 'a/x.txt' ? false : ['empty', 'top'].includes(rel))
      writer.add(rel, e)
    }
    const streamed = writer.write(store)
    expect(streamed.root).toEqual(writeManifest(depthFirst, store).root)
    expect(Object.keys(streamed.root)).toEqual(['', 'a', 'a/b'])
    // Paths appended out of order (the tree as deployed) are not streamed.
    expect(inDepthFirstOrder(new Map([...depthFirst, ['a/new.txt', {type: 'file'}]]))).toBe(false)
    expect(() =>
      new ManifestWriter(store).add('a/x.txt', {type: 'file', mode: 0o644, size: 3, hash: sha('xxx')}),
    ).toThrow('out of depth-first order')
  })

  it('changing one file rewrites only its directory chunk', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const first = writeManifest(manifest, store)
    const m2: Manifest = new Map(manifest)
    m2.set('a/b/l', {type: 'symlink', mode: 0o777, link: 'elsewhere'})
    const second = writeManifest(m2, store)
    expect(second.root['']).toBe(first.root[''])
    expect(second.root['a']).toBe(first.root['a'])
    expect(second.root['a/b']).not.toBe(first.root['a/b'])
    expect(second.added).toBe(store.read(second.root['a/b']!).length)
  })

  it('objectsOf lists chunks and file contents of all the manifests given', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const {root} = writeManifest(manifest, store)
    expect([...objectsOf([root], store)].sort()).toEqual([...Object.values(root), sha('xxx'), sha('')].sort())
    const other = new Map(manifest)
    other.set('extra.txt', {type: 'file', mode: 0o644, size: 3, hash: sha('new')})
    const second = writeManifest(other, store).root
    const both = objectsOf([root, second], store)
    expect(both.has(sha('new'))).toBe(true)
    expect(both.has(sha('xxx'))).toBe(true)
    expect(both.has(second[''])).toBe(true)
    expect(both.has(root[''])).toBe(true)
  })
})

describe('walkTree', () => {
  it('records files, dirs, symlinks (not followed) and skips matches, noting their parents', () => {
    const {target} = fixture()
    const tree = walkTree(target, compilePatterns(['/uploads', 'local.env', '.keep']))
    expect([...tree.entries.keys()].sort()).toEqual([
      'README.md',
      'app',
      'app/empty',
      'app/main.py',
      'app/util.py',
      'emptydir',
      'entry',
      'static',
      'static/css',
      'static/css/site.css',
    ])
    expect(tree.entries.get('entry')).toMatchObject({type: 'symlink', link: 'app/main.py'})
    expect(tree.entries.get('app/util.py')).toMatchObject({type: 'file', mode: 0o755, size: 14})
    expect([...tree.dirsWithSkipped].sort()).toEqual(['', 'app/empty'])
  })
  it('a missing root is an empty tree', () => {
    expect(walkTree(path.join(tmpDir(), 'nope'), compilePatterns([])).entries.size).toBe(0)
  })
})

describe('snapshot and restore', () => {
  const skip = compilePatterns(['/uploads', 'local.env'])

  it('round trip: modify, add, delete files, dirs and symlinks, then restore → identical', async () => {
    const {target, store} = fixture()
    const before = describeTree(target, skip)
    const cache = HashCache.open()
    const snap = await snapshotTree(walkTree(target, skip), cache, store)
    expect(snap.files).toBe(5)
    expect(snap.bytes).toBe(
      ['print("v1")\n', 'def f(): pass\n', '', '# app\n', 'body{}\n'].reduce((n, s) => n + s.length, 0),
    )
    expect(snap.manifest.has('uploads/user.jpg')).toBe(false)

    // the deploy that went wrong
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v2 broken")\n')
    fs.chmodSync(path.join(target, 'app/util.py'), 0o644)
    fs.rmSync(path.join(target, 'README.md'))
    fs.rmSync(path.join(target, 'static'), {recursive: true})
    writeTree(target, {'app/new.py': 'new', 'newdir/deep/f': 'f'})
    fs.rmSync(path.join(target, 'entry'))
    fs.symlinkSync('app/new.py', path.join(target, 'entry'))
    fs.symlinkSync('nowhere', path.join(target, 'dangling'))
    fs.rmdirSync(path.join(target, 'emptydir'))
    // protected content changes too, during the deploy (the service writes it)
    fs.writeFileSync(path.join(target, 'uploads/user.jpg'), 'NEWJPEG')
    fs.writeFileSync(path.join(target, 'uploads/second.jpg'), 'SECOND')

    expect(diffAgainst(snap.manifest, walkTree(target, skip), cache).sort()).toEqual(
      [
        'README.md',
        'app/main.py',
        'app/new.py',
        'app/util.py',
        'dangling',
        'emptydir',
        'entry',
        'newdir',
        'newdir/deep',
        'newdir/deep/f',
        'static',
        'static/css',
        'static/css/site.css',
      ].sort(),
    )

    const res = restoreTree(snap.manifest, walkTree(target, skip, skip), store, cache)
    const written = [
      'README.md',
      'app/main.py',
      'app/util.py',
      'emptydir',
      'entry',
      'static',
      'static/css',
      'static/css/site.css',
    ]
    expect(res.written.sort()).toEqual(written.sort())
    expect(res.removed.sort()).toEqual(['app/new.py', 'dangling', 'newdir', 'newdir/deep', 'newdir/deep/f'].sort())
    expect(diffAgainst(snap.manifest, walkTree(target, skip), HashCache.open())).toEqual([])
    expect(describeTree(target, skip)).toEqual(before)
    // protected paths untouched
    expect(fs.readFileSync(path.join(target, 'uploads/user.jpg'), 'utf8')).toBe('NEWJPEG')
    expect(fs.readFileSync(path.join(target, 'uploads/second.jpg'), 'utf8')).toBe('SECOND')
    expect(fs.readFileSync(path.join(target, 'local.env'), 'utf8')).toBe('SECRET=1\n')
    // no temp files left behind
    expect(fs.readdirSync(target).some((n) => n.startsWith('.hotctl-restore'))).toBe(false)
  })

  it('restoring an unchanged tree writes and removes nothing', async () => {
    const {target, store} = fixture()
    const cache = HashCache.open()
    const snap = await snapshotTree(walkTree(target, skip), cache, store)
    expect(restoreTree(snap.manifest, walkTree(target, skip, skip), store, cache)).toEqual({written: [], removed: []})
  })

  it('restore keeps a removed-from-snapshot directory that holds protected content', async () => {
    const {target, store} = fixture()
    const skip2 = compilePatterns(['/uploads', 'local.env', '*.db'])
    const cache = HashCache.open()
    const snap = await snapshotTree(walkTree(target, skip2), cache, store)
    writeTree(target, {'cache/a.txt': 'a', 'cache/state.db': 'DB'})
    const res = restoreTree(snap.manifest, walkTree(target, skip2, skip2), store, cache)
    expect(res.removed).toEqual(['cache/a.txt'])
    expect(fs.readFileSync(path.join(target, 'cache/state.db'), 'utf8')).toBe('DB')
    expect(fs.existsSync(path.join(target, 'cache/a.txt'))).toBe(false)
  })

  it('restore into an empty (deleted) target recreates everything', async () => {
    const {target, store, base} = fixture()
    const cache = HashCache.open()
    const snap = await snapshotTree(walkTree(target, skip), cache, store)
    const before = describeTree(target, skip)
    const other = path.join(base, 'elsewhere')
    restoreTree(snap.manifest, walkTree(other, skip, skip), store, HashCache.open())
    expect(describeTree(other)).toEqual(before)
  })

  it('a directory that replaced a snapshotted file is turned back into the file', async () => {
    const {target, store} = fixture()
    const cache = HashCache.open()
    const snap = await snapshotTree(walkTree(target, skip), cache, store)
    const before = describeTree(target, skip)
    fs.rmSync(path.join(target, 'README.md'))
    writeTree(target, {'README.md/index.md': 'now a dir'})
    restoreTree(snap.manifest, walkTree(target, skip, skip), store, cache)
    expect(describeTree(target, skip)).toEqual(before)
  })

  it('a directory that replaced a snapshotted symlink-to-dir: restore must not delete through the restored link', async () => {
    const base = tmpDir()
    const target = path.join(base, 'live')
    const store = new ObjectStore(path.join(base, 'objects'))
    writeTree(target, {'releases/v1/app.py': 'v1 app', 'releases/v1/lib.py': 'v1 lib'})
    fs.symlinkSync('releases/v1', path.join(target, 'current'))
    const cache = HashCache.open()
    const snap = await snapshotTree(walkTree(target, skip), cache, store)
    const before = describeTree(target)
    // a deploy replaced the link by a real directory with the same file names
    fs.rmSync(path.join(target, 'current'))
    writeTree(target, {'current/app.py': 'v2 app'})
    try {
      restoreTree(snap.manifest, walkTree(target, skip, skip), store, cache)
    } catch {
      // reported by the assertions below
    }
    expect(fs.readFileSync(path.join(target, 'releases/v1/app.py'), 'utf8')).toBe('v1 app')
    expect(describeTree(target)).toEqual(before)
  })

  it('a file that replaced a snapshotted directory is turned back into the directory', async () => {
    const {target, store} = fixture()
    const cache = HashCache.open()
    const snap = await snapshotTree(walkTree(target, skip), cache, store)
    const before = describeTree(target, skip)
    fs.rmSync(path.join(target, 'static'), {recursive: true})
    fs.writeFileSync(path.join(target, 'static'), 'now a file')
    restoreTree(snap.manifest, walkTree(target, skip, skip), store, cache)
    expect(describeTree(target, skip)).toEqual(before)
  })

  it('a symlink replacing a directory is replaced back without following it', async () => {
    const {target, store, base} = fixture()
    const outside = path.join(base, 'outside')
    writeTree(outside, {'precious.txt': 'do not touch'})
    const cache = HashCache.open()
    const snap = await snapshotTree(walkTree(target, skip), cache, store)
    const before = describeTree(target, skip)
    fs.rmSync(path.join(target, 'static'), {recursive: true})
    fs.symlinkSync(outside, path.join(target, 'static'))
    restoreTree(snap.manifest, walkTree(target, skip, skip), store, cache)
    expect(describeTree(target, skip)).toEqual(before)
    expect(fs.readFileSync(path.join(outside, 'precious.txt'), 'utf8')).toBe('do not touch')
  })
})

// The manifest records the size of what was copied (putFile's), not the walk's stat, so a file
// that grew between the walk and the copy restores and verifies cleanly.
describe('snapshotTree of a file that grows after the walk', () => {
  it('records the copied size; restore + diffAgainst is empty', async () => {
    const base = tmpDir()
    const live = path.join(base, 'live')
    const store = new ObjectStore(path.join(base, 'state', 'objects'))
    writeTree(live, {'app/log.txt': 'line 1\n', 'app/main.py': 'print(1)\n'})
    const tree = walkTree(live, compilePatterns([]))
    const walkedSize = tree.entries.get('app/log.txt')!.size
    fs.appendFileSync(path.join(live, 'app/log.txt'), 'line 2, written after the walk\n')
    const grownSize = fs.statSync(path.join(live, 'app/log.txt')).size
    expect(grownSize).toBeGreaterThan(walkedSize)

    const snap = await snapshotTree(tree, HashCache.open(), store)
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

describe('snapshot storage cost', () => {
  function bigTree() {
    const base = tmpDir()
    const target = path.join(base, 'live')
    const files: Record<string, string> = {}
    for (let i = 0; i < 200; i++)
      files[`src/file${String(i).padStart(3, '0')}.py`] = `# file ${i}\n${'x'.repeat(500 + i)}\n`
    writeTree(target, files)
    return {target, store: new ObjectStore(path.join(base, 'state', 'objects')), files}
  }
  const skip = compilePatterns([])

  it('the first snapshot stores every file once (identical files once) plus the chunks', async () => {
    const {target, store, files} = bigTree()
    writeTree(target, {'dup1.txt': 'same', 'dup2.txt': 'same'})
    const snap = await snapshotTree(walkTree(target, skip), HashCache.open(), store)
    const content = Object.values(files).reduce((n, s) => n + Buffer.byteLength(s), 0) + 4
    const chunks = Object.values(snap.root).reduce((n, h) => n + store.read(h).length, 0)
    expect(snap.files).toBe(202)
    expect(snap.bytes).toBe(content + 4)
    expect(snap.added).toBe(content + chunks)
  })

  it('a second snapshot of an unchanged tree adds 0 bytes (same cache or fresh one, same or new store handle)', async () => {
    const {target, store} = bigTree()
    const cache = HashCache.open()
    const first = await snapshotTree(walkTree(target, skip), cache, store)
    const second = await snapshotTree(walkTree(target, skip), cache, store)
    expect(second.added).toBe(0)
    expect(second.root).toEqual(first.root)
    const third = await snapshotTree(walkTree(target, skip), HashCache.open(), new ObjectStore(store.dir))
    expect(third.added).toBe(0)
    expect(third.root).toEqual(first.root)
  })

  it('unchanged files are not reread when the cache is warm', async () => {
    const {target, store} = bigTree()
    const cache = HashCache.open()
    const first = await snapshotTree(walkTree(target, skip), cache, store)
    // The first snapshot hashes each file as it copies it in (one read), and records the hash.
    expect(cache.hashed).toBe(0)
    expect(first.added).toBeGreaterThan(0)
    const second = await snapshotTree(walkTree(target, skip), cache, store)
    expect(cache.hashed).toBe(0)
    expect(second.added).toBe(0)
    expect(second.root).toEqual(first.root)
  })

  it('after changing one file, a snapshot adds that file plus its directory chunk only', async () => {
    const {target, store} = bigTree()
    const cache = HashCache.open()
    const first = await snapshotTree(walkTree(target, skip), cache, store)
    const newContent = 'changed!\n'.repeat(100)
    fs.writeFileSync(path.join(target, 'src/file042.py'), newContent)
    const second = await snapshotTree(walkTree(target, skip), cache, store)
    const srcChunk = store.read(second.root['src']!).length
    expect(second.root['']).toBe(first.root[''])
    expect(second.root['src']).not.toBe(first.root['src'])
    expect(second.added).toBe(Buffer.byteLength(newContent) + srcChunk)
    expect(second.manifest.get('src/file042.py')!.hash).toBe(sha(newContent))
  })
})

describe('snapshot from an earlier one (chunks of unchanged directories reused)', () => {
  const skip = compilePatterns([])
  function dirsTree() {
    const base = tmpDir()
    const target = path.join(base, 'live')
    const files: Record<string, string> = {'top.txt': 'top\n'}
    for (let d = 0; d < 6; d++)
      for (let i = 0; i < 20; i++) files[`d${d}/f${i}.py`] = `# ${d}/${i}\n${'y'.repeat(100 + i)}\n`
    writeTree(target, files)
    fs.symlinkSync('d0/f0.py', path.join(target, 'd1/link'))
    return {target, store: new ObjectStore(path.join(base, 'state', 'objects'))}
  }
  /** The same snapshot taken from scratch (new cache and store): what the reused one must equal. */
  const fromScratch = async (target: string) =>
    (await snapshotTree(walkTree(target, skip), HashCache.open(), new ObjectStore(`${target}.scratch`))).root

  it('rebuilds only the directories whose entries changed, and equals a snapshot from scratch', async () => {
    const {target, store} = dirsTree()
    const cache = HashCache.open()
    const first = await snapshotTree(walkTree(target, skip), cache, store)
    fs.writeFileSync(path.join(target, 'd2/f3.py'), 'new content\n')
    fs.rmSync(path.join(target, 'd4/f1.py'))
    fs.chmodSync(path.join(target, 'd5/f0.py'), 0o700)
    const before = {...snapshotCounts}
    const second = await snapshotTree(walkTree(target, skip), cache, store, undefined, first)
    expect(snapshotCounts.rebuilt - before.rebuilt).toBe(3) // d2, d4, d5
    expect(snapshotCounts.reused - before.reused).toBe(Object.keys(first.root).length - 3)
    expect(second.root).toEqual(await fromScratch(target))
    expect(second.files).toBe(1 + 6 * 20 - 1)
    expect(second.manifest.get('d2/f3.py')!.hash).toBe(sha('new content\n'))
    // Nothing changed since: every chunk reused, not one file looked at.
    const third = await snapshotTree(walkTree(target, skip), cache, store, undefined, second)
    expect(third.root).toEqual(second.root)
    expect({files: third.files, bytes: third.bytes, added: third.added}).toEqual({
      files: second.files,
      bytes: second.bytes,
      added: 0,
    })
  })

  it('a file edited in place keeping its size and mtime is seen (its ctime moved): its directory is rebuilt', async () => {
    const {target, store} = dirsTree()
    const cache = HashCache.open()
    const first = await snapshotTree(walkTree(target, skip), cache, store)
    const file = path.join(target, 'd3/f7.py')
    const was = fs.statSync(file)
    const tampered = fs.readFileSync(file, 'utf8').replace('y', 'Z')
    await new Promise((resolve) => setTimeout(resolve, 20)) // the ctime moves on a coarse clock too
    const ref = `${file}.ref`
    fs.writeFileSync(ref, '')
    expect(spawnSync('touch', ['-m', '-r', file, ref]).status).toBe(0) // to the nanosecond (a Date rounds)
    fs.writeFileSync(file, tampered)
    expect(spawnSync('touch', ['-m', '-r', ref, file]).status).toBe(0)
    fs.rmSync(ref)
    expect(fs.statSync(file).mtimeMs).toBe(was.mtimeMs)
    expect(fs.statSync(file).size).toBe(was.size)
    const second = await snapshotTree(walkTree(target, skip), cache, store, undefined, first)
    expect(second.root['d3']).not.toBe(first.root['d3'])
    expect(second.manifest.get('d3/f7.py')!.hash).toBe(sha(tampered))
    expect(second.root).toEqual(await fromScratch(target))
  })

  it('a chunk the store no longer has is rebuilt, not reused', async () => {
    const {target, store} = dirsTree()
    const cache = HashCache.open()
    const first = await snapshotTree(walkTree(target, skip), cache, store)
    const lost = first.root['d1']!
    store.collectObjects(new Set([lost]))
    expect(store.has(lost)).toBe(false)
    const second = await snapshotTree(walkTree(target, skip), cache, store, undefined, first)
    expect(second.root['d1']).toBe(lost)
    expect(store.has(lost)).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------
// Integrity: everything a restore uses is checked against its hash before anything is written.

/** Rewrites a stored object in place (objects are read-only), keeping its name. */
function damageObject(store: ObjectStore, hash: string, edit: (b: Buffer) => Buffer): void {
  const file = store.pathOf(hash)
  const data = edit(fs.readFileSync(file))
  fs.chmodSync(file, 0o644)
  fs.writeFileSync(file, data)
}
const flip = (b: Buffer) => Buffer.from(b.map((x, i) => (i === 0 ? x ^ 1 : x)))

/** Every entry's content, mode, inode and mtime: unchanged = nothing was written. */
function untouched(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [rel, e] of walkTree(root, compilePatterns([])).entries) {
    const what = e.type === 'file' ? fs.readFileSync(path.join(root, rel), 'utf8') : (e.link ?? '')
    out[rel] = `${e.type} ${e.mode} ${e.ino} ${e.mtimeMs} ${what}`
  }
  return out
}

describe('chunk parsing', () => {
  const h = sha('x')
  const chunk = (rows: unknown) => Buffer.from(JSON.stringify(rows))
  it('accepts what writeManifest writes', () => {
    expect(
      parseChunk(
        chunk([
          ['a', 'f', 0o644, 3, h],
          ['b', 'd', 0o755],
          ['c', 'l', 0o777, '../x'],
        ]),
      ),
    ).toHaveLength(3)
  })
  it.each([
    ['not JSON', Buffer.from('[["a", "f"'), 'is not valid JSON'],
    ['not a list', chunk({a: 1}), 'is not a list of entries'],
    ['a name climbing out of the target', chunk([['..', 'd', 0o755]]), 'entry 1 has an invalid name ".."'],
    [
      'a name holding a slash',
      chunk([
        ['ok', 'd', 0o755],
        ['../../etc/passwd', 'f', 0o644, 1, h],
      ]),
      'entry 2 has an invalid name',
    ],
    ['an empty name', chunk([['', 'd', 0o755]]), 'entry 1 has an invalid name'],
    ['a bad content hash', chunk([['a', 'f', 0o644, 3, 'abc']]), 'has an invalid content hash'],
    ['a negative size', chunk([['a', 'f', 0o644, -1, h]]), 'has an invalid size'],
    ['a mode beyond permission bits', chunk([['a', 'd', 0o170000]]), 'has an invalid mode'],
    ['an unknown type', chunk([['a', 'x', 0o644]]), 'has an unknown type "x"'],
    ['a file row without its hash', chunk([['a', 'f', 0o644, 3]]), 'file entry with 4 fields'],
    ['a symlink without a target', chunk([['a', 'l', 0o777]]), 'symlink entry with 3 fields'],
    [
      'a name twice',
      chunk([
        ['a', 'd', 0o755],
        ['a', 'f', 0o644, 1, h],
      ]),
      'names "a" twice',
    ],
  ])('refuses %s', (_what, data, message) => {
    expect(() => parseChunk(data)).toThrow(message)
  })
  it('readManifest refuses a chunk that does not hash to its name', () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const {root} = writeManifest(new Map([['a.txt', {type: 'file', mode: 0o644, size: 3, hash: sha('aaa')}]]), store)
    damageObject(store, root['']!, (b) => Buffer.from(b.toString().replace(sha('aaa'), sha('bbb'))))
    expect(() => readManifest(root, store)).toThrow(`directory (root): chunk ${root['']} does not match its hash`)
  })
})

describe('ObjectStore checks', () => {
  it('check: ok, mismatch, missing; copyOut hashes what it writes and never leaves a bad copy', () => {
    const dir = tmpDir()
    const store = new ObjectStore(path.join(dir, 'objects'))
    const {hash} = store.putBytes('object content')
    expect(store.check(hash)).toEqual({state: 'ok', size: 14})
    store.copyOut(hash, path.join(dir, 'out'), 0o640)
    expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe('object content')
    expect(fs.statSync(path.join(dir, 'out')).mode & 0o777).toBe(0o640)
    damageObject(store, hash, flip)
    expect(store.check(hash)).toMatchObject({state: 'mismatch', size: 14})
    expect(() => store.copyOut(hash, path.join(dir, 'bad'), 0o644)).toThrow(
      `object ${hash} changed while it was being restored`,
    )
    expect(fs.existsSync(path.join(dir, 'bad'))).toBe(false)
    expect(store.check(sha('never stored'))).toEqual({state: 'missing'})
  })

  it('scan lists objects with sizes, temp files and strays, and the index as written', async () => {
    const store = new ObjectStore(path.join(tmpDir(), 'objects'))
    const a = store.putBytes('aaaa').hash
    store.flush()
    fs.writeFileSync(path.join(store.dir, 'tmp', '1-x'), 'partial')
    fs.writeFileSync(path.join(store.dir, a.slice(0, 2), 'not-an-object'), '')
    const scan = store.scan()
    expect([...scan.objects]).toEqual([[a, 4]])
    expect(scan.temp).toEqual(['tmp/1-x'])
    expect(scan.stray).toEqual([`${a.slice(0, 2)}/not-an-object`])
    expect(scan.index).toEqual([a])
  })
})

describe('backup integrity', () => {
  /** A snapshotted tree with its metadata written like LocalTarget does, and a LocalTarget over it. */
  async function backedUp() {
    const {base, target, store} = fixture()
    const stateDir = path.join(base, 'state')
    const skip = compilePatterns(['/uploads', 'local.env'])
    const snap = await snapshotTree(walkTree(target, skip), HashCache.open(), store)
    store.flush()
    const id = '20250101120000'
    const index = new BackupIndex(path.join(stateDir, 'backups'))
    const {files, bytes, added, root} = snap
    index.write({
      id,
      time: new Date().toISOString(),
      reason: 'deploy',
      release: null,
      gitSha: null,
      files,
      bytes,
      added,
      protect: [],
      root,
    })
    const config = {
      target,
      stateDir,
      exclude: ['/uploads', 'local.env'],
      protect: [],
      hosts: [],
    } as unknown as ResolvedConfig
    return {target, store, snap, id, index, config, local: openTarget(config, {warn: () => {}}).backups}
  }

  it('a sound backup has no damage, and each chunk and object is hashed once however many backups share it', async () => {
    const {store, index, id, snap} = await backedUp()
    const meta = index.get(id)!
    index.write({...meta, id: '20250101120001'})
    const report = checkStore(index.readAll(), store, {wholeStore: true})
    expect(report.damage).toEqual([])
    expect(report.backups.map((b) => b.ok)).toEqual([true, true])
    expect(report.checked.chunks).toBe(Object.keys(meta.root).length)
    expect(report.checked.objects).toBe(5) // main.py, util.py, .keep, README.md, site.css
    const chunkBytes = Object.values(meta.root).reduce((n, h) => n + store.read(h).length, 0)
    expect(report.checked.bytes).toBe(snap.bytes + chunkBytes) // once, not once per backup
  })

  it.each([
    ['missing', (m: Record<string, unknown>) => m, 'missing'],
    ['truncated', () => '{"id": "2025', 'unreadable'],
    ['with another id', (m: Record<string, unknown>) => ({...m, id: '20990101000000'}), 'invalid'],
    ['without a root chunk', (m: Record<string, unknown>) => ({...m, root: {}}), 'invalid'],
    [
      'with a root key climbing out',
      (m: Record<string, unknown>) => ({...m, root: {...(m.root as object), '../x': sha('x')}}),
      'invalid',
    ],
    ['recording other totals', (m: Record<string, unknown>) => ({...m, bytes: (m.bytes as number) + 1}), 'invalid'],
  ])('metadata %s is damage, named by the backup', async (what, edit, problem) => {
    const {store, index, id} = await backedUp()
    const file = index.metaPath(id)
    const meta = JSON.parse(fs.readFileSync(file, 'utf8'))
    if (what === 'missing') fs.rmSync(file)
    else {
      const edited = edit(meta)
      fs.writeFileSync(file, typeof edited === 'string' ? edited : JSON.stringify(edited))
    }
    const b = checkBackup(id, index.read(id), new StoreChecker(store))
    expect(b.manifest).toBeUndefined()
    expect(b.damage).toEqual([expect.objectContaining({backup: id, what: 'metadata', problem})])
    expect(b.damage[0]!.message).toContain(`metadata backups/${id}.json`)
  })

  it('a chunk that is missing, edited or malformed is damage naming its directory and hash', async () => {
    const {store, index, id, snap} = await backedUp()
    fs.rmSync(store.pathOf(snap.root['static/css']!))
    damageObject(store, snap.root['app']!, (b) => Buffer.from(b.toString().replace('main.py', 'MAIN.py')))
    const bogus = store.putBytes('{"not": "rows"}').hash
    index.write({...index.get(id)!, root: {...snap.root, static: bogus}})
    const b = checkBackup(id, index.read(id), new StoreChecker(store))
    expect(b.damage.map((d) => [d.what, d.problem, d.path, d.hash])).toEqual([
      ['chunk', 'hash-mismatch', 'app', snap.root['app']],
      ['chunk', 'invalid', 'static', bogus],
      ['chunk', 'missing', 'static/css', snap.root['static/css']],
    ])
    expect(b.damage[1]!.message).toBe(
      `directory static/: chunk ${bogus} is not a valid directory listing: it is not a list of entries`,
    )
  })

  it('a chunk for a directory its parent holds as a symlink is damage (a restore would write through the link)', async () => {
    const {store, index, id, snap} = await backedUp()
    // "entry" is a symlink in the root listing; give it a listing of its own.
    index.write({
      ...index.get(id)!,
      root: {...snap.root, entry: snap.root['static/css']!},
      files: snap.files + 1,
      bytes: snap.bytes + 7,
    })
    const b = checkBackup(id, index.read(id), new StoreChecker(store))
    const message = expect.stringContaining('lists directory entry/, which its parent (root) does not hold')
    expect(b.damage).toEqual([expect.objectContaining({what: 'metadata', path: 'entry', message})])
  })

  it('LocalTarget.restore checks the objects it will copy and writes nothing when one is damaged', async () => {
    const {target, store, id, snap, local} = await backedUp()
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v2 broken")\n')
    fs.rmSync(path.join(target, 'README.md'))
    damageObject(store, snap.manifest.get('app/main.py')!.hash!, flip)
    fs.rmSync(store.pathOf(snap.manifest.get('README.md')!.hash!))
    const before = untouched(target)
    let err: unknown
    try {
      await local.restore(id)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(BackupDamagedError)
    const damage = (err as BackupDamagedError).damage
    expect(damage.map((d) => [d.what, d.problem, d.path])).toEqual([
      ['object', 'missing', 'README.md'],
      ['object', 'hash-mismatch', 'app/main.py'],
    ])
    const readme = snap.manifest.get('README.md')!.hash
    expect((err as Error).message).toContain(`backup ${id} is damaged: README.md: object ${readme} is missing`)
    expect(untouched(target)).toEqual(before)
  })

  it('LocalTarget.restore reads only the objects of files that differ (O(changed)): damage elsewhere does not block it', async () => {
    const {target, store, id, snap, local} = await backedUp()
    const want = untouched(target)
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v2 broken")\n')
    damageObject(store, snap.manifest.get('README.md')!.hash!, flip) // README.md is equal in the target: not copied
    const r = await local.restore(id)
    expect(r.written).toEqual(['app/main.py'])
    expect(await local.verify(id)).toEqual([])
    expect(fs.readFileSync(path.join(target, 'app/main.py'), 'utf8')).toBe('print("v1")\n')
    expect(Object.keys(untouched(target))).toEqual(Object.keys(want))
    // The full check still finds it.
    expect((await local.check(id)).damage).toEqual([expect.objectContaining({what: 'object', path: 'README.md'})])
  })

  it('the verify right after a restore checks what the restore changed (afresh), and relies on its walk for the rest', async () => {
    const {target, id, local, config} = await backedUp()
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v2")\n')
    fs.writeFileSync(path.join(target, 'extra.txt'), 'not in the backup\n')
    const r = await local.restore(id)
    expect(r).toEqual({written: ['app/main.py'], removed: ['extra.txt']})
    // A restored file changed before the verify is read again and caught, as is a removed one that came back.
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v3")\n')
    fs.writeFileSync(path.join(target, 'extra.txt'), 'back again\n')
    const untouchedByRestore = path.join(target, 'README.md')
    fs.appendFileSync(untouchedByRestore, 'edited after the restore\n')
    expect((await local.verify(id)).sort()).toEqual(['app/main.py', 'extra.txt'])
    // A verify not right after this process's restore walks the whole tree.
    const fresh = openTarget(config, {warn: () => {}}).backups
    expect((await fresh.verify(id)).sort()).toEqual(['README.md', 'app/main.py', 'extra.txt'])
    expect((await local.verify(id)).sort()).toEqual(['README.md', 'app/main.py', 'extra.txt'])
  })

  it('the verify right after a restore does not look through a restored symlink for a removed leftover', async () => {
    const base = tmpDir()
    const target = path.join(base, 'live')
    writeTree(target, {'real/style.css': 'a{}\n', 'app.py': 'print(1)\n'})
    fs.symlinkSync('real', path.join(target, 'assets')) // backed up as a symlink to a directory
    const store = new ObjectStore(path.join(base, 'objects'))
    const skip = compilePatterns([])
    const snap = await snapshotTree(walkTree(target, skip), HashCache.open(), store)
    fs.rmSync(path.join(target, 'assets'))
    writeTree(target, {'assets/style.css': 'b{}\n'}) // now a directory holding the same name
    const plan = planRestore(snap.manifest, walkTree(target, skip, skip), HashCache.open())
    applyRestore(plan, store)
    expect(fs.readlinkSync(path.join(target, 'assets'))).toBe('real')
    expect(verifyRestored(plan, HashCache.open())).toEqual([])
    expect(diffAgainst(snap.manifest, walkTree(target, skip), HashCache.open())).toEqual([])
  })

  it('LocalTarget.restore refuses a backup whose chunk was edited to name another object of the same size', async () => {
    const {target, store, id, snap, local} = await backedUp()
    const other = store.putBytes('print("v9")\n').hash // same size as print("v1")
    damageObject(store, snap.root['app']!, (b) =>
      Buffer.from(b.toString().replace(snap.manifest.get('app/main.py')!.hash!, other)),
    )
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v2")\n')
    const before = untouched(target)
    await expect(local.restore(id)).rejects.toThrow(`directory app/: chunk ${snap.root['app']} does not match its hash`)
    await expect(local.verify(id)).rejects.toThrow(BackupDamagedError)
    expect(untouched(target)).toEqual(before)
  })

  it('an object damaged after the check is caught by the copy itself: the bad copy is never renamed into place', async () => {
    const {target, store, snap} = await backedUp()
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v2")\n')
    const plan = planRestore(
      snap.manifest,
      walkTree(target, compilePatterns(['/uploads', 'local.env'])),
      HashCache.open(),
    )
    expect(plan.writes.map(([rel]) => rel)).toEqual(['app/main.py'])
    damageObject(store, snap.manifest.get('app/main.py')!.hash!, flip)
    expect(() => applyRestore(plan, store)).toThrow('changed while it was being restored')
    expect(fs.readFileSync(path.join(target, 'app/main.py'), 'utf8')).toBe('print("v2")\n')
    expect(fs.readdirSync(path.join(target, 'app')).filter((n) => n.startsWith('.hotctl-restore'))).toEqual([])
  })

  it('after a snapshot of the live tree, a restore reads only the listings that differ from it: damage in an equal one does not block it', async () => {
    const {target, store, id, snap, local} = await backedUp()
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v2")\n')
    damageObject(store, snap.root['static/css']!, flip) // static/css is equal in the target: its listing is not needed
    await local.snapshot('20250101120009', 'rollback') // the undo snapshot a rollback takes
    const r = await local.restore(id)
    expect(r).toEqual({written: ['app/main.py'], removed: []})
    expect(await local.verify(id)).toEqual([])
    expect(fs.readFileSync(path.join(target, 'app/main.py'), 'utf8')).toBe('print("v1")\n')
    // The full check still finds it.
    expect((await local.check(id)).damage).toEqual([
      expect.objectContaining({what: 'chunk', problem: 'hash-mismatch', path: 'static/css'}),
    ])
  })

  it('after a snapshot of the live tree, a damaged listing that differs from it, wrong totals or a directory its parent does not hold are refused', async () => {
    const refused = async (edit: (f: Awaited<ReturnType<typeof backedUp>>) => void, message: string) => {
      const f = await backedUp()
      fs.writeFileSync(path.join(f.target, 'app/main.py'), 'print("v2")\n')
      edit(f)
      await f.local.snapshot('20250101120009', 'rollback')
      const before = untouched(f.target)
      await expect(f.local.restore(f.id)).rejects.toThrow(BackupDamagedError)
      await expect(f.local.restore(f.id)).rejects.toThrow(message)
      expect(untouched(f.target)).toEqual(before)
    }
    await refused(
      ({store, snap}) => damageObject(store, snap.root['app']!, flip),
      'directory app/: chunk', // differs from the target's listing (main.py): read and refused
    )
    await refused(
      ({index, id}) => index.write({...index.get(id)!, bytes: index.get(id)!.bytes + 1}),
      'its directory listings hold 5 files',
    )
    // "entry" is a symlink in the root listing (equal to the target's: not read); give it a listing of its own.
    await refused(
      ({index, id, snap}) =>
        index.write({
          ...index.get(id)!,
          root: {...snap.root, entry: snap.root['static/css']!},
          files: snap.files + 1,
          bytes: snap.bytes + 7,
        }),
      'lists directory entry/, which its parent (root) does not hold',
    )
    // The same under a listing that differs (app/, read): app/main.py is a file there.
    await refused(
      ({index, id, snap}) =>
        index.write({
          ...index.get(id)!,
          root: {...snap.root, 'app/main.py': snap.root['static/css']!},
          files: snap.files + 1,
          bytes: snap.bytes + 7,
        }),
      'lists directory app/main.py/, which its parent app/ does not hold',
    )
  })

  it('planning over the differing listings only makes the plan a full comparison makes', async () => {
    const {target, store} = fixture()
    const skip = compilePatterns(['/uploads', 'local.env'])
    const cache = HashCache.open()
    const backup = await snapshotTree(walkTree(target, skip), cache, store)
    const meta = {id: '20250101120000', time: '', reason: 'deploy', release: null, gitSha: null, added: 0, protect: []}
    const raw = {...meta, files: backup.files, bytes: backup.bytes, root: backup.root}
    const manifest = backup.manifest
    // Changes of every kind; app/empty and static/css stay as they were.
    fs.writeFileSync(path.join(target, 'app/main.py'), 'print("v2 broken")\n')
    fs.chmodSync(path.join(target, 'app/util.py'), 0o644)
    fs.rmSync(path.join(target, 'README.md'))
    writeTree(target, {'app/new.py': 'new', 'newdir/deep/f': 'f', 'static/extra.css': 'x'})
    fs.rmSync(path.join(target, 'entry'))
    fs.symlinkSync('app/new.py', path.join(target, 'entry'))
    fs.symlinkSync('nowhere', path.join(target, 'dangling'))
    fs.rmdirSync(path.join(target, 'emptydir'))
    fs.mkdirSync(path.join(target, 'newempty'))
    // A listing equal to the live one is not read: damaging it changes nothing.
    damageObject(store, backup.root['app/empty']!, flip)

    const tree = walkTree(target, skip, skip)
    const now = await snapshotTree(tree, cache, store)
    const known = {
      root: now.root,
      files: now.files,
      bytes: now.bytes,
      isDir: (rel: string) => tree.entries.get(rel)?.type === 'dir',
    }
    const checker = new StoreChecker(store, false)
    const b = checkBackupBeside(raw.id, {id: raw.id, raw}, checker, known)!
    expect(b.damage).toEqual([])
    expect([...b.differing!.keys()].sort()).toEqual(['', 'app', 'newdir', 'newdir/deep', 'static'])
    const fast = planRestoreDirs(b.differing!, b.known!, tree)
    const full = planRestore(manifest, tree, cache)
    expect(fast.writes).toEqual(full.writes)
    expect([...fast.extras].sort()).toEqual([...full.extras].sort())
    expect(fast.extras.length).toBeGreaterThan(0)
    applyRestore(fast, store)
    expect(verifyRestored(fast, cache)).toEqual([])
    expect(diffAgainst(manifest, walkTree(target, skip), HashCache.open())).toEqual([])
  })

  it('the whole-store check: unused objects and temp files are info; an index naming a missing object is damage', async () => {
    const {store, index} = await backedUp()
    const unused = store.putBytes('no backup names this')
    store.flush()
    fs.writeFileSync(path.join(store.dir, 'tmp', '9-leftover'), 'x')
    const check = () => checkStore(index.readAll(), store, {wholeStore: true})
    expect(check()).toMatchObject({
      damage: [],
      info: {orphanObjects: 1, orphanBytes: unused.added, tempFiles: ['tmp/9-leftover']},
    })
    fs.rmSync(store.pathOf(unused.hash))
    expect(check().damage).toEqual([expect.objectContaining({what: 'index', hash: unused.hash})])
  })
})

describe('incremental prune (after a deploy)', () => {
  /** Three backups of a changing tree; returns the state dir and a LocalTarget's backups over it. */
  async function threeBackups() {
    const base = tmpDir()
    const target = path.join(base, 'live')
    const stateDir = path.join(base, 'state')
    writeTree(target, {'a.txt': 'A1', 'b.txt': 'only in the first', 'x/c.txt': 'moves later', 'x/d.txt': 'stays'})
    const open = (dir: string) =>
      openTarget({target, stateDir: dir, exclude: [], protect: [], hosts: []} as unknown as ResolvedConfig, {
        warn: () => {},
      }).backups
    const local = open(stateDir)
    await local.snapshot('20250101000001', 'deploy')
    fs.writeFileSync(path.join(target, 'a.txt'), 'A2 longer')
    fs.rmSync(path.join(target, 'b.txt'))
    fs.mkdirSync(path.join(target, 'y'))
    fs.renameSync(path.join(target, 'x/c.txt'), path.join(target, 'y/e.txt')) // same content, another chunk
    await local.snapshot('20250101000002', 'deploy')
    fs.writeFileSync(path.join(target, 'a.txt'), 'A3 longer still')
    await local.snapshot('20250101000003', 'deploy')
    return {base, stateDir, open}
  }
  const objects = (stateDir: string) =>
    fs
      .readdirSync(path.join(stateDir, 'objects'))
      .filter((d) => d.length === 2)
      .flatMap((d) => fs.readdirSync(path.join(stateDir, 'objects', d)))
      .sort()
  const sha = (s: string) => crypto.createHash('sha256').update(s).digest('hex')

  it('deletes what only the removed backups used, keeps moved content, and leaves what a full sweep leaves', async () => {
    const {base, stateDir, open} = await threeBackups()
    const copy = path.join(base, 'state-copy')
    fs.cpSync(stateDir, copy, {recursive: true})

    const r = await open(stateDir).prune(2, [], {incremental: true})
    expect(r.removed).toEqual(['20250101000001'])
    const left = objects(stateDir)
    expect(left).not.toContain(sha('A1'))
    expect(left).not.toContain(sha('only in the first'))
    expect(left).toContain(sha('moves later'))
    expect(left).toContain(sha('stays'))
    expect(r.freedBytes).toBeGreaterThan('A1'.length + 'only in the first'.length)
    const check = await open(stateDir).check()
    expect(check.damage).toEqual([])
    // The index names exactly what is stored.
    expect(
      fs
        .readFileSync(path.join(stateDir, 'objects', 'index'), 'utf8')
        .split('\n')
        .sort(),
    ).toEqual(left)

    const full = await open(copy).prune(2, [])
    expect(full.removed).toEqual(['20250101000001'])
    expect(left).toEqual(objects(copy))
    expect(r.freedBytes).toBe(full.freedBytes)
  })

  it('a kept listing that is not what its name says stops it before anything is deleted (even one that still parses)', async () => {
    const {stateDir, open} = await threeBackups()
    const kept = (await open(stateDir).list()).at(-1)!
    const chunk = path.join(stateDir, 'objects', kept.root.x!.slice(0, 2), kept.root.x!)
    const text = fs.readFileSync(chunk, 'utf8')
    expect(text).toContain('d.txt')
    fs.chmodSync(chunk, 0o644)
    fs.writeFileSync(chunk, text.replace('d.txt', 'D.txt'))
    const before = objects(stateDir)
    await expect(open(stateDir).prune(2, [], {incremental: true})).rejects.toThrow(
      /chunk .* does not match|damaged|hash/,
    )
    expect(objects(stateDir)).toEqual(before)
  })

  it("a removed backup's listing naming a path instead of an object makes prune delete nothing outside the store", async () => {
    const {base, stateDir, open} = await threeBackups()
    const outside = path.join(base, 'outside.txt')
    fs.writeFileSync(outside, 'not the store')
    const first = (await open(stateDir).list())[0]!
    const chunk = path.join(stateDir, 'objects', first.root['']!.slice(0, 2), first.root['']!)
    const rows = JSON.parse(fs.readFileSync(chunk, 'utf8')) as unknown[][]
    const victim = path.relative(stateDir, outside) // pathOf: objects/<first two chars>/<name>
    rows.push(['evil.txt', 'f', 0o644, 13, victim])
    fs.chmodSync(chunk, 0o644)
    fs.writeFileSync(chunk, JSON.stringify(rows)) // a removed backup's chunks are read, not checked
    const r = await open(stateDir).prune(2, [], {incremental: true})
    expect(r.removed).toEqual(['20250101000001'])
    expect(fs.readFileSync(outside, 'utf8')).toBe('not the store')
  })
})

describe('first backup copied on every core (parallelCopier)', () => {
  /** 60 files, ~24 MiB: past the threshold. Some share content; one is bigger than the copy buffer; one name is not UTF-8. */
  function bigFirstTree() {
    const base = tmpDir()
    const live = path.join(base, 'live')
    const files: Record<string, Buffer> = {}
    for (let i = 0; i < 60; i++) {
      const dir = `d${i % 4}`
      const body =
        i % 10 === 3 ? Buffer.from('the same content in six files\n') : crypto.randomBytes(300_000 + i * 3000)
      files[i === 7 ? `${dir}/bad\udcff${i}` : `${dir}/f${i}`] = body
    }
    files['big/blob.bin'] = crypto.randomBytes(3 * 1024 * 1024 + 11) // streamed, then linked under its name
    for (const [rel, body] of Object.entries(files)) {
      fs.mkdirSync(path.join(live, path.dirname(rel)), {recursive: true})
      fs.writeFileSync(fsPath(path.join(live, rel)), body)
    }
    return {base, live}
  }
  const skip = compilePatterns([])

  it("a staged object whose 'already' twin (from a batch copied at the same time) is taken first stays staged and is published", () => {
    const base = tmpDir()
    const store = new ObjectStore(path.join(base, 'store'))
    store.beginBatch()
    const body = Buffer.from('same content in two files\n')
    const hash = crypto.createHash('sha256').update(body).digest('hex')
    const st = (store as unknown as {stage: {dir: string}}).stage
    fs.mkdirSync(path.join(st.dir, hash.slice(0, 2)), {recursive: true})
    fs.writeFileSync(path.join(st.dir, hash.slice(0, 2), hash), body) // what the copy that made it wrote
    const batch = (state: number) => ({
      digests: Uint8Array.from(Buffer.from(hash, 'hex')),
      sizes: Float64Array.of(body.length),
      states: Uint8Array.of(state),
    })
    const absorb = (
      store as unknown as {absorb: (s: unknown, b: unknown, d: string, r: string[]) => unknown}
    ).absorb.bind(store)
    absorb(st, batch(STAGED.already), `${base}/`, ['b.txt']) // the twin, from the batch walked first
    absorb(st, batch(STAGED.new), `${base}/`, ['a.txt']) // the copy that created it
    store.makeDurable()
    store.flush()
    expect(fs.readFileSync(store.pathOf(hash))).toEqual(body)
  })

  it('stages every file on worker threads too, and makes the snapshot a one-by-one copy makes', async () => {
    const {base, live} = bigFirstTree()
    const tree = walkTree(live, skip)
    const one = new ObjectStore(path.join(base, 'one'))
    const sequential = await snapshotTree(tree, HashCache.open(), one) // no batch: one by one
    const store = new ObjectStore(path.join(base, 'many'))
    const workersBefore = putPool.workers
    store.beginBatch()
    const cache = HashCache.open()
    const snap = await snapshotTree(tree, cache, store)
    expect(putPool.workers).toBeGreaterThan(workersBefore)
    for (const h of Object.values(snap.root)) expect(fs.existsSync(store.pathOf(h))).toBe(false) // staged, invisible
    store.makeDurable()
    store.flush()
    expect(snap.root).toEqual(sequential.root)
    expect([snap.files, snap.bytes, snap.added]).toEqual([sequential.files, sequential.bytes, sequential.added])
    expect(fs.readdirSync(path.join(store.dir, 'tmp'))).toEqual([])
    const reopened = new ObjectStore(store.dir)
    for (const [rel, e] of snap.manifest) {
      if (e.type !== 'file') continue
      expect(reopened.has(e.hash!)).toBe(true)
      expect(reopened.check(e.hash!)).toEqual({state: 'ok', size: e.size})
      expect(cache.peek(rel, tree.entries.get(rel)!)).toBe(e.hash) // recorded for the next deploy
    }
    const restored = path.join(base, 'restored')
    restoreTree(snap.manifest, walkTree(restored, skip), reopened, HashCache.open())
    expect(diffAgainst(snap.manifest, walkTree(restored, skip), HashCache.open())).toEqual([])
  }, 60_000)

  it('content the store held before the batch is not staged again (nor counted as added)', async () => {
    const {base, live} = bigFirstTree()
    const store = new ObjectStore(path.join(base, 'objects'))
    const held = store.putBytes('the same content in six files\n')
    store.makeDurable()
    store.flush()
    const before = fs.statSync(store.pathOf(held.hash)).ino
    store.beginBatch()
    const snap = await snapshotTree(walkTree(live, skip), HashCache.open(), store)
    const staged = fs.readdirSync(path.join(store.dir, 'tmp'))[0]!
    expect(fs.existsSync(path.join(store.dir, 'tmp', staged, held.hash.slice(0, 2), held.hash))).toBe(false)
    store.makeDurable()
    expect(fs.statSync(store.pathOf(held.hash)).ino).toBe(before) // the stored object itself, untouched
    expect(snap.manifest.get('d3/f3')!.hash).toBe(held.hash)
    const sequential = await snapshotTree(
      walkTree(live, skip),
      HashCache.open(),
      new ObjectStore(path.join(base, 'one')),
    )
    expect(snap.added).toBe(sequential.added - held.added)
    expect(snap.root).toEqual(sequential.root)
  }, 60_000)

  it('a file gone since the walk fails the backup naming it, and the batch leaves nothing behind', async () => {
    const {base, live} = bigFirstTree()
    const tree = walkTree(live, skip)
    fs.rmSync(path.join(live, 'd1/f45'))
    const store = new ObjectStore(path.join(base, 'objects'))
    store.beginBatch()
    await expect(snapshotTree(tree, HashCache.open(), store)).rejects.toThrow(/ENOENT.*d1\/f45/)
    store.abortBatch()
    expect(fs.readdirSync(path.join(store.dir, 'tmp'))).toEqual([])
    expect(fs.readdirSync(store.dir)).toEqual(['tmp'])
  }, 60_000)

  it('a file grown since the walk is recorded as copied', async () => {
    const {base, live} = bigFirstTree()
    const tree = walkTree(live, skip)
    fs.appendFileSync(path.join(live, 'd2/f50'), 'more, after the walk')
    const store = new ObjectStore(path.join(base, 'objects'))
    store.beginBatch()
    const snap = await snapshotTree(tree, HashCache.open(), store)
    store.makeDurable()
    const e = snap.manifest.get('d2/f50')!
    expect(e.hash).toBe(hashFile(path.join(live, 'd2/f50')))
    expect(e.size).toBe(fs.statSync(path.join(live, 'd2/f50')).size)
  }, 60_000)

  it('is not used for little content, or into a store that already holds most of it', async () => {
    const {base} = bigFirstTree()
    const store = new ObjectStore(path.join(base, 'objects'))
    expect(store.parallelCopier(base, 100, 1024 * 1024)).toBeUndefined() // no batch open
    store.beginBatch()
    expect(store.parallelCopier(base, 100, 1024 * 1024)).toBeUndefined() // little content
    for (let i = 0; i < 100; i++) store.putBytes(`object ${i}`)
    expect(store.parallelCopier(base, 100, 64 * 1024 * 1024)).toBeUndefined() // the store has what it would copy, most likely
    store.abortBatch()
  })
})

describe('directory signatures of a packed walk', () => {
  it('are the ones computed entry by entry (names not UTF-8 and not ASCII, symlinks, nesting, any order)', () => {
    const root = tmpDir()
    writeTree(root, {
      'a.py': 'a',
      'dir/b.py': 'bb',
      'dir/sub/c.py': 'ccc',
      'dir/sub2/d.txt': 'd',
      'dirx/e': 'e',
      'ünï/çødé.py': 'utf8',
      'deep/er/still/f': 'f',
    })
    fs.mkdirSync(fsPath(path.join(root, 'bad\udcff')))
    fs.writeFileSync(fsPath(path.join(root, 'bad\udcff', 'x\udcfe')), 'not utf-8')
    fs.symlinkSync('dir/b.py', path.join(root, 'link'))
    fs.symlinkSync('ünï', path.join(root, 'dir', 'wide-link'))
    const packed = walkTree(root, compilePatterns([]))
    const byEntry = {...packed, entries: new Map(packed.entries)}
    const reversed = {...packed, entries: new Map([...packed.entries].reverse())}
    const want = dirSignatures(byEntry)
    expect(Object.keys(want).length).toBeGreaterThan(8)
    expect(dirSignatures(packed)).toEqual(want)
    expect(dirSignatures(reversed)).toEqual(want)
  })
})
