import fs from 'node:fs'

/** Bytes a sha256 takes. */
const HASH = 32
const HEX = /^[0-9a-f]{64}$/

/**
 * A set of sha256 names (hex) held as 32 bytes each (issue 10: memory per file): the names loaded
 * in bulk sorted in one Buffer (binary search), plus a Set of the ones added since (few, except on
 * a first backup). A Set of 64-character strings costs about 130 B per name; this, 32 B.
 */
export class HashSet {
  private constructor(
    private readonly sorted: Buffer,
    private readonly count: number,
    private readonly added = new Set<string>(),
  ) {}

  /** From names in any order (what is not a sha256 is left out). */
  static of(names: Iterable<string>): HashSet {
    const all = [...names].filter((n) => HEX.test(n)).sort()
    const buf = Buffer.alloc(all.length * HASH)
    let n = 0
    for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) buf.write(all[i]!, n++ * HASH, 'hex')
    return new HashSet(buf, n)
  }

  /** From lines of names, as `writeTo` writes them (sorted; any other order is sorted first). */
  static parse(text: string): HashSet {
    const lines = Math.ceil(text.length / (HASH * 2 + 1))
    const buf = Buffer.alloc(lines * HASH)
    let n = 0
    let ordered = true
    for (let at = 0; at < text.length;) {
      let end = text.indexOf('\n', at)
      if (end === -1) end = text.length
      // A line of 64 hex digits writes 32 bytes (Buffer stops at the first non-hex pair); our own
      // index never holds upper case, and a name in it would only never match.
      if (end - at === HASH * 2 && buf.write(text.slice(at, end), n * HASH, 'hex') === HASH) {
        if (n > 0 && buf.compare(buf, n * HASH, (n + 1) * HASH, (n - 1) * HASH, n * HASH) >= 0) ordered = false
        n++
      }
      at = end + 1
    }
    if (!ordered) return HashSet.of(text.split('\n'))
    return new HashSet(buf, n)
  }

  has(hash: string): boolean {
    return this.added.has(hash) || this.indexOf(hash) >= 0
  }

  /** Where `hash` is in the sorted part, or -1 (compared in JS: a native compare per step cost 5 µs a lookup). */
  private indexOf(hash: string): number {
    if (this.count === 0 || hash.length !== HASH * 2) return -1
    const want = Buffer.from(hash, 'hex')
    if (want.length !== HASH) return -1 // not hex
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
    const drop = [...names].map((h) => this.indexOf(h)).filter((i) => i >= 0)
    drop.sort((a, b) => a - b)
    const buf = Buffer.alloc((this.count - drop.length) * HASH)
    let from = 0
    let n = 0
    for (const i of [...drop, this.count]) {
      n += this.sorted.copy(buf, n * HASH, from * HASH, i * HASH) / HASH
      from = i + 1
    }
    return new HashSet(buf, n, new Set([...this.added].filter((h) => !names.has(h))))
  }

  add(hash: string): void {
    if (!this.has(hash)) this.added.add(hash)
  }

  get size(): number {
    return this.count + this.added.size
  }

  /** Every name, sorted, one per line, written to `fd` in batches (never one big string). */
  writeTo(fd: number): void {
    const extra = [...this.added].sort()
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
      while (j < extra.length && extra[j]! < name) out(extra[j++]!)
      out(name)
    }
    while (j < extra.length) out(extra[j++]!)
    flush()
  }
}
