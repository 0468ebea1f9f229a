import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {compilePatterns} from '../../src/plan/patterns.js'
import {treeAfterSync} from '../../src/store/deployed.js'
import {dirSignatures, snapshotCounts} from '../../src/store/snapshot.js'
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
})
