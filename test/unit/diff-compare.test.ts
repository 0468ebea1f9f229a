import {describe, expect, it} from 'vitest'
import {compare} from '../../src/pipeline/diff.js'
import type {Manifest, ManifestEntry} from '../../src/store/manifest.js'

const file = (hash: string, size = 1, mode = 0o644): ManifestEntry => ({type: 'file', mode, size, hash})
const m = (entries: Record<string, ManifestEntry>): Manifest => new Map(Object.entries(entries))

describe('diff: comparing two tree listings', () => {
  it('lists added, changed and deleted files with their sizes, leaving out the release marker and directories', () => {
    const a = m({
      '.hotctl-release.json': file('m1'),
      app: {type: 'dir', mode: 0o755},
      'app/a.py': file('a1', 10),
      'app/gone.py': file('g', 7),
      'run.sh': file('r', 3, 0o644),
      link: {type: 'symlink', mode: 0o777, link: 'app/a.py'},
    })
    const b = m({
      '.hotctl-release.json': file('m2'),
      app: {type: 'dir', mode: 0o755},
      'app/a.py': file('a2', 12),
      'app/new.py': file('n', 5),
      new: {type: 'dir', mode: 0o755},
      'run.sh': file('r', 3, 0o755),
      link: {type: 'symlink', mode: 0o777, link: 'run.sh'},
    })
    expect(compare(a, b)).toEqual({
      added: [{path: 'app/new.py', type: 'file', after: 5}],
      changed: [
        {path: 'app/a.py', type: 'file', before: 10, after: 12},
        {path: 'link', type: 'symlink', before: undefined, after: undefined},
        {path: 'run.sh', type: 'file', before: 3, after: 3, modeOnly: true},
      ],
      deleted: [{path: 'app/gone.py', type: 'file', before: 7}],
    })
  })

  it('a path that changes type is changed; identical trees differ in nothing', () => {
    const a = m({x: {type: 'dir', mode: 0o755}, 'x/y': file('y')})
    const b = m({x: file('x', 4)})
    expect(compare(a, b).changed).toEqual([{path: 'x', type: 'file', before: undefined, after: 4}])
    expect(compare(a, b).deleted).toEqual([{path: 'x/y', type: 'file', before: 1}])
    expect(compare(a, a)).toEqual({added: [], changed: [], deleted: []})
  })
})
