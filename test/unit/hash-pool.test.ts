import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it, vi} from 'vitest'
import {fsPath} from '../../src/file-names.js'
import {HashCache} from '../../src/store/hash-cache.js'
import {hashFileDigest} from '../../src/store/hash.js'
import {hashFiles, pool} from '../../src/store/hash-pool.js'
import {tmpDir} from './helpers.js'

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex')

describe('hashFiles', () => {
  it('hashes enough content on worker threads, each file by its own bytes and name (not UTF-8 too)', async () => {
    const dir = tmpDir()
    const files: string[] = []
    const want: string[] = []
    // 40 files of up to 1.5 MiB: past the threshold, so workers do the reading.
    for (let i = 0; i < 40; i++) {
      const body = crypto.randomBytes(i % 7 === 0 ? 0 : 200_000 + i * 30_000)
      const file = path.join(dir, i % 5 === 0 ? `bad\udcff${i}` : `f${i}`)
      fs.writeFileSync(fsPath(file), body)
      files.push(file)
      want.push(sha(body))
    }
    const sizes = files.map((f) => fs.statSync(fsPath(f)).size)
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(16 * 1024 * 1024)
    const before = pool.workers
    expect((await hashFiles(files, sizes)).toString('hex')).toEqual(want.join(''))
    expect(pool.workers).toBeGreaterThan(before)
  })

  it('a file that cannot be read fails as hashFile does (named in the error)', async () => {
    const dir = tmpDir()
    const files = Array.from({length: 20}, (_, i) => path.join(dir, `f${i}`))
    for (const f of files) fs.writeFileSync(f, crypto.randomBytes(1_000_000))
    const sizes = files.map((f) => fs.statSync(f).size)
    fs.rmSync(files[13]!)
    await expect(hashFiles(files, sizes)).rejects.toThrow(/ENOENT.*f13/)
  })

  it('little content is hashed in this thread', async () => {
    const dir = tmpDir()
    fs.writeFileSync(path.join(dir, 'a'), 'a')
    const before = pool.workers
    expect((await hashFiles([path.join(dir, 'a')], [1])).toString('hex')).toEqual(sha(Buffer.from('a')))
    expect(pool.workers).toBe(before)
  })
})

describe('hashFileDigest', () => {
  it('reads a file of the size the walk saw in one read, and a file grown since to its end', () => {
    const dir = tmpDir()
    const file = path.join(dir, 'f')
    fs.writeFileSync(file, 'hello')
    const reads = vi.spyOn(fs, 'readSync')
    try {
      expect(hashFileDigest(file, 5).toString('hex')).toBe(sha(Buffer.from('hello')))
      expect(reads).toHaveBeenCalledTimes(1) // no second read to find the end
      const big = crypto.randomBytes(3 * 1024 * 1024 + 7) // several reads of the 1 MiB buffer
      fs.writeFileSync(file, big)
      expect(hashFileDigest(file, 5).toString('hex')).toBe(sha(big))
      expect(hashFileDigest(file).toString('hex')).toBe(sha(big))
    } finally {
      reads.mockRestore()
    }
  })
})

describe('HashCache slots', () => {
  it("compares two caches' hashes in place, only while each stat is the recorded one", () => {
    const a = HashCache.open()
    const b = HashCache.open()
    const stat = {size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1}
    const digests = Buffer.concat([crypto.randomBytes(32), crypto.randomBytes(32)])
    a.recordDigest('x', stat, digests, 0)
    a.recordDigest('y', stat, digests, 32)
    b.recordDigest('x', stat, digests, 0)
    b.record('y', stat, sha(Buffer.from('other')))
    expect(a.peek('y', stat)).toBe(digests.toString('hex', 32))
    expect(a.sameHash(a.validSlot('x', stat), b, b.validSlot('x', stat))).toBe(true)
    expect(a.sameHash(a.validSlot('y', stat), b, b.validSlot('y', stat))).toBe(false)
    expect(a.validSlot('x', {...stat, ctimeMs: 2})).toBe(-1) // touched since: its hash no longer holds
    expect(a.validSlot('z', stat)).toBe(-1)
  })

  it('compares a slot with a hex sha256 (a host record row) digit by digit', () => {
    const a = HashCache.open()
    const stat = {size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1}
    const digest = Buffer.from('00ff10a9'.repeat(8), 'hex')
    const slot = a.recordDigest('x', stat, digest, 0)
    const hex = digest.toString('hex')
    expect(a.hashIs(slot, hex)).toBe(true)
    for (const i of [0, 1, 31, 62, 63]) {
      const other = hex.slice(0, i) + (hex[i] === 'a' ? 'b' : 'a') + hex.slice(i + 1)
      expect(a.hashIs(slot, other)).toBe(false)
    }
    expect(a.hashIs(slot, hex.toUpperCase())).toBe(false) // only sha256sum's lowercase is a match
    expect(a.hashIs(slot, hex.slice(0, 62))).toBe(false)
  })
})
