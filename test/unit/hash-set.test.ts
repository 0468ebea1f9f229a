import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
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
