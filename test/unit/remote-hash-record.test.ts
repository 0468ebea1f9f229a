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

describe('RemoteHashRecord stored in pieces', () => {
  it('a record past one piece is several gzip members that read back as one; the copy here is the same JSON', async () => {
    const {RecordCache} = await import('../../src/ssh/record-cache.js')
    const fs = await import('node:fs')
    const os = await import('node:os')
    const path = await import('node:path')
    const zlib = await import('node:zlib')
    const n = 5000 // about 600 KiB of JSON: three pieces
    const r = RemoteHashRecord.parse(undefined)
    for (let i = 0; i < n; i++) r.set(`dir/file-${i}`, entry(i, 100 + i), hash('e'))
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-record-cache-'))
    try {
      const cache = new RecordCache('host:22', '/state/cache/target-hashes.json.gz', dir)
      const copy = cache.writer()
      const pieces: Buffer[] = []
      const gz = r.stored(
        (rel) => rel !== 'dir/file-7',
        (piece) => {
          pieces.push(piece)
          copy.add(piece)
        },
      )
      expect(pieces.length).toBeGreaterThan(1)
      let members = 0
      for (
        let i = gz.indexOf(Buffer.from([0x1f, 0x8b, 8]));
        i !== -1;
        i = gz.indexOf(Buffer.from([0x1f, 0x8b, 8]), i + 1)
      )
        members++
      expect(members).toBeGreaterThan(1)
      const json = zlib.gunzipSync(gz).toString('utf8')
      expect(json).toBe(Buffer.concat(pieces).toString('utf8'))
      expect((JSON.parse(json) as unknown[]).length).toBe(n - 1) // `keep` left one out

      const back = RemoteHashRecord.parse(gz)
      expect(back.peek('dir/file-4999', entry(4999, 5099))).toBe(hash('e'))
      expect(back.knows('dir/file-7')).toBe(false)

      expect(cache.read()).toBeUndefined() // nothing in place before commit
      copy.commit(gz)
      copy.abort() // a no-op once committed
      const read = cache.read()
      expect(read?.text).toBe(json)
      expect(read?.sha).toBe((await import('node:crypto')).createHash('sha256').update(gz).digest('hex'))
      expect(fs.readdirSync(dir)).toHaveLength(1) // no temporary file left

      const aborted = new RecordCache('host:22', '/other.json.gz', dir).writer()
      aborted.add(Buffer.from('[]'))
      aborted.abort()
      expect(fs.readdirSync(dir)).toHaveLength(1)
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })
})
