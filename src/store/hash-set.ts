import fs from 'node:fs'

/** Bytes a sha256 takes. */
const HASH = 32
const HEX = /^[0-9a-f]{64}$/
const READ_CHUNK = 1 << 20

/**
 * A set of sha256 names (hex) held as 32 bytes each (issue 10: memory per file): the names loaded
 * in bulk sorted in one Buffer (binary search), plus the ones added since (few, except on a first
 * backup) in an open-addressing table. A Set of 64-character strings costs about 130 B per name;
 * this, 32 B (sorted) or about 40 B (added).
 */
export class HashSet {
  /**
   * How many of `added` the file it was read from (or last written to) holds: the rest can be
   * appended to it. Undefined when the set did not come from that file (a listing, `without`).
   */
  private persisted: number | undefined

  private constructor(
    private readonly sorted: Buffer,
    private readonly count: number,
    private readonly added = new AddedNames(),
  ) {}

  /** What Lines read: the sorted run, and the names from the first one out of order on. */
  static fromLines(sorted: Buffer, count: number, tail: string[]): HashSet {
    const set = new HashSet(sorted, count)
    for (const name of tail) if (HEX.test(name)) set.add(name)
    set.persisted = set.added.size
    return set
  }

  /** From names in any order (what is not a sha256 is left out). */
  static of(names: Iterable<string>): HashSet {
    const all = [...names].filter((n) => HEX.test(n)).sort()
    const buf = Buffer.alloc(all.length * HASH)
    let n = 0
    for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) buf.write(all[i]!, n++ * HASH, 'hex')
    return new HashSet(buf, n)
  }

  /**
   * From lines of names, as `writeTo` writes them (sorted) and `appendTo` adds to them: the
   * sorted part is held as it is, the names from the first one out of order on go to the table of
   * added names.
   */
  static parse(text: string): HashSet {
    const lines = new Lines(Math.ceil(text.length / (HASH * 2 + 1)))
    for (let at = 0; at < text.length;) {
      let end = text.indexOf('\n', at)
      if (end === -1) end = text.length
      lines.add(text.slice(at, end))
      at = end + 1
    }
    return lines.set()
  }

  /**
   * parse of the file `file`, read through a 1 MiB buffer (issue 10, memory: a 200k-object
   * store's index is 13 MB, read whole as a string before).
   */
  static read(file: string): HashSet {
    const fd = fs.openSync(file, 'r')
    try {
      const lines = new Lines(Math.ceil(fs.fstatSync(fd).size / (HASH * 2 + 1)))
      const chunk = Buffer.allocUnsafe(READ_CHUNK) as Buffer & {latin1Slice(start: number, end: number): string}
      let kept = 0
      for (;;) {
        const got = fs.readSync(fd, chunk, kept, chunk.length - kept, null)
        const end = kept + got
        let at = 0
        for (let nl = chunk.indexOf(0x0a, at); nl !== -1 && nl < end; nl = chunk.indexOf(0x0a, at)) {
          lines.add(chunk.latin1Slice(at, nl))
          at = nl + 1
        }
        if (got === 0) {
          if (at < end) lines.add(chunk.latin1Slice(at, end))
          return lines.set()
        }
        kept = end - at
        if (kept === chunk.length) {
          lines.add('') // a line longer than the buffer is no name: skipped like one
          kept = 0
        } else chunk.copy(chunk, 0, at, end)
      }
    } finally {
      fs.closeSync(fd)
    }
  }

  has(hash: string): boolean {
    const want = decode(hash)
    return want !== undefined && (this.added.has(want) || this.indexOf(want) >= 0)
  }

  /** Where the decoded name is in the sorted part, or -1 (compared in JS: a native compare per step cost 5 µs a lookup). */
  private indexOf(want: Buffer): number {
    if (this.count === 0) return -1
    const s = this.sorted
    let lo = 0
    let hi = this.count - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const at = mid * HASH
      let c = 0
      for (let k = 0; k < HASH && c === 0; k++) c = s[at + k]! - want[k]!
      if (c === 0) return mid
      if (c > 0) hi = mid - 1
      else lo = mid + 1
    }
    return -1
  }

  /** The same set without `names` (found by binary search: O(names · log n) plus one copy). */
  without(names: Set<string>): HashSet {
    const drop = [...names].flatMap((h) => {
      const want = decode(h)
      const i = want ? this.indexOf(want) : -1
      return i >= 0 ? [i] : []
    })
    drop.sort((a, b) => a - b)
    const buf = Buffer.alloc((this.count - drop.length) * HASH)
    let from = 0
    let n = 0
    for (const i of [...drop, this.count]) {
      n += this.sorted.copy(buf, n * HASH, from * HASH, i * HASH) / HASH
      from = i + 1
    }
    const added = new AddedNames()
    for (const h of this.added.names()) if (!names.has(h)) added.add(decode(h)!)
    return new HashSet(buf, n, added)
  }

  /** Room for `more` names added at once (a first backup): no copy of the table per growth step. */
  expect(more: number): void {
    this.added.expect(more)
  }

  add(hash: string): void {
    const want = decode(hash)
    if (want && !this.added.has(want) && this.indexOf(want) < 0) this.added.add(want)
  }

  get size(): number {
    return this.count + this.added.size
  }

  /**
   * Names added since the file was read or written can be appended to it (a few per deploy),
   * rather than the whole set rewritten, while they stay a small share of it.
   */
  get appendable(): boolean {
    return this.persisted !== undefined && this.added.size - this.persisted <= Math.max(1024, this.count / 8)
  }

  /** Appends the names added since the file was read or written (`appendable` must be true). */
  appendTo(fd: number): void {
    const names = [...this.added.names(this.persisted)]
    if (names.length > 0) fs.writeSync(fd, `\n${names.join('\n')}`)
    this.persisted = this.added.size
  }

  /** Every name, sorted, one per line, written to `fd` in batches (never one big string). */
  writeTo(fd: number): void {
    // Sorted as bytes (a first backup adds 200k names: sorting their hex strings took ~230 ms).
    const order = this.added.inOrder()
    const extra = (j: number) => this.added.name(order[j]!)
    let batch: string[] = []
    let first = true
    const out = (name: string) => {
      batch.push(name)
      if (batch.length >= 4096) flush()
    }
    const flush = () => {
      if (batch.length === 0) return
      fs.writeSync(fd, (first ? '' : '\n') + batch.join('\n'))
      first = false
      batch = []
    }
    let j = 0
    for (let i = 0; i < this.count; i++) {
      const name = this.sorted.toString('hex', i * HASH, (i + 1) * HASH)
      while (j < order.length && extra(j) < name) out(extra(j++))
      out(name)
    }
    while (j < order.length) out(extra(j++))
    flush()
    this.persisted = this.added.size
  }
}

/** Buckets of `AddedNames.inOrder`: one per value of a name's first two bytes. */
const BUCKETS = 65536

/** The name looked up, decoded into one reused buffer (lookups are synchronous). */
const PROBE = Buffer.alloc(HASH)

/** A sha256 name as its 32 bytes (in PROBE, valid until the next call); undefined when it is not one. */
function decode(hash: string): Buffer | undefined {
  return hash.length === HASH * 2 && PROBE.write(hash, 0, 'hex') === HASH ? PROBE : undefined
}

/**
 * Names added one by one: 32 bytes each in one growing buffer, found through an open-addressing
 * table keyed by their first four bytes (sha256 names are uniform), half full at most.
 */
class AddedNames {
  private rows = Buffer.alloc(0)
  /** Row index + 1 per slot; 0: empty. */
  private table = new Uint32Array(0)
  size = 0

  has(name: Buffer): boolean {
    return this.slotOf(name) < 0
  }

  expect(more: number): void {
    const n = this.size + more
    if (this.rows.length < n * HASH) {
      const rows = Buffer.alloc(n * HASH)
      this.rows.copy(rows)
      this.rows = rows
    }
    while (n * 2 > this.table.length) this.grow()
  }

  /** Adds a name known to be absent (`has` was false). */
  add(name: Buffer): void {
    if ((this.size + 1) * 2 > this.table.length) this.grow()
    if (this.rows.length < (this.size + 1) * HASH) {
      const rows = Buffer.alloc(Math.max(64, Math.ceil(this.size * 1.5)) * HASH)
      this.rows.copy(rows)
      this.rows = rows
    }
    name.copy(this.rows, this.size * HASH, 0, HASH)
    this.size++
    this.table[this.slotOf(name)] = this.size
  }

  *names(from = 0): Generator<string> {
    for (let i = from; i < this.size; i++) yield this.name(i)
  }

  /** Row `i`'s name (hex). */
  name(i: number): string {
    return this.rows.toString('hex', i * HASH, (i + 1) * HASH)
  }

  /**
   * The rows in name order: counted into buckets by their first two bytes (sha256 names are
   * uniform: a few per bucket even at 200k), then each bucket sorted by the rest. O(n).
   */
  inOrder(): Uint32Array {
    const rows = this.rows
    const n = this.size
    const start = new Uint32Array(BUCKETS + 1)
    for (let i = 0; i < n; i++) start[rows.readUInt16BE(i * HASH) + 1]!++
    for (let b = 0; b < BUCKETS; b++) start[b + 1]! += start[b]!
    const next = start.slice(0, BUCKETS)
    const out = new Uint32Array(n)
    for (let i = 0; i < n; i++) out[next[rows.readUInt16BE(i * HASH)]!++] = i
    const before = (x: number, y: number) => {
      for (let k = 2; k < HASH; k++) {
        const d = rows[x * HASH + k]! - rows[y * HASH + k]!
        if (d !== 0) return d < 0
      }
      return false
    }
    for (let b = 0; b < BUCKETS; b++)
      for (let i = start[b]! + 1; i < start[b + 1]!; i++) {
        const r = out[i]!
        let j = i - 1
        for (; j >= start[b]! && before(r, out[j]!); j--) out[j + 1] = out[j]!
        out[j + 1] = r
      }
    return out
  }

  /** The empty slot where `name` belongs, or -1 when it is there already. */
  private slotOf(name: Buffer): number {
    const t = this.table
    if (t.length === 0) return 0
    const mask = t.length - 1
    for (let i = name.readUInt32BE(0) & mask; ; i = (i + 1) & mask) {
      const row = t[i]!
      if (row === 0) return i
      const at = (row - 1) * HASH
      let same = true
      for (let k = 0; k < HASH && same; k++) same = this.rows[at + k] === name[k]
      if (same) return -1
    }
  }

  private grow(): void {
    const old = this.table
    this.table = new Uint32Array(Math.max(1024, old.length * 2))
    const mask = this.table.length - 1
    for (const row of old) {
      if (row === 0) continue
      let i = this.rows.readUInt32BE((row - 1) * HASH) & mask
      while (this.table[i] !== 0) i = (i + 1) & mask
      this.table[i] = row
    }
  }
}

/** HashSet.parse's lines, one at a time: the sorted run held as it is, the rest (from the first name out of order) added. */
class Lines {
  private readonly buf: Buffer
  private n = 0
  private tail: string[] | undefined

  constructor(most: number) {
    this.buf = Buffer.alloc(most * HASH)
  }

  add(line: string): void {
    if (this.tail) {
      this.tail.push(line)
      return
    }
    const {buf, n} = this
    // A line of 64 hex digits writes 32 bytes (Buffer stops at the first non-hex pair); our own
    // index never holds upper case, and a name in it would only never match.
    if (line.length !== HASH * 2 || buf.write(line, n * HASH, 'hex') !== HASH) return
    if (n > 0 && buf.compare(buf, n * HASH, (n + 1) * HASH, (n - 1) * HASH, n * HASH) >= 0) this.tail = [line]
    else this.n++
  }

  set(): HashSet {
    return HashSet.fromLines(this.buf.subarray(0, this.n * HASH), this.n, this.tail ?? [])
  }
}
