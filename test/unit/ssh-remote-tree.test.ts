import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {compilePatterns} from '../../src/plan/patterns.js'
import {parseRemoteList, timeMs} from '../../src/ssh/remote-tree.js'
import {walkTree} from '../../src/store/walk.js'

/** What the host prints for `root`: the same find command walkRemote sends (GNU findutils here). */
function listing(root: string): Buffer {
  const r = spawnSync('find', ['.', '-mindepth', '1', '-printf', '%y %m %s %T@ %C@ %i\\0%P\\0%l\\0'], {cwd: root})
  expect(r.status).toBe(0)
  return r.stdout
}

describe('the host tree listing (find -printf)', () => {
  it('gives the entries walkTree gives: types, modes, sizes, times, inodes, links, skipped paths and their holders', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'remote-tree-'))
    try {
      fs.mkdirSync(path.join(root, 'app/sub'), {recursive: true})
      fs.mkdirSync(path.join(root, 'data/deep'), {recursive: true})
      fs.mkdirSync(path.join(root, 'app/__pycache__'))
      fs.writeFileSync(path.join(root, 'app/__pycache__/x.pyc'), 'c')
      fs.writeFileSync(path.join(root, 'app/sub/a.py'), 'print(1)\n')
      fs.writeFileSync(path.join(root, 'data/deep/db'), 'x')
      fs.writeFileSync(path.join(root, 'run.sh'), '#!/bin/sh\n', {mode: 0o750})
      fs.writeFileSync(Buffer.from(path.join(root, 'caf\xe9 \n.txt'), 'latin1'), 'latin1 name, a newline too')
      fs.symlinkSync('app/sub/a.py', path.join(root, 'link'))
      spawnSync('mkfifo', [path.join(root, 'fifo')])
      const skip = compilePatterns(['__pycache__', 'data/'])
      const protect = compilePatterns(['data/'])
      const got = parseRemoteList(listing(root), root, skip, protect)
      const want = walkTree(root, skip, protect)
      expect(new Map([...got.entries].map(([k, {mtime: _m, ctime: _c, ...e}]) => [k, e]))).toEqual(
        new Map(want.entries),
      )
      expect(got.dirsWithSkipped).toEqual(want.dirsWithSkipped)
      expect(got.dirsWithProtected).toEqual(want.dirsWithProtected)
      expect([...got.entries.keys()]).not.toContain('data/deep/db')
    } finally {
      fs.rmSync(root, {recursive: true, force: true})
    }
  })

  it('reads times as Node computes mtimeMs', () => {
    expect(timeMs('1700000000.1234567890')).toBe(1700000000 * 1e3 + 123456789 / 1e6)
    expect(timeMs('1700000000')).toBe(1700000000000)
  })
})
