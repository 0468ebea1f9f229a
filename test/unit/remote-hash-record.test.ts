import {describe, expect, it} from 'vitest'
import {RemoteHashRecord} from '../../src/ssh/hash-record.js'
import type {RemoteTreeEntry} from '../../src/ssh/remote-tree.js'

const entry = (size: number, ino: number): RemoteTreeEntry =>
  ({type: 'file', mode: 0o644, size, mtime: '1.5', ctime: '2.5', ino}) as RemoteTreeEntry
const hash = (c: string) => c.repeat(64)

/** A stored base of `n` rows (a/0 … a/n-1), as saveRecord writes it whole. */
function stored(n: number): Buffer {
  const r = RemoteHashRecord.parse(undefined)
  for (let i = 0; i < n; i++) r.set(`a/${i}`, entry(i, 100 + i), hash('a'))
  return r.serialize(() => true)
}

describe('RemoteHashRecord patch', () => {
  it('applies appended rows and deletions over the base, in order; a cut-off line is skipped', () => {
    const base = stored(3)
    const r = RemoteHashRecord.parse(base)
    r.set('a/1', entry(9, 201), hash('b'))
    r.set('new', entry(4, 300), hash('c'))
    r.delete('a/2')
    r.delete('never-there') // nothing to delete: no line
    const patch = r.patch()
    expect(patch?.trim().split('\n')).toHaveLength(3)
    r.saved(3)
    expect(r.unsaved).toBe(0)

    const cut = '["a/0",0,"1.5","2.5",100,"' // a line cut off by a crash mid-append
    const back = RemoteHashRecord.parse(base, Buffer.from(patch + cut))
    expect(back.peek('a/0', entry(0, 100))).toBe(hash('a'))
    expect(back.peek('a/1', entry(1, 101))).toBeUndefined() // the old stat no longer vouches
    expect(back.peek('a/1', entry(9, 201))).toBe(hash('b'))
    expect(back.peek('new', entry(4, 300))).toBe(hash('c'))
    expect(back.knows('a/2')).toBe(false)
  })

  it('asks for a whole rewrite without a stored base or once the patch would outgrow a quarter of it', () => {
    const fresh = RemoteHashRecord.parse(undefined)
    fresh.set('x', entry(1, 1), hash('d'))
    expect(fresh.patch()).toBeUndefined()

    const base = stored(2000) // room for 500 patch lines
    const lines = Array.from(
      {length: 495},
      (_, i) => `${JSON.stringify(['a/0', 0, '1.5', '2.5', 100, hash(String(i % 10))])}\n`,
    )
    const r = RemoteHashRecord.parse(base, Buffer.from(lines.join('')))
    for (let i = 0; i < 5; i++) r.set(`a/${i}`, entry(i, 500 + i), hash('e'))
    expect(r.patch()).toBeDefined() // 495 + 5
    r.set('a/5', entry(5, 505), hash('e'))
    expect(r.patch()).toBeUndefined() // 495 + 6
    r.saved() // written whole: the patch starts over
    r.set('a/6', entry(6, 506), hash('e'))
    expect(r.patch()).toBeDefined()
  })
})
