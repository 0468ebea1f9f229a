import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {compilePatterns} from '../../src/plan/patterns.js'
import {treeAfterSync} from '../../src/store/deployed.js'
import {HashCache} from '../../src/store/hash-cache.js'
import {ObjectStore} from '../../src/store/objects.js'
import {dirSignatures, snapshotCounts, snapshotTree} from '../../src/store/snapshot.js'
import {type Tree, walkTree} from '../../src/store/walk.js'

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
