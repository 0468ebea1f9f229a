import {PathTable} from './path-table.js'
import type {TreeEntry} from './walk.js'

/**
 * What a Tree's entries are read and changed through: the part of a Map<string, TreeEntry> that
 * hotctl uses, so a plain Map (the ssh target's listings) and the packed TreeEntries (local walks)
 * both serve. Entries are in the order they were added (a walk's order).
 */
export interface TreeEntryMap {
  readonly size: number
  get(rel: string): TreeEntry | undefined
  has(rel: string): boolean
  set(rel: string, entry: TreeEntry): unknown
  delete(rel: string): boolean
  keys(): IterableIterator<string>
  values(): IterableIterator<TreeEntry>
  entries(): IterableIterator<[string, TreeEntry]>
  [Symbol.iterator](): IterableIterator<[string, TreeEntry]>
}

const KIND = {file: 1, dir: 2, symlink: 3} as const
const TYPES = [undefined, 'file', 'dir', 'symlink'] as const
/** Numbers per slot in `nums`: size, mtimeMs, ctimeMs, ino. */
const NUMS = 4

/**
 * A walk's entries packed (issue 10, memory per file): the paths in a PathTable, each one's type
 * and mode in byte/short arrays and its size, times and inode in one Float64Array; a symlink's
 * target in a Map by slot. `get` and iteration make each TreeEntry (and path string) when asked:
 * short-lived objects, where a Map held ~400k of them for the run. The same order and semantics as
 * a Map (a path set again keeps its place; deleted and set again, it goes last).
 */
export class TreeEntries implements TreeEntryMap {
  private readonly paths: PathTable
  private kinds: Uint8Array
  private modes: Uint16Array
  private nums: Float64Array
  private readonly links: Map<number, string>

  /** `capacity` entries and `byteCapacity` bytes of paths are made room for at once (a walk's size hint). */
  constructor(capacity = 64, byteCapacity = capacity * 32, from?: TreeEntries) {
    if (from) {
      this.paths = from.paths.clone()
      this.kinds = from.kinds.slice()
      this.modes = from.modes.slice()
      this.nums = from.nums.slice()
      this.links = new Map(from.links)
    } else {
      this.paths = new PathTable(capacity, byteCapacity)
      this.kinds = new Uint8Array(capacity)
      this.modes = new Uint16Array(capacity)
      this.nums = new Float64Array(capacity * NUMS)
      this.links = new Map()
    }
  }

  /** A copy: changes to either leave the other as it was. */
  clone(): TreeEntries {
    return new TreeEntries(0, 0, this)
  }

  get size(): number {
    return this.paths.size
  }

  get(rel: string): TreeEntry | undefined {
    const slot = this.paths.slotOf(rel)
    return slot < 0 ? undefined : this.entryAt(slot)
  }

  has(rel: string): boolean {
    return this.paths.slotOf(rel) >= 0
  }

  /** Where `rel` is held (for entryAt, nameAt), or -1. */
  slotOf(rel: string): number {
    return this.paths.slotOf(rel)
  }

  nameAt(slot: number): string {
    return this.paths.name(slot)
  }

  /** Where the path `other` holds in `slot` is held here, or -1 (no string is made). */
  slotOfPathOf(other: TreeEntries, slot: number): number {
    return this.paths.slotOfSlot(other.paths, slot)
  }

  /** Is the path `other` holds in `slot` here? (No string is made.) */
  hasPathOf(other: TreeEntries, slot: number): boolean {
    return this.paths.slotOfSlot(other.paths, slot) >= 0
  }

  // The fields of the entry in `slot`, without making the entry (planning's loops over every path).
  typeAt(slot: number): TreeEntry['type'] {
    return TYPES[this.kinds[slot]!]!
  }

  modeAt(slot: number): number {
    return this.modes[slot]!
  }

  sizeAt(slot: number): number {
    return this.nums[slot * NUMS]!
  }

  mtimeAt(slot: number): number {
    return this.nums[slot * NUMS + 1]!
  }

  ctimeAt(slot: number): number {
    return this.nums[slot * NUMS + 2]!
  }

  inoAt(slot: number): number {
    return this.nums[slot * NUMS + 3]!
  }

  /** The paths, to read one's bytes in place (PathTable.buffer): no string made. */
  get pathTable(): PathTable {
    return this.paths
  }

  linkAt(slot: number): string | undefined {
    return this.links.get(slot)
  }

  /** Is the path whose bytes are `buf[start…end]` here? */
  hasBytes(buf: Uint8Array, start: number, end: number): boolean {
    return this.paths.slotOfBytes(buf, start, end) >= 0
  }

  set(rel: string, e: TreeEntry): this {
    this.put(this.paths.add(rel), KIND[e.type], e.mode, e.size, e.mtimeMs, e.ctimeMs, e.ino, e.link)
    return this
  }

  /** set, for a path given as its bytes (a walk's record, never decoded twice). */
  setBytes(
    buf: Uint8Array,
    start: number,
    end: number,
    type: TreeEntry['type'],
    mode: number,
    size: number,
    mtimeMs: number,
    ctimeMs: number,
    ino: number,
    link?: string,
  ): void {
    this.put(this.paths.addBytes(buf, start, end), KIND[type], mode, size, mtimeMs, ctimeMs, ino, link)
  }

  delete(rel: string): boolean {
    const slot = this.paths.slotOf(rel)
    if (slot < 0) return false
    this.paths.remove(slot)
    this.kinds[slot] = 0
    this.links.delete(slot)
    return true
  }

  keys(): IterableIterator<string> {
    return new Slots(this, KEYS)
  }

  values(): IterableIterator<TreeEntry> {
    return new Slots(this, VALUES)
  }

  entries(): IterableIterator<[string, TreeEntry]> {
    return new Slots(this, ENTRIES)
  }

  [Symbol.iterator](): IterableIterator<[string, TreeEntry]> {
    return this.entries()
  }

  /** The next live slot from `slot` on, or -1. */
  nextSlot(slot: number): number {
    const {kinds} = this
    const end = this.paths.count
    while (slot < end && kinds[slot] === 0) slot++
    return slot < end ? slot : -1
  }

  /** The entry in `slot` (from slotOf or nextSlot). */
  entryAt(slot: number): TreeEntry {
    const n = slot * NUMS
    const {nums} = this
    const entry: TreeEntry = {
      type: TYPES[this.kinds[slot]!]!,
      mode: this.modes[slot]!,
      size: nums[n]!,
      mtimeMs: nums[n + 1]!,
      ctimeMs: nums[n + 2]!,
      ino: nums[n + 3]!,
    }
    if (entry.type === 'symlink') {
      const link = this.links.get(slot)
      if (link !== undefined) entry.link = link
    }
    return entry
  }

  private put(
    slot: number,
    kind: number,
    mode: number,
    size: number,
    mtimeMs: number,
    ctimeMs: number,
    ino: number,
    link: string | undefined,
  ): void {
    if (slot >= this.kinds.length) this.grow(slot + 1)
    this.kinds[slot] = kind
    this.modes[slot] = mode
    const n = slot * NUMS
    this.nums[n] = size
    this.nums[n + 1] = mtimeMs
    this.nums[n + 2] = ctimeMs
    this.nums[n + 3] = ino
    if (link !== undefined) this.links.set(slot, link)
    else if (this.links.size > 0) this.links.delete(slot)
  }

  private grow(n: number): void {
    const cap = Math.max(n, Math.ceil(this.kinds.length * 1.5), 64)
    const kinds = new Uint8Array(cap)
    kinds.set(this.kinds)
    const modes = new Uint16Array(cap)
    modes.set(this.modes)
    const nums = new Float64Array(cap * NUMS)
    nums.set(this.nums)
    this.kinds = kinds
    this.modes = modes
    this.nums = nums
  }
}

const [KEYS, VALUES, ENTRIES] = [0, 1, 2]

/**
 * An iterator over a TreeEntries' live slots: no generator and no call per entry but the ones
 * making it (iteration is a deploy's hot loop, mostly run before the JIT has warmed up).
 */
class Slots<T> implements IterableIterator<T> {
  private slot = 0

  constructor(
    private readonly entries: TreeEntries,
    private readonly what: number,
  ) {}

  next(): IteratorResult<T> {
    const {entries, what} = this
    const s = entries.nextSlot(this.slot)
    if (s < 0) return {done: true, value: undefined}
    this.slot = s + 1
    if (what === KEYS) return {done: false, value: entries.nameAt(s) as T}
    if (what === VALUES) return {done: false, value: entries.entryAt(s) as T}
    return {done: false, value: [entries.nameAt(s), entries.entryAt(s)] as T}
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this
  }
}
