import {decodeName, encodeName} from '../file-names.js'

/**
 * A set of paths, each numbered by a slot (in the order they were added), held as their bytes in
 * one buffer with an open-addressing hash index: no JS string, Map entry or object per path. Issue
 * 10 (memory per file): a 200k-file deploy held its two walks and two hash caches as ~1M strings
 * and Map entries, ~270 B per path; here a path costs its bytes and ~20 B. A path is found by its
 * string (hashed over its bytes as fsPath gives them: for ASCII, its char codes) or by bytes (a
 * walk's or a cache file's, never decoded); its string is made again when asked for.
 */
export class PathTable {
  private bytes: Buffer
  private used = 0
  private starts: Uint32Array
  private ends: Uint32Array
  private hashes: Int32Array
  /** Per slot: DEAD (removed; a slot is never reused, so the others keep their order), WIDE (a byte ≥ 0x80). */
  private flags: Uint8Array
  /** slot + 1 per index position; 0 empty, -1 a removed path's place (probing goes on past it). */
  private index: Int32Array
  private filled = 0
  /** Slots made so far, removed ones included: live slots are below this. */
  count = 0
  /** Paths held. */
  size = 0

  constructor(capacity = 64, byteCapacity = capacity * 32) {
    this.bytes = Buffer.allocUnsafe(Math.max(byteCapacity, 256))
    this.starts = new Uint32Array(capacity)
    this.ends = new Uint32Array(capacity)
    this.hashes = new Int32Array(capacity)
    this.flags = new Uint8Array(capacity)
    this.index = new Int32Array(indexSize(capacity))
  }

  /** The slot of `rel`, or -1. */
  slotOf(rel: string): number {
    const h = rel === lastName ? lastHash : hashAscii(rel)
    if (h === NOT_ASCII) {
      const b = encodeName(rel)
      return this.find(b, 0, b.length, hashBytes(b, 0, b.length))
    }
    const {index, hashes, starts, ends, bytes} = this
    const mask = index.length - 1
    const n = rel.length
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = index[i]!
      if (v === 0) return -1
      if (v < 0) continue
      const s = v - 1
      if (hashes[s] !== h || ends[s]! - starts[s]! !== n) continue
      const at = starts[s]!
      let k = 0
      while (k < n && bytes[at + k] === rel.charCodeAt(k)) k++
      if (k === n) return s
    }
  }

  /** The slot of the path whose bytes are `buf[start…end]`, or -1. */
  slotOfBytes(buf: Uint8Array, start: number, end: number): number {
    return this.find(buf, start, end, hashBytes(buf, start, end))
  }

  /** The slot of the path `other` holds in `otherSlot` (its bytes and hash as they are: no string), or -1. */
  slotOfSlot(other: PathTable, otherSlot: number): number {
    return this.find(other.bytes, other.starts[otherSlot]!, other.ends[otherSlot]!, other.hashes[otherSlot]!)
  }

  /** The slot of `rel`, a new one (last in order) when it has none. */
  add(rel: string): number {
    const h = rel === lastName ? lastHash : hashAscii(rel)
    if (h === NOT_ASCII) {
      const b = encodeName(rel)
      return this.addBytes(b, 0, b.length)
    }
    const s = this.slotOf(rel)
    if (s >= 0) return s
    this.room(rel.length)
    const start = this.used
    this.used += this.bytes.write(rel, start, 'latin1')
    return this.insert(start, h, 0)
  }

  /** add, for the path whose bytes are `buf[start…end]`. */
  addBytes(buf: Uint8Array, start: number, end: number): number {
    // Copied in place and hashed in one pass; the copy is kept only if the path is new.
    const n = end - start
    this.room(n)
    const {bytes} = this
    const at = this.used
    let h = 0
    let wide = 0
    for (let i = 0; i < n; i++) {
      const c = buf[start + i]!
      bytes[at + i] = c
      wide |= c
      h = (h * 31 + c) | 0
    }
    h = fmix(h)
    const s = this.find(bytes, at, at + n, h)
    if (s >= 0) return s
    this.used += n
    return this.insert(at, h, wide & 0x80 ? WIDE : 0)
  }

  /** Drops the path in `slot` (its slot is not reused). */
  remove(slot: number): void {
    if (!this.isLive(slot)) return
    const mask = this.index.length - 1
    for (let i = this.hashes[slot]! & mask; ; i = (i + 1) & mask) {
      const v = this.index[i]!
      if (v === 0) return
      if (v === slot + 1) {
        this.index[i] = -1
        break
      }
    }
    this.flags[slot]! |= DEAD
    this.size--
  }

  /** Bytes of the paths added (removed ones included). */
  get bytesUsed(): number {
    return this.used
  }

  isLive(slot: number): boolean {
    return slot >= 0 && slot < this.count && (this.flags[slot]! & DEAD) === 0
  }

  /**
   * The path in `slot` as hotctl's string (decodeName of its bytes). Remembered with its hash: a
   * walk's path is mostly looked up next in another table (the other walk, a hash cache).
   */
  name(slot: number): string {
    const start = this.starts[slot]!
    const end = this.ends[slot]!
    const bytes = this.bytes as Buffer & {latin1Slice(start: number, end: number): string}
    if (!(this.flags[slot]! & WIDE)) {
      lastName = bytes.latin1Slice(start, end) // ASCII: its bytes are its chars
      lastHash = this.hashes[slot]!
      return lastName
    }
    return decodeName(this.bytes.subarray(start, end))
  }

  // Where the path in `slot` is held, for reading it in place (valid until the next add): its
  // bytes are buffer[startOf…endOf]; isWide says one is ≥ 0x80 (else they are its chars).
  get buffer(): Buffer {
    return this.bytes
  }

  startOf(slot: number): number {
    return this.starts[slot]!
  }

  endOf(slot: number): number {
    return this.ends[slot]!
  }

  isWide(slot: number): boolean {
    return (this.flags[slot]! & WIDE) !== 0
  }

  /** The bytes of the path in `slot` (a view: valid until the next add). */
  nameBytes(slot: number): Buffer {
    return this.bytes.subarray(this.starts[slot], this.ends[slot])
  }

  byteLength(slot: number): number {
    return this.ends[slot]! - this.starts[slot]!
  }

  /** Copies the path's bytes into `out` at `at`; returns the byte count. */
  copyName(slot: number, out: Buffer, at: number): number {
    return this.bytes.copy(out, at, this.starts[slot], this.ends[slot])
  }

  /**
   * The table's arrays as they are (views, not copies: valid until the next add), to be persisted
   * and taken back by `fromImage` without one path looked at (issue 10: a deploy reads two records
   * of 20k paths; re-adding each row cost ~35 ms and its garbage).
   */
  image(): PathTableImage {
    const n = this.count
    return {
      count: n,
      size: this.size,
      filled: this.filled,
      bytes: this.bytes.subarray(0, this.used),
      starts: this.starts.subarray(0, n),
      ends: this.ends.subarray(0, n),
      hashes: this.hashes.subarray(0, n),
      flags: this.flags.subarray(0, n),
      index: this.index,
    }
  }

  /** The table `image` gave (its arrays are used as they are); undefined when they do not fit together. */
  static fromImage(im: PathTableImage): PathTable | undefined {
    const n = im.count
    const {index} = im
    if (
      im.starts.length !== n ||
      im.ends.length !== n ||
      im.hashes.length !== n ||
      im.flags.length !== n ||
      im.size > n ||
      im.filled > index.length ||
      index.length < 16 ||
      (index.length & (index.length - 1)) !== 0 ||
      (n > 0 && im.ends[n - 1]! > im.bytes.length)
    )
      return undefined
    // A damaged image must not make a lookup loop or read past the bytes: every path within them,
    // every index entry a slot, and the index at most half full (probing always meets an empty place).
    for (let s = 0; s < n; s++) if (im.starts[s]! > im.ends[s]! || im.ends[s]! > im.bytes.length) return undefined
    let used = 0
    for (let i = 0; i < index.length; i++) {
      const v = index[i]!
      if (v !== 0) used++
      if (v > n || v < -1) return undefined
    }
    // `filled` (non-empty places) decides when inserts rehash: it must be the count, or the index could fill up.
    if (used * 2 > index.length || used !== im.filled) return undefined
    const t = Object.create(PathTable.prototype) as PathTable
    Object.assign(t, {
      bytes: im.bytes,
      used: im.bytes.length,
      starts: im.starts,
      ends: im.ends,
      hashes: im.hashes,
      flags: im.flags,
      index,
      filled: im.filled,
      count: n,
      size: im.size,
    })
    return t
  }

  clone(): PathTable {
    const t = Object.create(PathTable.prototype) as PathTable
    Object.assign(t, this)
    t.bytes = Buffer.from(this.bytes.subarray(0, this.used))
    t.starts = this.starts.slice(0, this.count)
    t.ends = this.ends.slice(0, this.count)
    t.hashes = this.hashes.slice(0, this.count)
    t.flags = this.flags.slice(0, this.count)
    t.index = this.index.slice()
    return t
  }

  private find(buf: Uint8Array, start: number, end: number, h: number): number {
    const {index, hashes, starts, ends, bytes} = this
    const mask = index.length - 1
    const n = end - start
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = index[i]!
      if (v === 0) return -1
      if (v < 0) continue
      const s = v - 1
      if (hashes[s] !== h || ends[s]! - starts[s]! !== n) continue
      const at = starts[s]!
      let k = 0
      while (k < n && bytes[at + k] === buf[start + k]) k++
      if (k === n) return s
    }
  }

  private insert(start: number, h: number, flags: number): number {
    const slot = this.count++
    if (slot >= this.starts.length) this.grow(slot + 1)
    this.starts[slot] = start
    this.ends[slot] = this.used
    this.hashes[slot] = h
    this.flags[slot] = flags
    this.size++
    if ((this.filled + 1) * 2 > this.index.length) this.rehash()
    const mask = this.index.length - 1
    let i = h & mask
    while (this.index[i]! > 0) i = (i + 1) & mask
    if (this.index[i] === 0) this.filled++
    this.index[i] = slot + 1
    return slot
  }

  /** Room for `n` slots in all and `bytes` more path bytes, made at once (no copy per growth step). */
  reserve(n: number, bytes: number): void {
    if (n > this.starts.length) this.grow(n)
    this.room(bytes)
    if (indexSize(n + 1) > this.index.length) this.rehash(indexSize(n + 1))
  }

  private room(n: number): void {
    if (this.used + n <= this.bytes.length) return
    const next = Buffer.allocUnsafe(Math.max(this.used + n, Math.ceil(this.bytes.length * 1.5)))
    this.bytes.copy(next, 0, 0, this.used)
    this.bytes = next
  }

  private grow(n: number): void {
    const cap = Math.max(n, Math.ceil(this.starts.length * 1.5), 64)
    const widen = <T extends Uint32Array | Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap)
      b.set(a)
      return b
    }
    this.starts = widen(this.starts, (k) => new Uint32Array(k))
    this.ends = widen(this.ends, (k) => new Uint32Array(k))
    this.hashes = widen(this.hashes, (k) => new Int32Array(k))
    this.flags = widen(this.flags, (k) => new Uint8Array(k))
  }

  /** A bigger index (room for twice the live paths), without the removed paths' places. */
  private rehash(size = indexSize(this.size * 2)): void {
    const index = new Int32Array(size)
    const mask = index.length - 1
    for (let s = 0; s < this.count; s++) {
      if (this.flags[s]! & DEAD) continue
      let i = this.hashes[s]! & mask
      while (index[i] !== 0) i = (i + 1) & mask
      index[i] = s + 1
    }
    this.index = index
    this.filled = this.size
  }
}

/** A PathTable's arrays (PathTable.image), as persisted by the hash cache. */
export interface PathTableImage {
  count: number
  size: number
  filled: number
  bytes: Buffer
  starts: Uint32Array
  ends: Uint32Array
  hashes: Int32Array
  flags: Uint8Array
  index: Int32Array
}

const DEAD = 1
const WIDE = 2
/** The string name() made last and its hash (ASCII paths only): the next lookup of it is not hashed again. */
let lastName: string | undefined
let lastHash = 0

/** A power of two at least twice `n` (the index stays at most half full). */
function indexSize(n: number): number {
  let size = 16
  while (size < n * 2) size *= 2
  return size
}

const NOT_ASCII = 0x7fffffff + 1 // not an int32: no hash equals it

/**
 * The string's hash when all its chars are ASCII (then they are its bytes), else NOT_ASCII:
 * h·31 + c per char, then mixed (arithmetic that costs little before the JIT has compiled it:
 * a walk hashes every path once, mostly in its first milliseconds).
 */
function hashAscii(s: string): number {
  let h = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x80) return NOT_ASCII
    h = (h * 31 + c) | 0
  }
  return fmix(h)
}

/** hashAscii over bytes. */
function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0
  for (let i = start; i < end; i++) h = (h * 31 + b[i]!) | 0
  return fmix(h)
}

/** Spreads the bits (murmur3's finalizer): the index takes the low ones. */
export function fmix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) | 0
}
