import fs from 'node:fs'
import path from 'node:path'
import {hashFile} from './hash.js'
import {isHash} from './objects.js'
import {PathTable, type PathTableImage} from './path-table.js'
import {TreeEntries} from './tree-entries.js'
import type {SizeHint, Tree, TreeEntry} from './walk.js'

/** The stat fields a cached hash is validated by. */
export type Stat = Pick<TreeEntry, 'size' | 'mtimeMs' | 'ctimeMs' | 'ino'>

/** Numbers per slot in `stats`: size, mtimeMs, ctimeMs, ino. */
const STATS = 4
/** Bytes per slot in `hashes`: a sha256. */
const HASH = 32
/** The rows file's first bytes; then per row: u32 LE name length, the name's bytes, 4 × f64 LE stat, the hash. */
const MAGIC = Buffer.from('hotctl hashes 1\n')
const ROW = 4 + STATS * 8 + HASH
/**
 * The image file's first bytes (written since issue 10's loading work): then a header (HEAD
 * u32s, the first BYTE_ORDER as this machine writes it), the arrays as they are held (stats,
 * hashes, then the path table's), each taken back as a view of the file's bytes; then rows (as
 * above) appended by later saves.
 */
const IMAGE_MAGIC = Buffer.from('hotctl hashes 2\n')
const HEAD = 8
const BYTE_ORDER = 0x01020304

/** Character codes of the lowercase hex digits. */
const HEX = Array.from('0123456789abcdef', (c) => c.charCodeAt(0))

/** Writes `buf[0…n]` to `fd` (writeSync may write less than asked); returns n. */
function writeAll(fd: number, buf: Buffer, n: number): number {
  for (let at = 0; at < n;) at += fs.writeSync(fd, buf, at, n - at)
  return n
}

/** `x.json` → `x.bin` (any other name is used as it is). */
const binaryName = (file: string) => (file.endsWith('.json') ? `${file.slice(0, -'.json'.length)}.bin` : file)

/**
 * Content hashes of a tree's files, remembered by stat (size, mtime, ctime, inode): a file whose
 * stat is unchanged is not read again. ctime catches in-place edits that reset mtime. Persisted as
 * one binary file in the state dir (`<name>.bin`, the path's bytes, stat and hash per row: about
 * half the time of the JSON rows to read and to write at 20k files, 2/3 of the size); the JSON file earlier
 * versions wrote (`<name>.json`) is read when there is no binary one yet. Losing it only costs
 * re-reading. Held compactly (issue 10: memory per file): path → slot in a PathTable (the
 * paths' bytes, never a string each), the slot's stat in one Float64Array and its hash as 32
 * bytes in one Buffer.
 */
export class HashCache {
  private slots = new PathTable()
  private stats: Float64Array<ArrayBufferLike> = new Float64Array(0)
  private hashes: Buffer = Buffer.alloc(0)
  private dirty = false
  /** The file as this process read or last wrote it: its size and rows (a path may have several: the last counts). */
  private onDisk: {bytes: number; rows: number} | undefined
  /** Slots recorded since: a save appends their rows, unless a path was forgotten (the file is rewritten). */
  private recorded: number[] = []
  private rewrite = false
  hashed = 0

  private constructor(private readonly file: string | undefined) {}

  /** The cache persisted as `file` (its `.json` name is kept for callers: the binary file is `.bin`). */
  static open(file?: string): HashCache {
    const cache = new HashCache(file && binaryName(file))
    if (!file) return cache
    try {
      const buf = fs.readFileSync(cache.file!)
      if (!cache.loadImage(buf) && !cache.loadBinary(buf)) cache.clear()
      return cache
    } catch {
      cache.clear()
    }
    if (file !== cache.file) {
      try {
        cache.loadJson(JSON.parse(fs.readFileSync(file, 'utf8')) as unknown)
        cache.dirty = cache.slots.size > 0 // written as .bin at the next save
      } catch {
        cache.clear()
      }
    }
    return cache
  }

  /** The recorded hash of `rel` if its stat is still the one recorded (nothing touched it since), else undefined. */
  peek(rel: string, entry: Stat): string | undefined {
    const slot = this.validSlot(rel, entry)
    return slot < 0 ? undefined : this.hashes.toString('hex', slot * HASH, (slot + 1) * HASH)
  }

  /**
   * Where the hash of `rel` is held if its stat is still the one recorded, else -1: for comparing
   * hashes with `sameHash` without making a hex string of each (planning a fresh clone compares 20k).
   */
  validSlot(rel: string, entry: Stat): number {
    const slot = this.slots.slotOf(rel)
    if (slot < 0) return -1
    const s = slot * STATS
    return this.stats[s] === entry.size &&
      this.stats[s + 1] === entry.mtimeMs &&
      this.stats[s + 2] === entry.ctimeMs &&
      this.stats[s + 3] === entry.ino
      ? slot
      : -1
  }

  /** validSlot for the path in `slot` of a local walk, with its stat there: no path or entry made. */
  validSlotAt(entries: TreeEntries, slot: number): number {
    const c = this.slots.slotOfSlot(entries.pathTable, slot)
    if (c < 0) return -1
    const s = c * STATS
    return this.stats[s] === entries.sizeAt(slot) &&
      this.stats[s + 1] === entries.mtimeAt(slot) &&
      this.stats[s + 2] === entries.ctimeAt(slot) &&
      this.stats[s + 3] === entries.inoAt(slot)
      ? c
      : -1
  }

  /** knows, for the path in `slot` of a local walk. */
  knowsAt(entries: TreeEntries, slot: number): boolean {
    return this.slots.slotOfSlot(entries.pathTable, slot) >= 0
  }

  /** Is the hash in `slot` (from validSlot) the sha256 `hex` (lowercase)? No string made per call. */
  hashIs(slot: number, hex: string): boolean {
    if (hex.length !== HASH * 2) return false
    const at = slot * HASH
    for (let i = 0; i < HASH; i++) {
      const b = this.hashes[at + i]!
      if (hex.charCodeAt(2 * i) !== HEX[b >> 4] || hex.charCodeAt(2 * i + 1) !== HEX[b & 15]) return false
    }
    return true
  }

  /** Is the hash in `slot` (from validSlot) the one in `other`'s `otherSlot`? */
  sameHash(slot: number, other: HashCache, otherSlot: number): boolean {
    return (
      this.hashes.compare(other.hashes, otherSlot * HASH, (otherSlot + 1) * HASH, slot * HASH, (slot + 1) * HASH) === 0
    )
  }

  /** What a walk of the tree this cache was last saved for should expect: its rows and their paths' bytes. */
  sizeHint(): SizeHint {
    return {entries: this.slots.size, bytes: this.slots.bytesUsed}
  }

  /** Rows held: the number of files last seen, give or take. */
  get size(): number {
    return this.slots.size
  }

  /** Is there a record of `rel` at all (valid or not)? */
  knows(rel: string): boolean {
    return this.slots.slotOf(rel) >= 0
  }

  /** Records `hash` as the content of `rel` with stat `entry` (read by the caller, e.g. while copying it). */
  record(rel: string, entry: Stat, hash: string): void {
    const slot = this.set(rel, entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino)
    this.hashes.write(hash, slot * HASH, HASH, 'hex')
    this.dirty = true
    this.recorded.push(slot)
  }

  /** Records the raw sha256 at `digests[at…at+32]` as the content of `rel` with stat `entry`; returns its slot. */
  recordDigest(rel: string, entry: Stat, digests: Buffer, at: number): number {
    const slot = this.set(rel, entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino)
    digests.copy(this.hashes, slot * HASH, at, at + HASH)
    this.dirty = true
    this.recorded.push(slot)
    return slot
  }

  /** Hash of the file `rel` under `root`, read from disk only when its stat changed. */
  hash(root: string, rel: string, entry: Stat): string {
    const known = this.peek(rel, entry)
    if (known !== undefined) return known
    const hash = hashFile(root.endsWith('/') ? root + rel : `${root}/${rel}`, entry.size)
    this.hashed++
    this.record(rel, entry, hash)
    return hash
  }

  /** Drops rows for paths no longer in the tree. */
  forget(tree: Tree): void {
    const {slots} = this
    const {entries} = tree
    for (let slot = 0; slot < slots.count; slot++) {
      if (!slots.isLive(slot)) continue
      const bytes = slots.nameBytes(slot)
      const has =
        entries instanceof TreeEntries ? entries.hasBytes(bytes, 0, bytes.length) : entries.has(slots.name(slot))
      if (!has) {
        slots.remove(slot)
        this.dirty = true
        this.rewrite = true
      }
    }
  }

  /** Writes the file (atomically) if anything changed; with a tree, first drops rows no longer in it. */
  save(tree?: Tree): void {
    if (tree) this.forget(tree)
    if (!this.file || !this.dirty) return
    if (this.append()) return
    // Rows of forgotten paths stay in the arrays until they are a good part of them.
    if (this.slots.count - this.slots.size > (this.slots.size >> 3) + 64) this.compact()
    fs.mkdirSync(path.dirname(this.file), {recursive: true})
    const tmp = `${this.file}.${process.pid}.tmp`
    const fd = fs.openSync(tmp, 'w')
    let bytes = 0
    try {
      for (const part of this.imageParts()) bytes += writeAll(fd, part, part.length)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, this.file)
    this.onDisk = {bytes, rows: this.slots.count}
    this.recorded = []
    this.rewrite = false
    if (this.file.endsWith('.bin')) fs.rmSync(`${this.file.slice(0, -'.bin'.length)}.json`, {force: true}) // the JSON it replaces
    this.dirty = false
  }

  /**
   * A deploy records a few rows in a file of thousands: they are appended to the file as this
   * process last saw it (a later row of a path wins when read). The whole file is written instead
   * when a path was forgotten, when the file changed meanwhile, or when the rows repeated would
   * make it a quarter bigger than it needs to be.
   */
  private append(): boolean {
    const disk = this.onDisk
    if (!disk || this.rewrite || (disk.rows + this.recorded.length) * 4 > this.slots.size * 5) return false
    const rows: Buffer[] = []
    for (const slot of this.recorded) {
      if (!this.slots.isLive(slot)) return false
      const len = this.slots.byteLength(slot)
      const row = Buffer.allocUnsafe(ROW + len)
      let at = row.writeUInt32LE(len, 0)
      at += this.slots.copyName(slot, row, at)
      for (let k = 0; k < STATS; k++) at = row.writeDoubleLE(this.stats[slot * STATS + k]!, at)
      this.hashes.copy(row, at, slot * HASH, (slot + 1) * HASH)
      rows.push(row)
    }
    const out = Buffer.concat(rows)
    let fd: number
    try {
      fd = fs.openSync(this.file!, 'a')
    } catch {
      return false
    }
    try {
      if (fs.fstatSync(fd).size !== disk.bytes) return false
      fs.writeSync(fd, out)
    } finally {
      fs.closeSync(fd)
    }
    this.onDisk = {bytes: disk.bytes + out.length, rows: disk.rows + rows.length}
    this.recorded = []
    this.dirty = false
    return true
  }

  /** The image file's parts, in order: its header, then each array's bytes (views, no copy). */
  private imageParts(): Buffer[] {
    const im = this.slots.image()
    const n = im.count
    const head = Buffer.alloc(IMAGE_MAGIC.length + HEAD * 4)
    IMAGE_MAGIC.copy(head)
    const fields = [BYTE_ORDER, n, im.size, im.filled, im.index.length, im.bytes.length, 0, 0]
    new Uint32Array(head.buffer, head.byteOffset + IMAGE_MAGIC.length, HEAD).set(fields)
    const view = (a: ArrayBufferView, bytes: number) => Buffer.from(a.buffer, a.byteOffset, bytes)
    return [
      head,
      view(this.stats, n * STATS * 8),
      view(this.hashes, n * HASH),
      view(im.starts, n * 4),
      view(im.ends, n * 4),
      view(im.hashes, n * 4),
      view(im.index, im.index.length * 4),
      view(im.flags, n),
      im.bytes,
    ]
  }

  /**
   * The image file: its arrays become this cache's as views of `buf` (no row is looked at), then
   * rows appended since are read as loadBinary reads them. False when it is not one written on a
   * machine of this byte order, or its parts do not fit together (the cache then starts empty).
   */
  private loadImage(file: Buffer): boolean {
    const start = IMAGE_MAGIC.length
    const headEnd = start + HEAD * 4
    if (file.length < headEnd || !file.subarray(0, start).equals(IMAGE_MAGIC)) return false
    // The stats are a Float64Array view: its bytes must start at a multiple of 8 (a read file's do).
    const buf = file.byteOffset % 8 === 0 ? file : Buffer.from(file)
    const ab = buf.buffer
    const base = buf.byteOffset
    const head = new Uint32Array(ab, base + start, HEAD)
    const [order, n, size, filled, indexLen, used] = head as unknown as number[]
    if (order !== BYTE_ORDER) return false
    const end = headEnd + n * (STATS * 8 + HASH + 13) + indexLen! * 4 + used!
    if (end > buf.length) return false
    let at = base + headEnd
    const take = <T>(make: (at: number) => T, bytes: number): T => {
      const v = make(at)
      at += bytes
      return v
    }
    const stats = take((p) => new Float64Array(ab, p, n! * STATS), n! * STATS * 8)
    const hashes = take((p) => Buffer.from(ab, p, n! * HASH), n! * HASH)
    const im: PathTableImage = {
      count: n!,
      size: size!,
      filled: filled!,
      starts: take((p) => new Uint32Array(ab, p, n!), n! * 4),
      ends: take((p) => new Uint32Array(ab, p, n!), n! * 4),
      hashes: take((p) => new Int32Array(ab, p, n!), n! * 4),
      index: take((p) => new Int32Array(ab, p, indexLen!), indexLen! * 4),
      flags: take((p) => new Uint8Array(ab, p, n!), n!),
      bytes: take((p) => Buffer.from(ab, p, used!), used!),
    }
    const slots = PathTable.fromImage(im)
    if (!slots) return false
    this.slots = slots
    this.stats = stats
    this.hashes = hashes
    const rows = this.loadRows(buf, end)
    // Appends go after the last whole row (a cut one is left behind: rewritten instead).
    this.onDisk = rows.at === buf.length ? {bytes: rows.at, rows: n! + rows.rows} : undefined
    return true
  }

  /** The rows from `at` on (to the last whole one), added to the table: where they end and how many. */
  private loadRows(buf: Buffer, at: number): {at: number; rows: number} {
    let rows = 0
    while (at + 4 <= buf.length) {
      const len = buf.readUInt32LE(at)
      const end = at + ROW + len
      if (end > buf.length) break
      // The path's bytes go into the table as they are: no string is made.
      const slot = this.slots.addBytes(buf, at + 4, at + 4 + len)
      this.reserve(slot + 1)
      at += 4 + len
      for (let k = 0; k < STATS; k++, at += 8) this.stats[slot * STATS + k] = buf.readDoubleLE(at)
      at += buf.copy(this.hashes, slot * HASH, at, at + HASH)
      rows++
    }
    return {at, rows}
  }

  /** The live rows into new arrays (forgotten paths' slots dropped). */
  private compact(): void {
    const old = {slots: this.slots, stats: this.stats, hashes: this.hashes}
    this.slots = new PathTable(old.slots.size, old.slots.bytesUsed)
    this.stats = new Float64Array(0)
    this.hashes = Buffer.alloc(0)
    this.reserve(old.slots.size)
    for (let s = 0; s < old.slots.count; s++) {
      if (!old.slots.isLive(s)) continue
      const name = old.slots.nameBytes(s)
      const slot = this.slots.addBytes(name, 0, name.length)
      this.stats.set(old.stats.subarray(s * STATS, (s + 1) * STATS), slot * STATS)
      old.hashes.copy(this.hashes, slot * HASH, s * HASH, (s + 1) * HASH)
    }
  }

  /** Rows of the binary file; false when it is not one (the cache then starts empty). */
  private loadBinary(buf: Buffer): boolean {
    if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return false
    const at = MAGIC.length
    // Room for the rows at once (paths of ~24 bytes guessed): no copies while the table grows.
    const guess = Math.ceil((buf.length - at) / (ROW + 24))
    this.slots = new PathTable(guess, guess * 32)
    this.reserve(guess)
    // Rows come one after another: a truncated file keeps the rows before the cut.
    this.loadRows(buf, at)
    // The rows file is replaced by an image at the next save (no rows appended to it).
    this.onDisk = undefined
    return true
  }

  /** Rows of the JSON file earlier versions wrote: `[[path, size, mtimeMs, ctimeMs, ino, sha256], …]` (or an object by path). */
  private loadJson(v: unknown): void {
    if (Array.isArray(v)) {
      this.reserve(v.length)
      for (const r of v as unknown[]) if (Array.isArray(r) && typeof r[0] === 'string') this.load(r[0], r, 1)
    } else if (v && typeof v === 'object')
      for (const [rel, r] of Object.entries(v)) if (Array.isArray(r)) this.load(rel, r, 0)
  }

  private clear(): void {
    this.slots = new PathTable()
  }

  /** One persisted JSON row, if it has the shape a row must have. */
  private load(rel: string, r: unknown[], at: number): void {
    const [size, mtimeMs, ctimeMs, ino, hash] = [r[at], r[at + 1], r[at + 2], r[at + 3], r[at + 4]]
    if (
      typeof size === 'number' &&
      typeof mtimeMs === 'number' &&
      typeof ctimeMs === 'number' &&
      typeof ino === 'number' &&
      isHash(hash)
    )
      this.hashes.write(hash, this.set(rel, size, mtimeMs, ctimeMs, ino) * HASH, HASH, 'hex')
  }

  /** The slot of `rel` (a new one if it has none) with this stat; the caller writes its hash. */
  private set(rel: string, size: number, mtimeMs: number, ctimeMs: number, ino: number): number {
    const slot = this.slots.add(rel)
    this.reserve(slot + 1)
    const s = slot * STATS
    this.stats[s] = size
    this.stats[s + 1] = mtimeMs
    this.stats[s + 2] = ctimeMs
    this.stats[s + 3] = ino
    return slot
  }

  /** Room for `more` new rows at once (a first backup records every file): no copy of the arrays per growth step. */
  expect(more: number): void {
    this.reserve(this.slots.count + more)
    const {size, bytesUsed} = this.slots
    this.slots.reserve(this.slots.count + more, more * (size > 0 ? Math.ceil(bytesUsed / size) : 32))
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
