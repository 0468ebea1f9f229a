import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it, vi} from 'vitest'
import {HashSet} from '../../src/store/hash-set.js'
import {tmpDir} from './helpers.js'

const sha = (s: string) => crypto.createHash('sha256').update(s).digest('hex')

describe('HashSet', () => {
  it('holds names loaded in bulk and thousands added one by one (past its table growth), and writes them sorted', () => {
    const loaded = Array.from({length: 300}, (_, i) => sha(`loaded ${i}`))
    const added = Array.from({length: 5000}, (_, i) => sha(`added ${i}`))
    const set = HashSet.parse(loaded.join('\n'))
    for (const h of added) set.add(h)
    set.add(loaded[7]!) // already there: not twice
    set.add(added[9]!)
    expect(set.size).toBe(5300)
    expect([...loaded, ...added].every((h) => set.has(h))).toBe(true)
    expect(set.has(sha('never added'))).toBe(false)
    expect(set.has('not a hash')).toBe(false)
    const file = path.join(tmpDir(), 'index')
    const fd = fs.openSync(file, 'w')
    set.writeTo(fd)
    fs.closeSync(fd)
    expect(fs.readFileSync(file, 'utf8').split('\n')).toEqual([...loaded, ...added].sort())
    const fewer = set.without(new Set([loaded[0]!, added[0]!, sha('absent')]))
    expect(fewer.size).toBe(5298)
    expect(fewer.has(loaded[0]!) || fewer.has(added[0]!)).toBe(false)
    expect(fewer.has(added[1]!) && fewer.has(loaded[1]!)).toBe(true)
  })
})

describe('the object index, appended to', () => {
  it('a store adds the names of a few new objects at the end of its index, which the next reader takes whole', async () => {
    const {ObjectStore} = await import('../../src/store/objects.js')
    const dir = path.join(tmpDir(), 'objects')
    const first = new ObjectStore(dir)
    const old = Array.from({length: 40}, (_, i) => first.putBytes(`old ${i}`).hash)
    first.flush()
    const index = path.join(dir, 'index')
    const written = fs.readFileSync(index, 'utf8')
    const ino = fs.statSync(index).ino

    const second = new ObjectStore(dir)
    expect(second.has(old[0]!)).toBe(true) // reads the index
    const fresh = Array.from({length: 3}, (_, i) => second.putBytes(`new ${i}`).hash)
    second.flush()
    // Appended: the same file, the sorted names as they were, then the new ones.
    expect(fs.statSync(index).ino).toBe(ino)
    const text = fs.readFileSync(index, 'utf8')
    expect(text.startsWith(written)).toBe(true)
    expect(text.slice(written.length).split('\n').filter(Boolean).sort()).toEqual([...fresh].sort())

    const third = new ObjectStore(dir)
    expect([...old, ...fresh].every((h) => third.has(h))).toBe(true)
    expect(third.has(sha('never stored'))).toBe(false)
    // Removing objects drops their lines (an index never names what is gone), the rest as it was.
    const inFile = text.split('\n').filter(Boolean)
    third.collectObjects(new Set([fresh[0]!, old[0]!]))
    const after = fs.readFileSync(index, 'utf8').split('\n')
    expect(after).toEqual(inFile.filter((h) => h !== fresh[0] && h !== old[0]))
    expect(new ObjectStore(dir).has(old[0]!)).toBe(false)
  })

  it("a deploy's few lookups, puts and prune never read the index into a set; the file names exactly what is stored", async () => {
    const {ObjectStore} = await import('../../src/store/objects.js')
    const dir = path.join(tmpDir(), 'objects')
    const first = new ObjectStore(dir)
    const old = Array.from({length: 40}, (_, i) => first.putBytes(`old ${i}`).hash)
    first.flush()
    const reads = vi.spyOn(HashSet, 'read')
    try {
      const deploy = new ObjectStore(dir)
      expect(deploy.has(old[3]!)).toBe(true)
      expect(deploy.has(sha('new 0'))).toBe(false)
      const fresh = Array.from({length: 3}, (_, i) => deploy.putBytes(`new ${i}`))
      expect(fresh.map((p) => p.added)).toEqual([5, 5, 5])
      expect(deploy.putBytes('new 1').added).toBe(0) // stored just now: known without the index
      deploy.flush()
      deploy.collectObjects(new Set([old[0]!, old[39]!, fresh[1]!.hash, sha('never stored')]))
      deploy.flush()
      expect(reads).not.toHaveBeenCalled()
      const names = fs.readFileSync(path.join(dir, 'index'), 'utf8').split('\n')
      const stored = fs
        .readdirSync(dir)
        .filter((d) => d.length === 2)
        .flatMap((d) => fs.readdirSync(path.join(dir, d)))
      expect([...names].sort()).toEqual([...stored].sort())
      expect(names).toHaveLength(40 - 2 + 3 - 1)
      // Stored and removed before any flush: never named.
      const late = deploy.putBytes('late').hash
      deploy.collectObjects(new Set([late]))
      deploy.flush()
      expect(fs.readFileSync(path.join(dir, 'index'), 'utf8').split('\n')).not.toContain(late)
      expect(reads).not.toHaveBeenCalled()
    } finally {
      reads.mockRestore()
    }
  })

  it('names out of order past a bound: the next prune reads the index and writes it whole, sorted', async () => {
    const {tailWithin} = await import('../../src/store/objects.js')
    const sorted = Array.from({length: 200}, (_, i) => sha(`s ${i}`)).sort()
    const tail = Array.from({length: 50}, (_, i) => sha(`t ${i}`))
    expect(tailWithin(Buffer.from(sorted.join('\n')), 20)).toBe(true)
    expect(tailWithin(Buffer.from([...sorted, ...tail.slice(0, 10)].join('\n')), 20)).toBe(true)
    expect(tailWithin(Buffer.from([...sorted, ...tail].join('\n')), 20)).toBe(false)
    expect(tailWithin(Buffer.from(tail.join('\n')), 100)).toBe(true) // fewer lines than the bound
  })

  it('parse keeps a sorted file as it is and takes the names after the first one out of order as added', () => {
    const sorted = Array.from({length: 20}, (_, i) => sha(`s ${i}`)).sort()
    const tail = [sha('t 1'), sha('t 2'), sorted[3]!]
    const set = HashSet.parse(`${sorted.join('\n')}\n${tail.join('\n')}`)
    expect(set.size).toBe(22)
    expect([...sorted, ...tail].every((h) => set.has(h))).toBe(true)
  })

  it('read takes a file as parse takes its text, lines across its 1 MiB reads included', () => {
    // 20k sorted names (1.3 MB: the reads end mid-line), a junk line, then names out of order.
    const sorted = Array.from({length: 20_000}, (_, i) => sha(`r ${i}`)).sort()
    const tail = [sha('u 1'), sorted[5]!, 'not a name', sha('u 2')]
    const dir = tmpDir()
    for (const [name, text] of [
      ['index', `${sorted.slice(0, 9000).join('\n')}\nJUNK\n${sorted.slice(9000).join('\n')}\n${tail.join('\n')}`],
      ['no-newline-at-end', sorted.join('\n')],
      ['empty', ''],
    ] as const) {
      const file = path.join(dir, name)
      fs.writeFileSync(file, text)
      const read = HashSet.read(file)
      const parsed = HashSet.parse(text)
      const written = (set: HashSet) => {
        const out = path.join(dir, `${name}.out`)
        const fd = fs.openSync(out, 'w')
        set.writeTo(fd)
        fs.closeSync(fd)
        return fs.readFileSync(out, 'utf8')
      }
      expect([read.size, read.appendable, written(read)]).toEqual([parsed.size, parsed.appendable, written(parsed)])
    }
    expect(HashSet.read(path.join(dir, 'index')).size).toBe(20_002)
  })
})
