import fs from 'node:fs'
import path from 'node:path'
import {hashFile} from './hash.js'
import {isHash} from './objects.js'
import type {Tree, TreeEntry} from './walk.js'

/** The stat fields a cached hash is validated by. */
export type Stat = Pick<TreeEntry, 'size' | 'mtimeMs' | 'ctimeMs' | 'ino'>

/** Numbers per slot in `stats`: size, mtimeMs, ctimeMs, ino. */
const STATS = 4
/** Bytes per slot in `hashes`: a sha256. */
const HASH = 32
/** Rows per write when saving: the file is never built as one string. */
const SAVE_BATCH = 2048

/**
 * Content hashes of a tree's files, remembered by stat (size, mtime, ctime, inode): a file whose
 * stat is unchanged is not read again. ctime catches in-place edits that reset mtime. Persisted as
 * one JSON file in the state dir (`[[path, size, mtimeMs, ctimeMs, ino, sha256], …]`); losing it
 * only costs re-reading. Held compactly (issue 10: memory per file): path → slot in a Map, the
 * slot's stat in one Float64Array and its hash as 32 bytes in one Buffer, instead of an array,
 * boxed numbers and a 64-character string per path.
 */
export class HashCache {
  private readonly slots = new Map<string, number>()
  private stats = new Float64Array(0)
  private hashes = Buffer.alloc(0)
  /** Slots freed by `forget`, reused before the arrays grow. */
  private readonly free: number[] = []
  private used = 0
  private dirty = false
  hashed = 0

  private constructor(private readonly file: string | undefined) {}

  static open(file?: string): HashCache {
    const cache = new HashCache(file)
    if (!file) return cache
    try {
      const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown
      // Only a cache: rows of another shape are dropped and those files are read again (the
      // object form of earlier versions is still read).
      if (Array.isArray(v)) {
        cache.reserve(v.length)
        for (const r of v as unknown[]) if (Array.isArray(r) && typeof r[0] === 'string') cache.load(r[0], r, 1)
      } else if (v && typeof v === 'object')
        for (const [rel, r] of Object.entries(v)) if (Array.isArray(r)) cache.load(rel, r, 0)
    } catch {
      cache.slots.clear()
      cache.free.length = 0
      cache.used = 0
    }
    return cache
  }

  /** The recorded hash of `rel` if its stat is still the one recorded (nothing touched it since), else undefined. */
  peek(rel: string, entry: Stat): string | undefined {
    const slot = this.slots.get(rel)
    if (slot === undefined) return undefined
    const s = slot * STATS
    return this.stats[s] === entry.size &&
      this.stats[s + 1] === entry.mtimeMs &&
      this.stats[s + 2] === entry.ctimeMs &&
      this.stats[s + 3] === entry.ino
      ? this.hashes.toString('hex', slot * HASH, (slot + 1) * HASH)
      : undefined
  }

  /** Is there a record of `rel` at all (valid or not)? */
  knows(rel: string): boolean {
    return this.slots.has(rel)
  }

  /** Records `hash` as the content of `rel` with stat `entry` (read by the caller, e.g. while copying it). */
  record(rel: string, entry: Stat, hash: string): void {
    this.set(rel, entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino, hash)
    this.dirty = true
  }

  /** Hash of the file `rel` under `root`, read from disk only when its stat changed. */
  hash(root: string, rel: string, entry: Stat): string {
    const known = this.peek(rel, entry)
    if (known !== undefined) return known
    const hash = hashFile(root.endsWith('/') ? root + rel : `${root}/${rel}`)
    this.hashed++
    this.record(rel, entry, hash)
    return hash
  }

  /** Drops rows for paths no longer in the tree. */
  forget(tree: Tree): void {
    for (const [rel, slot] of this.slots) {
      if (!tree.entries.has(rel)) {
        this.slots.delete(rel)
        this.free.push(slot)
        this.dirty = true
      }
    }
  }

  /** Writes the file (atomically) if anything changed; with a tree, first drops rows no longer in it. */
  save(tree?: Tree): void {
    if (tree) this.forget(tree)
    if (!this.file || !this.dirty) return
    fs.mkdirSync(path.dirname(this.file), {recursive: true})
    const tmp = `${this.file}.${process.pid}.tmp`
    const fd = fs.openSync(tmp, 'w')
    try {
      let batch: string[] = []
      let first = true
      const flush = () => {
        fs.writeSync(fd, (first ? '[' : ',') + batch.join(','))
        first = false
        batch = []
      }
      for (const [rel, slot] of this.slots) {
        const s = slot * STATS
        const st = this.stats
        const hash = this.hashes.toString('hex', slot * HASH, (slot + 1) * HASH)
        batch.push(`[${JSON.stringify(rel)},${st[s]},${st[s + 1]},${st[s + 2]},${st[s + 3]},"${hash}"]`)
        if (batch.length >= SAVE_BATCH) flush()
      }
      if (batch.length > 0 || first) flush()
      fs.writeSync(fd, ']')
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, this.file)
    this.dirty = false
  }

  /** One persisted row, if it has the shape a row must have. */
  private load(rel: string, r: unknown[], at: number): void {
    const [size, mtimeMs, ctimeMs, ino, hash] = [r[at], r[at + 1], r[at + 2], r[at + 3], r[at + 4]]
    if (
      typeof size === 'number' &&
      typeof mtimeMs === 'number' &&
      typeof ctimeMs === 'number' &&
      typeof ino === 'number' &&
      isHash(hash)
    )
      this.set(rel, size, mtimeMs, ctimeMs, ino, hash)
  }

  private set(rel: string, size: number, mtimeMs: number, ctimeMs: number, ino: number, hash: string): void {
    let slot = this.slots.get(rel)
    if (slot === undefined) {
      slot = this.free.pop() ?? this.used++
      this.reserve(slot + 1)
      this.slots.set(rel, slot)
    }
    const s = slot * STATS
    this.stats[s] = size
    this.stats[s + 1] = mtimeMs
    this.stats[s + 2] = ctimeMs
    this.stats[s + 3] = ino
    this.hashes.write(hash, slot * HASH, HASH, 'hex')
  }

  /** Room for `n` slots (grown by half again, so appends stay amortised O(1)). */
  private reserve(n: number): void {
    const cap = this.stats.length / STATS
    if (n <= cap) return
    const next = Math.max(n, Math.ceil(cap * 1.5), 64)
    const stats = new Float64Array(next * STATS)
    stats.set(this.stats)
    const hashes = Buffer.alloc(next * HASH)
    this.hashes.copy(hashes)
    this.stats = stats
    this.hashes = hashes
  }
}
