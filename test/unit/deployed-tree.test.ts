import {spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it, vi} from 'vitest'
import {MARKER_NAME, type ResolvedConfig} from '../../src/config/resolve.js'
import {compilePatterns} from '../../src/plan/patterns.js'
import {type DeployedRecord, treeAfterSync} from '../../src/store/deployed.js'
import {HashCache} from '../../src/store/hash-cache.js'
import {ObjectStore} from '../../src/store/objects.js'
import {dirSignatures, snapshotCounts, snapshotTree} from '../../src/store/snapshot.js'
import {type Tree, walkTree} from '../../src/store/walk.js'
import {openTarget} from '../../src/target/open.js'

const dirs: string[] = []
afterAll(() => dirs.forEach((d) => fs.rmSync(d, {recursive: true, force: true})))

const summary = (t: Tree) =>
  Object.fromEntries([...t.entries].map(([p, e]) => [p, `${e.type} ${e.mode.toString(8)} ${e.size} ${e.link ?? ''}`]))

describe('the tree as deployed, from the planning walk', () => {
  it('equals a fresh walk after adds, changes, deletions and type changes, looking only at the changed paths', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-deployed-'))
    dirs.push(root)
    const w = (rel: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(root, rel)), {recursive: true})
      fs.writeFileSync(path.join(root, rel), text)
    }
    w('keep.txt', 'same')
    w('change.txt', 'old')
    w('gone.txt', 'bye')
    w('olddir/a.txt', 'a')
    w('olddir/sub/b.txt', 'b')
    w('todir', 'was a file')
    w('.hotctl-release.json', '{"id":"1"}')
    const skip = compilePatterns([])
    const before = walkTree(root, skip)

    // What a sync does: the plan's paths only.
    fs.writeFileSync(path.join(root, 'change.txt'), 'new content')
    fs.rmSync(path.join(root, 'gone.txt'))
    fs.rmSync(path.join(root, 'olddir'), {recursive: true})
    w('olddir', 'now a file')
    fs.rmSync(path.join(root, 'todir'))
    w('todir/inside.txt', 'in')
    w('added/x.txt', 'x')
    fs.symlinkSync('keep.txt', path.join(root, 'link'))
    w('.hotctl-release.json', '{"id":"2", "longer": true}')
    const changes = {
      added: ['added', 'added/x.txt', 'link', 'todir/inside.txt'],
      changed: ['change.txt', 'olddir', 'todir'],
      deleted: ['gone.txt', 'olddir/a.txt'], // olddir/sub/ is not listed: it goes with olddir
    }
    const signedBefore = dirSignatures(before)
    const passes = snapshotCounts.summed
    const after = treeAfterSync(before, changes, '.hotctl-release.json')
    const fresh = walkTree(root, skip)
    expect(summary(after)).toEqual(summary(fresh))
    // Its directories' signatures carried over from the walk's, changed paths only: as a fresh walk's.
    expect(dirSignatures(after)).toEqual(dirSignatures(fresh))
    expect(dirSignatures(after)).not.toEqual(signedBefore)
    expect(snapshotCounts.summed).toBe(passes + 1) // the fresh walk's, not the carried tree's
    expect(before.entries.has('gone.txt')).toBe(true) // the planning walk itself is left as it was
  })

  it("its snapshot is the backup's chunks with the synced paths' rows patched in: equal to one from scratch", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-deployed-'))
    dirs.push(root)
    const w = (rel: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(root, 'live', rel)), {recursive: true})
      fs.writeFileSync(path.join(root, 'live', rel), text)
    }
    for (let i = 0; i < 10; i++) w(`same/f${i}.txt`, `same ${i}`)
    w('a/change.txt', 'old')
    w('a/keep.txt', 'keep')
    w('a/gone.txt', 'bye')
    w('olddir/x.txt', 'x')
    w('olddir/sub/y.txt', 'y')
    w('.hotctl-release.json', '{"id":"1"}')
    const live = path.join(root, 'live')
    const skip = compilePatterns([])
    const store = new ObjectStore(path.join(root, 'objects'))
    const cache = HashCache.open()
    const before = walkTree(live, skip)
    const backup = await snapshotTree(before, cache, store)

    fs.writeFileSync(path.join(live, 'a/change.txt'), 'new content')
    fs.rmSync(path.join(live, 'a/gone.txt'))
    fs.rmSync(path.join(live, 'olddir'), {recursive: true})
    w('olddir', 'now a file')
    w('added/z.txt', 'z')
    w('.hotctl-release.json', '{"id":"2"}')
    const changes = {
      added: ['added', 'added/z.txt'],
      changed: ['a/change.txt', 'olddir'],
      deleted: ['a/gone.txt', 'olddir/x.txt'],
    }
    const after = treeAfterSync(before, changes, '.hotctl-release.json')
    const counts = {...snapshotCounts}
    const touched = [...changes.added, ...changes.changed, ...changes.deleted, '.hotctl-release.json']
    const snap = await snapshotTree(after, cache, store, undefined, backup, touched)
    // Only the touched paths present after the sync were looked at; `same/` was reused.
    expect(snapshotCounts.entries - counts.entries).toBe(5)
    expect(snap.root['same']).toBe(backup.root['same'])
    const scratch = await snapshotTree(walkTree(live, skip), HashCache.open(), new ObjectStore(path.join(root, 'o2')))
    expect(snap.root).toEqual(scratch.root)
    expect({files: snap.files, bytes: snap.bytes}).toEqual({files: scratch.files, bytes: scratch.bytes})
  })
})

describe("a rollback's restore and the record of the release it puts back", () => {
  /** A LocalTarget's backups over `live` (a new one: a new process), protecting `protect`. */
  const backupsOf = (root: string, protect: string[] = []) =>
    openTarget(
      {
        target: path.join(root, 'live'),
        stateDir: path.join(root, 'state'),
        exclude: [],
        protect,
        hosts: [],
      } as unknown as ResolvedConfig,
      {warn: () => {}},
    ).backups
  const recordOf = (root: string, release: string) =>
    JSON.parse(fs.readFileSync(path.join(root, 'state', 'deployed', `${release}.json`), 'utf8')) as DeployedRecord
  const scratchRoot = async (root: string, skip = compilePatterns([])) =>
    (
      await snapshotTree(
        walkTree(path.join(root, 'live'), skip),
        HashCache.open(),
        new ObjectStore(fs.mkdtempSync(path.join(root, 'o-'))),
      )
    ).root

  /** Release R deployed and recorded, backed up as B before L is deployed (and recorded) over it. */
  async function releasedTwice(
    protect: string[] = [],
    deployL: (w: (rel: string, text: string) => void, live: string) => void,
  ) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-deployed-'))
    dirs.push(root)
    const live = path.join(root, 'live')
    const w = (rel: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(live, rel)), {recursive: true})
      fs.writeFileSync(path.join(live, rel), text)
    }
    for (let i = 0; i < 10; i++) w(`same/f${i}.txt`, `same ${i}`)
    w('a/change.txt', 'old')
    w('a/gone.txt', 'goes in L')
    w('olddir/x.txt', 'x')
    w('olddir/sub/y.txt', 'y')
    w(MARKER_NAME, '{"id":"20250101000001"}')
    await backupsOf(root, protect).recordDeployed('20250101000001')
    const meta = await backupsOf(root, protect).snapshot('20250101000002', 'deploy')
    expect(meta.release).toBe('20250101000001')
    deployL(w, live)
    w(MARKER_NAME, '{"id":"20250101000002", "l": true}')
    await backupsOf(root, protect).recordDeployed('20250101000002')
    return {root, live, w, R: '20250101000001', B: '20250101000002'}
  }
  const deployL = (w: (rel: string, text: string) => void, live: string) => {
    w('a/change.txt', 'new in L')
    fs.rmSync(path.join(live, 'a/gone.txt'))
    fs.rmSync(path.join(live, 'olddir'), {recursive: true})
    w('olddir', 'now a file')
    w('added/z.txt', 'z')
  }

  it('reads no hash record, and leaves the record of the release put back with the signatures the next backup reuses', async () => {
    const {root, live, R, B} = await releasedTwice([], deployL)
    const recorded = recordOf(root, R)
    const opened = vi.spyOn(HashCache, 'open')
    const counts = {...snapshotCounts}
    const local = backupsOf(root)
    await local.snapshot('20250101000003', 'rollback') // the undo snapshot
    expect(snapshotCounts.entries - counts.entries).toBe(0) // every chunk the record of L's
    expect(await local.restore(B)).toEqual({
      written: [MARKER_NAME, 'a/change.txt', 'a/gone.txt', 'olddir', 'olddir/sub', 'olddir/sub/y.txt', 'olddir/x.txt'],
      removed: ['added/z.txt', 'added'],
    })
    expect(await local.verify(B)).toEqual([])
    // The target's hash record was never read: the undo snapshot reused every chunk, the plan
    // compared listings, the verify hashed what it wrote.
    expect(opened.mock.calls.filter(([file]) => file?.includes('target-hashes'))).toEqual([])
    opened.mockRestore()
    expect(fs.readFileSync(path.join(live, 'a/change.txt'), 'utf8')).toBe('old')

    // Only the signatures changed: the tree recorded as deployed (`hotctl diff`) is the same.
    const after = recordOf(root, R)
    expect(after.root).toEqual(recorded.root)
    expect(after.dirs).not.toEqual(recorded.dirs)
    expect(after.dirs).toEqual({...recorded.dirs, ...dirSignatures(walkTree(live, compilePatterns([])))})
    // The next backup (a deploy's, in a new process) looks at no file, and is the tree's snapshot.
    const next = {...snapshotCounts}
    const meta = await backupsOf(root).snapshot('20250101000004', 'deploy')
    expect(snapshotCounts.entries - next.entries).toBe(0)
    expect(snapshotCounts.rebuilt - next.rebuilt).toBe(0)
    expect(meta.root).toEqual(await scratchRoot(root))
  })

  it('a file edited behind its back after the rollback, keeping size and mtime, makes its directory be read again', async () => {
    const {root, live, B} = await releasedTwice([], deployL)
    const local = backupsOf(root)
    await local.snapshot('20250101000003', 'rollback')
    await local.restore(B)
    expect(await local.verify(B)).toEqual([])
    const file = path.join(live, 'a/change.txt')
    const before = fs.statSync(file, {bigint: true})
    const ref = path.join(root, 'mtime-ref')
    fs.writeFileSync(ref, '')
    expect(spawnSync('touch', ['-m', '-r', file, ref]).status).toBe(0)
    fs.writeFileSync(file, 'OLD') // same size
    expect(spawnSync('touch', ['-m', '-r', ref, file]).status).toBe(0)
    expect(fs.statSync(file, {bigint: true}).mtimeNs).toBe(before.mtimeNs)
    const next = {...snapshotCounts}
    const meta = await backupsOf(root).snapshot('20250101000004', 'deploy')
    expect(snapshotCounts.rebuilt - next.rebuilt).toBe(1) // a/
    expect(meta.root).toEqual(await scratchRoot(root))
    const rows = JSON.parse(
      fs.readFileSync(path.join(root, 'state', 'objects', meta.root['a']!.slice(0, 2), meta.root['a']!), 'utf8'),
    )
    expect(rows).toContainEqual([
      'change.txt',
      'f',
      expect.any(Number),
      3,
      crypto.createHash('sha256').update('OLD').digest('hex'),
    ])
  })

  it('a directory kept for its protected content is not the listing put back: its signature stays, the next backup reads it', async () => {
    const {root, live, R, B} = await releasedTwice(['*.dat'], (w, l) => {
      deployL(w, l)
      w('added/keep.dat', 'protected: never removed')
    })
    const recorded = recordOf(root, R)
    const local = backupsOf(root, ['*.dat'])
    await local.snapshot('20250101000003', 'rollback')
    await local.restore(B)
    expect(await local.verify(B)).toEqual([])
    expect(fs.readFileSync(path.join(live, 'added/keep.dat'), 'utf8')).toBe('protected: never removed')
    const after = recordOf(root, R)
    // The root directory holds `added/` (kept), which the backup's listing of it does not.
    expect(after.dirs!['']).toBe(recorded.dirs!['']) // as R recorded it
    expect(after.dirs!['a']).not.toBe(recorded.dirs!['a']) // put back: signed afresh
    const meta = await backupsOf(root, ['*.dat']).snapshot('20250101000004', 'deploy')
    expect(meta.root).toEqual(await scratchRoot(root, compilePatterns(['*.dat'])))
    expect(meta.root['']).not.toBe(recorded.root[''])
  })
})

describe('recording the tree as deployed', () => {
  it('writes its new objects durably before they appear under their names (the next backup trusts them by a stat)', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-deployed-'))
    dirs.push(root)
    const live = path.join(root, 'live')
    fs.mkdirSync(path.join(live, 'app'), {recursive: true})
    fs.writeFileSync(path.join(live, 'app', 'main.py'), 'print(1)\n')
    fs.writeFileSync(path.join(live, MARKER_NAME), '{"id":"20250101000001"}')
    const objectsDir = path.join(root, 'state', 'objects')
    const visible = () =>
      fs.existsSync(objectsDir)
        ? fs
            .readdirSync(objectsDir)
            .filter((d) => d.length === 2)
            .flatMap((d) => fs.readdirSync(path.join(objectsDir, d)))
            .sort()
        : []
    const seen: string[][] = []
    const real = ObjectStore.prototype.makeDurable
    const watch = vi.spyOn(ObjectStore.prototype, 'makeDurable').mockImplementation(function (this: ObjectStore) {
      seen.push(visible())
      real.call(this)
    })
    try {
      await openTarget(
        {
          target: live,
          stateDir: path.join(root, 'state'),
          exclude: [],
          protect: [],
          hosts: [],
        } as unknown as ResolvedConfig,
        {warn: () => {}},
      ).backups.recordDeployed('20250101000001')
    } finally {
      watch.mockRestore()
    }
    expect(seen.length).toBeGreaterThan(0)
    expect(seen[0]).toEqual([]) // nothing under its name before the batch is made durable
    expect(visible().length).toBeGreaterThan(0) // file content and listings, published
  })
})
