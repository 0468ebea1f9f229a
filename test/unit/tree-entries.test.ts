import {describe, expect, it} from 'vitest'
import {encodeName} from '../../src/file-names.js'
import {PathTable} from '../../src/store/path-table.js'
import {TreeEntries} from '../../src/store/tree-entries.js'
import type {TreeEntry} from '../../src/store/walk.js'

// The packed tables stand in for Map<string, …>: every test checks them against a Map doing the same.
const NAMES = [
  'a',
  'dir/a.py',
  'ünï/çødé.py',
  'new\nline/inner\n',
  'bad-\udcff-byte', // a name that is not UTF-8 (file-names.ts): its byte 0xff
  '日本/語',
  '',
]

const file = (n: number): TreeEntry => ({
  type: 'file',
  mode: 0o644,
  size: n,
  mtimeMs: 1700000000123.457 + n,
  ctimeMs: 1700000000999.1 + n,
  ino: 2 ** 40 + n,
})

describe('PathTable', () => {
  it('finds each path by its string and by its bytes, gives its string back exactly, and numbers slots in order', () => {
    const t = new PathTable(2, 4) // tiny: every add grows it
    const slots = NAMES.map((n) => t.add(n))
    expect(slots).toEqual(NAMES.map((_, i) => i))
    expect(NAMES.map((n) => t.add(n))).toEqual(slots) // added again: the same slot
    for (const [i, n] of NAMES.entries()) {
      expect(t.slotOf(n)).toBe(i)
      const b = encodeName(n)
      expect(t.slotOfBytes(b, 0, b.length)).toBe(i)
      expect(t.name(i)).toBe(n)
      expect(t.nameBytes(i).equals(b)).toBe(true)
    }
    expect(t.slotOf('dir/a.p')).toBe(-1)
    expect(t.slotOf('dir/a.pyc')).toBe(-1)
    expect(t.slotOf('bad-\udcfe-byte')).toBe(-1)
    expect(t.size).toBe(NAMES.length)
  })

  it('a path added from bytes is the one added from its string (and the other way round)', () => {
    const t = new PathTable()
    const raw = Buffer.from([0x78, 0xff, 0x2f, 0xc3, 0xa9]) // x<ff>/é
    const s = t.addBytes(Buffer.concat([Buffer.from('junk'), raw, Buffer.from('junk')]), 4, 4 + raw.length)
    expect(t.name(s)).toBe('x\udcff/é')
    expect(t.add('x\udcff/é')).toBe(s)
    expect(t.slotOf('x\udcff/é')).toBe(s)
  })

  it('agrees with a Map over many adds and removes (the index grows and skips removed places)', () => {
    const t = new PathTable()
    const m = new Map<string, number>()
    let seed = 7
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % 5000
    for (let i = 0; i < 40_000; i++) {
      const rel = `d${rand() % 50}/f${rand()}.py`
      if (i % 3 === 2) {
        const slot = t.slotOf(rel)
        expect(slot >= 0).toBe(m.has(rel))
        if (slot >= 0) t.remove(slot)
        m.delete(rel)
      } else {
        const slot = t.add(rel)
        if (m.has(rel)) expect(slot).toBe(m.get(rel))
        else m.set(rel, slot)
      }
    }
    expect(t.size).toBe(m.size)
    for (const [rel, slot] of m) expect([t.slotOf(rel), t.isLive(slot), t.name(slot)]).toEqual([slot, true, rel])
    const live: string[] = []
    for (let s = 0; s < t.count; s++) if (t.isLive(s)) live.push(t.name(s))
    expect(live).toEqual([...m.keys()].sort((a, b) => m.get(a)! - m.get(b)!))
  })
})

describe('TreeEntries', () => {
  it('behaves as a Map of entries: order, set again in place, deleted and set again last, values exact', () => {
    const t = new TreeEntries(1)
    const m = new Map<string, TreeEntry>()
    const both = (rel: string, e: TreeEntry) => (t.set(rel, e), m.set(rel, e))
    NAMES.forEach((n, i) => both(n, file(i)))
    both('link', {type: 'symlink', mode: 0o777, size: 3, mtimeMs: 1, ctimeMs: 2, ino: 3, link: 'a\udcff/b'})
    both('dir', {type: 'dir', mode: 0o2755, size: 4096, mtimeMs: -1.5, ctimeMs: 0, ino: 9})
    both('a', file(100)) // set again: keeps its place
    t.delete('dir/a.py')
    m.delete('dir/a.py')
    both('dir/a.py', file(200)) // deleted and set again: last
    expect(t.delete('nothing')).toBe(false)
    expect([...t]).toEqual([...m])
    expect([...t.keys()]).toEqual([...m.keys()])
    expect([...t.values()]).toEqual([...m.values()])
    expect(t.size).toBe(m.size)
    for (const k of [...m.keys(), 'missing']) {
      expect(t.get(k)).toEqual(m.get(k))
      expect(t.has(k)).toBe(m.has(k))
    }
    // A symlink set again as a file loses its target.
    both('link', file(5))
    expect(t.get('link')).toEqual(file(5))
    expect(t.get('link')).not.toHaveProperty('link')
  })

  it('a clone is independent of the tree it was copied from', () => {
    const t = new TreeEntries()
    t.set('a', file(1)).set('b', file(2))
    const c = t.clone()
    c.delete('a')
    c.set('b', file(3))
    c.set('c', file(4))
    t.set('d', file(5))
    expect([...t.keys()]).toEqual(['a', 'b', 'd'])
    expect(t.get('b')).toEqual(file(2))
    expect([...c]).toEqual([
      ['b', file(3)],
      ['c', file(4)],
    ])
  })
})
