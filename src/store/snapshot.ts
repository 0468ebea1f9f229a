import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {fsPath} from '../file-names.js'
import type {HashCache} from './hash-cache.js'
import {
  addRows,
  inDepthFirstOrder,
  type Manifest,
  type ManifestEntry,
  type ManifestRoot,
  ManifestWriter,
  parseChunk,
  readManifest,
  type Row,
} from './manifest.js'
import type {ObjectStore, Put, Puts} from './objects.js'
import {fmix} from './path-table.js'
import {BATCH_BYTES, BATCH_FILES, copyWorkers} from './put-pool.js'
import {TreeEntries} from './tree-entries.js'
import {statEntry, type Tree, type TreeEntry} from './walk.js'

export interface SnapshotResult {
  /** Read back from the store when asked (a snapshot never holds the whole Map). */
  readonly manifest: Manifest
  root: ManifestRoot
  /** Each directory's signature (dirSignatures): the next snapshot reuses a chunk whose directory kept it. */
  dirs: DirSignatures
  files: number
  bytes: number
  /** Bytes this snapshot added to the store: the content no earlier snapshot holds. */
  added: number
}

/** A manifest root with the signature each of its directories had when it was taken. */
export interface SignedRoot {
  root: ManifestRoot
  dirs: DirSignatures
}

/** How far a snapshot has got: files and bytes recorded of the tree's, and the bytes newly stored. */
export interface SnapshotProgress {
  files: number
  bytes: number
  totalFiles: number
  totalBytes: number
  /** Bytes copied into the store so far (all of them on a first backup). */
  stored: number
}

/** How long the copy loop runs before it lets timers (progress, signals, a terminal's redraw) run. */
const YIELD_MS = 50

/** Directories reused and rebuilt by snapshots, whole-tree passes summing signatures, entries looked at (the tests check that unchanged directories are not looked at again). */
export const snapshotCounts = {reused: 0, rebuilt: 0, summed: 0, entries: 0}

/**
 * Records a walked tree: stores only content the store lacks; unchanged files cost nothing.
 * Given `base` (an earlier snapshot of the same target, whose chunks the store still keeps), a
 * directory whose signature is the one `base` recorded keeps its chunk without a look at its
 * files: a deploy of 10 files costs O(changed directories) here, not O(files).
 * A first backup of a big tree reads every byte, so it yields to the event loop every 50 ms and
 * reports its progress (`onProgress`) when it does.
 */
export async function snapshotTree(
  tree: Tree,
  hashes: HashCache | (() => HashCache),
  store: ObjectStore,
  onProgress?: (p: SnapshotProgress) => void,
  base?: SignedRoot,
  touched?: Iterable<string>,
): Promise<SnapshotResult> {
  // Opened only when a directory is looked at: a snapshot whose every chunk is reused reads no record.
  let opened: HashCache | undefined
  const cache = () => (opened ??= typeof hashes === 'function' ? hashes() : hashes)
  const dirs = dirSignatures(tree)
  const reused: ManifestRoot = {}
  let anyReused = false
  let allReused = true
  for (const dir in dirs) {
    const chunk = base?.root[dir]
    if (chunk !== undefined && base!.dirs[dir] === dirs[dir] && store.holds(chunk)) {
      reused[dir] = chunk
      anyReused = true
    } else allReused = false
  }
  const patched = anyReused && touched ? patchChunks(tree, dirs, reused, base!, touched, cache(), store) : undefined
  if (patched || (anyReused && allReused)) {
    // Nothing changed since `base` but the touched paths: its chunks are the manifest, patched
    // where they are, not one other entry looked at.
    const {files, bytes} = treeSums(tree)
    snapshotCounts.reused += Object.keys(reused).length
    snapshotCounts.rebuilt += Object.keys(patched?.root ?? {}).length
    onProgress?.({files, bytes, totalFiles: files, totalBytes: bytes, stored: patched?.added ?? 0})
    return snapshotResult(store, sortedRoot({...reused, ...patched?.root}), {
      dirs,
      files,
      bytes,
      added: patched?.added ?? 0,
    })
  }
  // A walk's order lets each directory's chunk be stored as soon as it is complete (memory: the
  // open directories' rows, not a row per file); another order, or rows of some directories
  // only, collects the rows first.
  const manifest = new ManifestWriter(!anyReused && inDepthFirstOrder(tree.entries) ? store : undefined, anyReused)
  let files = 0
  let bytes = 0
  let added = 0
  let totalFiles = 0
  let totalBytes = 0
  if (onProgress)
    for (const e of tree.entries.values())
      if (e.type === 'file') {
        totalFiles++
        totalBytes += e.size
      }
  let yielded = Date.now()
  const parentOf = parents()
  // A first backup copies every file: on every core, batches ahead of this loop (copyAhead).
  const ahead = anyReused ? undefined : copyAhead(tree, cache(), store)
  try {
    for (const [rel, e] of tree.entries) {
      if (anyReused && reused[parentOf(rel)] !== undefined) {
        if (e.type === 'file') {
          files++
          bytes += e.size
        }
        continue
      }
      if (Date.now() - yielded >= YIELD_MS) {
        onProgress?.({files, bytes, totalFiles, totalBytes, stored: added})
        await new Promise((resolve) => setImmediate(resolve))
        yielded = Date.now()
      }
      let put = ahead && e.type === 'file' && !cache().knows(rel) ? ahead.take(rel) : undefined
      if (put instanceof Promise) put = await put
      const entry = manifestEntry(tree, rel, e, cache(), store, put)
      manifest.add(rel, entry)
      if (entry.type === 'file') {
        added += entry.added
        files++
        bytes += entry.size!
      }
    }
  } finally {
    await ahead?.close() // no copy writes into the batch after this (nor while it is dropped)
  }
  onProgress?.({files, bytes, totalFiles, totalBytes, stored: added})
  const written = manifest.write(store)
  const count = Object.keys(reused).length
  snapshotCounts.reused += count
  snapshotCounts.rebuilt += Object.keys(written.root).length
  const root = count === 0 ? written.root : sortedRoot({...reused, ...written.root})
  return snapshotResult(store, root, {dirs, files, bytes, added: added + written.added})
}

/** A snapshot of the chunks `root`: its manifest is read back from the store only when asked. */
function snapshotResult(
  store: ObjectStore,
  root: ManifestRoot,
  sums: Omit<SnapshotResult, 'manifest' | 'root'>,
): SnapshotResult {
  return {
    get manifest() {
      return readManifest(root, store)
    },
    root,
    ...sums,
  }
}

/**
 * A walked entry as the manifest records it. A file hotctl has no record of (a first backup) is
 * read once: hashed as it is copied in. One it knows is hashed only if its stat moved, and copied
 * only if the store lacks it.
 */
function manifestEntry(
  tree: Tree,
  rel: string,
  e: TreeEntry,
  cache: HashCache,
  store: ObjectStore,
  copied?: Put,
): ManifestEntry & {added: number} {
  snapshotCounts.entries++
  if (e.type !== 'file') return {type: e.type, mode: e.mode, link: e.link, added: 0}
  let hash = copied ? undefined : cache.knows(rel) ? cache.hash(tree.root, rel, e) : undefined
  let size = e.size
  let added = 0
  if (hash === undefined || !store.has(hash)) {
    // What was really copied, should the file have changed since the walk.
    const put = copied ?? store.putFile(path.join(tree.root, rel))
    ;({hash, size, added} = put)
    cache.record(rel, e, hash)
  }
  return {type: 'file', mode: e.mode, size, hash, added}
}

/** The copies `copyAhead` has queued at most, per thread copying: each thread busy, and the next batch ready. */
const AHEAD_PER_THREAD = 4

/**
 * The files the hash cache has no record of (all of them on a first backup), copied into the
 * store's batch on every core (ObjectStore.parallelCopier), in batches queued in the walk's order
 * ahead of the manifest loop; `take` gives each file's result in that order. Only the batches in
 * flight are held. Undefined when the store copies them one by one (little content, one core).
 */
function copyAhead(
  tree: Tree,
  cache: HashCache,
  store: ObjectStore,
): {take(rel: string): Put | Promise<Put>; close(): Promise<void>} | undefined {
  const wanted = (rel: string, e: TreeEntry) => e.type === 'file' && !cache.knows(rel)
  let count = 0
  let bytes = 0
  for (const [rel, e] of tree.entries)
    if (wanted(rel, e)) {
      count++
      bytes += e.size
    }
  const copier = store.parallelCopier(tree.root, count, bytes)
  if (!copier) return undefined
  cache.expect(count)
  const window = AHEAD_PER_THREAD * (copyWorkers() + 1)
  const walk = tree.entries[Symbol.iterator]() // the manifest loop's order
  let walked = false
  const queued: {rels: string[]; puts: Promise<Puts>}[] = []
  let current: {rels: string[]; puts: Puts} | undefined
  let at = 0
  const fill = () => {
    while (!walked && queued.length < window) {
      const rels: string[] = []
      const sizes: number[] = []
      let batchBytes = 0
      while (rels.length < BATCH_FILES && batchBytes < BATCH_BYTES) {
        const next = walk.next()
        if (next.done) {
          walked = true
          break
        }
        const [rel, e] = next.value
        if (!wanted(rel, e)) continue
        rels.push(rel)
        sizes.push(e.size)
        batchBytes += e.size
      }
      if (rels.length === 0) return
      const puts = copier.put(rels, sizes)
      puts.catch(() => undefined) // its failure is thrown where it is awaited (take)
      queued.push({rels, puts})
    }
  }
  const next = async (rel: string): Promise<Put> => {
    const batch = queued.shift()
    if (!batch) throw new Error(`no copy of ${rel} was queued`)
    fill()
    current = {rels: batch.rels, puts: await batch.puts}
    at = 0
    return take(rel)
  }
  const take = (rel: string): Put | Promise<Put> => {
    if (!current || at === current.rels.length) return next(rel)
    if (current.rels[at] !== rel) throw new Error(`copies out of order: ${rel}, not ${current.rels[at]}`)
    const {hashes, added, sizes} = current.puts
    return {hash: hashes[at]!, added: added[at]!, size: sizes[at++]!}
  }
  fill()
  return {take, close: () => copier.close()}
}

/**
 * The chunks of the directories `base` does not cover (`reused` has the rest), when every one of
 * them is a directory a touched path is in: each is `base`'s chunk (if it had one) with the
 * touched entries' rows replaced, added or dropped. Undefined when a directory changed where
 * nothing was touched (then every entry of the tree is looked at).
 */
function patchChunks(
  tree: Tree,
  dirs: DirSignatures,
  reused: ManifestRoot,
  base: SignedRoot,
  touched: Iterable<string>,
  cache: HashCache,
  store: ObjectStore,
): {root: ManifestRoot; added: number} | undefined {
  const byDir = new Map<string, string[]>()
  for (const rel of new Set(touched)) {
    const slash = rel.lastIndexOf('/')
    const dir = slash === -1 ? '' : rel.slice(0, slash)
    if (dirs[dir] === undefined || reused[dir] !== undefined) continue // gone, emptied, or unchanged
    let rels = byDir.get(dir)
    if (!rels) byDir.set(dir, (rels = []))
    rels.push(rel)
  }
  for (const dir in dirs) if (reused[dir] === undefined && !byDir.has(dir)) return undefined
  const manifest = new ManifestWriter(undefined, true)
  let added = 0
  for (const [dir, rels] of byDir) {
    const chunk = base.root[dir]
    if (chunk !== undefined) {
      const names = new Set(rels.map((rel) => rel.slice(rel.lastIndexOf('/') + 1)))
      const rows = parseChunk(store.read(chunk))
      const kept: Manifest = new Map()
      addRows(
        kept,
        dir,
        rows.filter((r) => !names.has(r[0])),
      )
      for (const [rel, entry] of kept) manifest.add(rel, entry)
    }
    for (const rel of rels) {
      const e = tree.entries.get(rel)
      if (!e) continue // deleted
      const entry = manifestEntry(tree, rel, e, cache, store)
      added += entry.added
      manifest.add(rel, entry)
    }
  }
  const written = manifest.write(store)
  return {root: written.root, added: added + written.added}
}

const sortedRoot = (root: ManifestRoot): ManifestRoot => {
  const out: ManifestRoot = {}
  for (const dir of Object.keys(root).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) out[dir] = root[dir]!
  return out
}

/**
 * `rel` → its parent directory ('' at the top), remembering the last one: a walk lists a
 * directory's entries together, so most calls return it without a new string.
 */
function parents(): (rel: string) => string {
  let last = ''
  return (rel) => {
    const slash = rel.lastIndexOf('/')
    if (slash === -1) return ''
    if (slash === last.length && rel.startsWith(last)) return last
    return (last = rel.slice(0, slash))
  }
}

/** Directory → signature of what it directly holds, for the directories that hold something. */
export type DirSignatures = Record<string, string>

/** A directory's sums (two 32-bit lanes and the entry count), and the tree's file count and bytes. */
interface TreeSums {
  dirs: Map<string, {a: number; b: number; n: number}>
  files: number
  bytes: number
}

/** Each tree's sums, computed once (the backup's walk is also the base of the tree after the sync). */
const sumsOf = new WeakMap<Tree, TreeSums>()

/**
 * Each directory's signature: a 64-bit hash, summed over its entries, of what decides the
 * directory's manifest chunk — each entry's name, type and mode; a file's size, mtime, ctime and
 * inode (the stat the hash cache trusts a recorded hash by); a symlink's target. A directory whose
 * signature is unchanged has the same chunk, as far as the hash cache can tell: a file edited in
 * place keeping its size and mtime still moves its ctime. (Two different directories with one
 * signature: 2^-64 by chance.) A sum, so the order the walk lists entries in does not matter, and
 * a tree changed in a few paths gets its sums from its parent's (carrySignatures).
 */
export function dirSignatures(tree: Tree): DirSignatures {
  return signaturesOf(treeSums(tree))
}

function signaturesOf(sums: TreeSums): DirSignatures {
  const out: DirSignatures = {}
  for (const [dir, s] of sums.dirs) out[dir] = `${hex8(s.a)}${hex8(s.b)}-${s.n}`
  return out
}

/** How many entries a directory with signature `sig` holds. */
export const signatureEntries = (sig: string): number => Number(sig.slice(sig.lastIndexOf('-') + 1)) || 0

function treeSums(tree: Tree): TreeSums {
  let sums = sumsOf.get(tree)
  if (sums) return sums
  snapshotCounts.summed++
  if (tree.entries instanceof TreeEntries) {
    sums = packedSums(tree.entries)
    sumsOf.set(tree, sums)
    return sums
  }
  sums = {dirs: new Map(), files: 0, bytes: 0}
  const parentOf = parents()
  let lastDir: string | undefined
  let at: {a: number; b: number; n: number} | undefined
  for (const [rel, e] of tree.entries) {
    const dir = parentOf(rel)
    if (dir !== lastDir) {
      at = sums.dirs.get(dir)
      if (!at) sums.dirs.set(dir, (at = {a: 0, b: 0, n: 0}))
      lastDir = dir
    }
    entryHash(rel, e)
    at!.a = (at!.a + ha) | 0
    at!.b = (at!.b + hb) | 0
    at!.n++
    if (e.type === 'file') {
      sums.files++
      sums.bytes += e.size
    }
  }
  sumsOf.set(tree, sums)
  return sums
}

/**
 * treeSums over a local walk's packed entries, from their fields and their paths' bytes in place:
 * no entry object and no path string per entry (issue 10: ~20k of each per backup, mostly before
 * the JIT has warmed up). An ASCII path's bytes are its chars, so its hash is entryHash's; a path
 * with a byte ≥ 0x80 goes through entryHash itself.
 */
function packedSums(entries: TreeEntries): TreeSums {
  const sums: TreeSums = {dirs: new Map(), files: 0, bytes: 0}
  const paths = entries.pathTable
  const buf = paths.buffer
  const parentOf = parents()
  let lastStart = -1 // the last parent's bytes: buf[lastStart…lastStart + lastLen]
  let lastLen = 0
  let at: {a: number; b: number; n: number} | undefined
  const sumIn = (dir: string) => {
    let s = sums.dirs.get(dir)
    if (!s) sums.dirs.set(dir, (s = {a: 0, b: 0, n: 0}))
    return s
  }
  for (let s = entries.nextSlot(0); s >= 0; s = entries.nextSlot(s + 1)) {
    const type = entries.typeAt(s)
    if (paths.isWide(s)) {
      const rel = entries.nameAt(s)
      lastStart = -1
      at = sumIn(parentOf(rel))
      entryHash(rel, entries.entryAt(s))
    } else {
      const start = paths.startOf(s)
      const end = paths.endOf(s)
      let slash = end - 1
      while (slash >= start && buf[slash] !== SLASH) slash--
      const len = slash < start ? 0 : slash - start
      if (len !== lastLen || lastStart < 0 || !sameBytes(buf, lastStart, start, len)) {
        at = sumIn(len === 0 ? '' : buf.toString('latin1', start, slash))
        lastStart = start
        lastLen = len
      }
      let a = NAME_A
      let b = NAME_B
      for (let i = slash + 1; i < end; i++) {
        const c = buf[i]!
        a = Math.imul(a ^ c, 0x01000193)
        b = Math.imul(b ^ c, 0x5bd1e995)
      }
      const [size, mtime, ctime, ino] = [entries.sizeAt(s), entries.mtimeAt(s), entries.ctimeAt(s), entries.inoAt(s)]
      statHash(a, b, type, entries.modeAt(s), size, mtime, ctime, ino, entries.linkAt(s))
    }
    at!.a = (at!.a + ha) | 0
    at!.b = (at!.b + hb) | 0
    at!.n++
    if (type === 'file') {
      sums.files++
      sums.bytes += entries.sizeAt(s)
    }
  }
  return sums
}

const SLASH = 0x2f

/** Are buf[x…x+len] and buf[y…y+len] the same? (From the end: sibling directories differ there.) */
function sameBytes(buf: Buffer, x: number, y: number, len: number): boolean {
  for (let i = len - 1; i >= 0; i--) if (buf[x + i] !== buf[y + i]) return false
  return true
}

/**
 * The sums of `after`, a copy of `before` where only `paths` were looked at again and the
 * directories in `gone` went with everything under them: O(paths + directories), not a pass over
 * every entry. Nothing is done when `before` has no sums yet (the first snapshot computes them).
 */
export function carrySignatures(before: Tree, after: Tree, paths: Iterable<string>, gone: Set<string>): void {
  const old = sumsOf.get(before)
  if (!old) return
  const looked = new Set(paths)
  const sums = carrySums(old, before, looked, (rel) => after.entries.get(rel), gone)
  if (gone.size > 0)
    for (const [rel, e] of before.entries) {
      // What went with a directory that went: its files leave the counts.
      if (
        e.type === 'file' &&
        !looked.has(rel) &&
        !after.entries.has(rel) &&
        under(gone, rel.slice(0, Math.max(0, rel.lastIndexOf('/'))))
      ) {
        sums.files--
        sums.bytes -= e.size
      }
    }
  sumsOf.set(after, sums)
}

/**
 * The signatures of `before`'s directories once the paths in `now` are as given there (undefined:
 * gone), the rest as walked: carrySignatures without the tree it would make. A directory that
 * went, or stopped being one, goes with the directories under it. Undefined when `before` has no
 * sums yet.
 */
export function signaturesWith(before: Tree, now: Map<string, TreeEntry | undefined>): DirSignatures | undefined {
  const old = sumsOf.get(before)
  if (!old) return undefined
  const gone = new Set<string>()
  for (const [rel, e] of now) if (before.entries.get(rel)?.type === 'dir' && e?.type !== 'dir') gone.add(rel)
  return signaturesOf(carrySums(old, before, new Set(now.keys()), (rel) => now.get(rel), gone))
}

/** Is `dir` one of the directories in `gone` or under one? */
function under(gone: Set<string>, dir: string): boolean {
  for (const g of gone) if (dir === g || dir.startsWith(`${g}/`)) return true
  return false
}

/** `old` with each of `looked` taken out as `before` has it and put back as `now` has it; the directories in or under `gone` dropped. */
function carrySums(
  old: TreeSums,
  before: Tree,
  looked: Set<string>,
  now: (rel: string) => TreeEntry | undefined,
  gone: Set<string>,
): TreeSums {
  const sums: TreeSums = {dirs: new Map(), files: old.files, bytes: old.bytes}
  for (const [dir, s] of old.dirs) sums.dirs.set(dir, {...s})
  const apply = (rel: string, e: TreeEntry, sign: 1 | -1) => {
    if (e.type === 'file') {
      sums.files += sign
      sums.bytes += sign * e.size
    }
    const slash = rel.lastIndexOf('/')
    const dir = slash === -1 ? '' : rel.slice(0, slash)
    let s = sums.dirs.get(dir)
    if (!s) sums.dirs.set(dir, (s = {a: 0, b: 0, n: 0}))
    entryHash(rel, e)
    s.a = (s.a + sign * ha) | 0
    s.b = (s.b + sign * hb) | 0
    s.n += sign
  }
  for (const rel of looked) {
    const was = before.entries.get(rel)
    if (was) apply(rel, was, -1)
    const is = now(rel)
    if (is) apply(rel, is, 1)
  }
  // The sums of the directories that went with one that went go too.
  for (const [dir, s] of sums.dirs) if (s.n === 0 || (gone.size > 0 && under(gone, dir))) sums.dirs.delete(dir)
  return sums
}

const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0')
const F64 = new Float64Array(1)
const U32 = new Uint32Array(F64.buffer)
const TYPES = {file: 1, dir: 2, symlink: 3}
/** The two lanes of the last entryHash. */
let ha = 0
let hb = 0

/**
 * Two independent 32-bit lanes (left in ha, hb): the name (its last segment: the directory is
 * the sum's key) FNV-style, then the stat words murmur3-style. Cheap on purpose: every entry of
 * both walks goes through it once per deploy, mostly before the JIT has warmed up.
 */
function entryHash(rel: string, e: TreeEntry): void {
  let a = NAME_A
  let b = NAME_B
  for (let i = rel.lastIndexOf('/') + 1; i < rel.length; i++) {
    const c = rel.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
  }
  statHash(a, b, e.type, e.mode, e.size, e.mtimeMs, e.ctimeMs, e.ino, e.link)
}

const NAME_A = 0x811c9dc5
const NAME_B = 0x9747b28c

/** entryHash's second part, from the name's lanes `a`, `b` and the entry's fields. */
function statHash(
  a: number,
  b: number,
  type: TreeEntry['type'],
  mode: number,
  size: number,
  mtimeMs: number,
  ctimeMs: number,
  ino: number,
  link: string | undefined,
): void {
  ha = a
  hb = b
  word(TYPES[type] | (mode << 2))
  if (type === 'file') {
    num(size)
    num(mtimeMs)
    num(ctimeMs)
    num(ino)
  } else if (type === 'symlink' && link !== undefined) {
    a = 0x811c9dc5
    for (let i = 0; i < link.length; i++) a = Math.imul(a ^ link.charCodeAt(i), 0x01000193)
    word(a)
    word(link.length)
  }
  ha = fmix(ha)
  hb = fmix(hb ^ 0x27d4eb2f)
}

function num(n: number): void {
  F64[0] = n
  word(U32[0]!)
  word(U32[1]!)
}

function word(k: number): void {
  let a = Math.imul(k, 0xcc9e2d51)
  a = Math.imul((a << 15) | (a >>> 17), 0x1b873593)
  ha ^= a
  ha = (Math.imul((ha << 13) | (ha >>> 19), 5) + 0xe6546b64) | 0
  let b = Math.imul(k ^ 0x5bd1e995, 0x85ebca6b)
  b = Math.imul((b << 16) | (b >>> 16), 0xc2b2ae35)
  hb ^= b
  hb = (Math.imul((hb << 17) | (hb >>> 15), 9) + 0x52dce729) | 0
}

/** Paths where the tree differs from the manifest (content by hash, type, mode, link). */
export function diffAgainst(manifest: Manifest, tree: Tree, cache: HashCache): string[] {
  const diffs: string[] = []
  for (const [rel, want] of manifest) {
    const have = tree.entries.get(rel)
    if (!have || !sameEntry(want, have, () => cache.hash(tree.root, rel, have))) diffs.push(rel)
  }
  // A leftover directory that holds protected content is kept on purpose: not a difference.
  for (const [rel, e] of tree.entries)
    if (!manifest.has(rel) && !(e.type === 'dir' && holdsProtected(tree, rel))) diffs.push(rel)
  return diffs
}

function sameEntry(want: ManifestEntry, have: TreeEntry, hashOf: () => string): boolean {
  if (want.type !== have.type) return false
  if (want.type === 'symlink') return want.link === have.link
  if (want.mode !== have.mode) return false
  if (want.type === 'dir') return true
  return want.size === have.size && want.hash === hashOf()
}

export interface RestoreResult {
  written: string[]
  removed: string[]
}

/** What a restore will do, worked out before anything is written. */
export interface RestorePlan {
  tree: Tree
  /** Paths the manifest lacks, to remove. */
  extras: string[]
  /** Entries that differ from the manifest, parents first: to (re)create. */
  writes: [rel: string, want: ManifestEntry][]
}

/**
 * Compares the target with the manifest (content by hash, cached by stat). Read-only: the objects
 * the `writes` will copy can be checked before anything is touched, and only those (O(changed)).
 */
export function planRestore(manifest: Manifest, tree: Tree, cache: HashCache): RestorePlan {
  const extras = [...tree.entries.keys()].filter((rel) => !manifest.has(rel))
  return {tree, extras, writes: restoreWrites(manifest, tree, cache)}
}

/** The entries of `manifest` the tree does not hold as recorded, parents first. */
function restoreWrites(manifest: Manifest, tree: Tree, cache: HashCache): RestorePlan['writes'] {
  const writes: RestorePlan['writes'] = []
  for (const [rel, want] of manifest) {
    const have = tree.entries.get(rel)
    if (!have || !sameEntry(want, have, () => cache.hash(tree.root, rel, have))) writes.push([rel, want])
  }
  // Only what differs is sorted (a rollback of 10 files in a 200k-file tree sorts 10).
  return writes.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/**
 * planRestore over the directories whose listings differ from the live tree's (`differing`: the
 * backup's rows of each, [] for a directory it has no listing of; `live`: the live snapshot's rows
 * of those it has one of; see checkBackupBeside). Every other directory of the walk hashed to the
 * backup's listing (same names, types, modes, sizes, content hashes): nothing in it is compared
 * again. The live rows are the snapshot just taken from `tree` (its hashes the hash record's,
 * trusted by stat as planRestore's are), so a differing directory is compared row by row, no file
 * looked at and no hash record needed: the same plan planRestore makes, O(changed).
 */
export function planRestoreDirs(differing: Map<string, Row[]>, live: Map<string, Row[]>, tree: Tree): RestorePlan {
  const writes: RestorePlan['writes'] = []
  const extras: string[] = []
  for (const [dir, rows] of differing) {
    const have = new Map<string, Row>()
    for (const row of live.get(dir) ?? []) have.set(row[0], row)
    const want: Manifest = new Map()
    addRows(want, dir, rows)
    for (const row of rows) {
      const had = have.get(row[0])
      have.delete(row[0])
      if (!had || !sameRow(row, had)) {
        const rel = dir ? `${dir}/${row[0]}` : row[0]
        writes.push([rel, want.get(rel)!])
      }
    }
    for (const name of have.keys()) extras.push(dir ? `${dir}/${name}` : name)
  }
  return {tree, extras, writes: writes.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))}
}

/** sameEntry for two chunk rows: a symlink by its target, anything else by type and mode, a file by size and hash too. */
function sameRow(want: Row, have: Row): boolean {
  if (want[1] !== have[1]) return false
  if (want[1] === 'l') return want[3] === have[3]
  return want[2] === have[2] && (want[1] === 'd' || (want[3] === have[3] && want[4] === have[4]))
}

/**
 * Makes the target equal to the manifest, leaving skipped (protected/excluded) paths alone. Each
 * file lands by rename of a fully written temp file beside it, so no file is ever half-written;
 * the copy is hashed as it is written and is renamed only when it matches.
 */
export function applyRestore(plan: RestorePlan, store: ObjectStore): RestoreResult {
  const {tree} = plan
  const targetRoot = tree.root
  const written: string[] = []
  fs.mkdirSync(targetRoot, {recursive: true})
  // Leftovers go first: removing them after the writes could follow a restored symlink, or find
  // a restored file where a leftover directory was.
  const removed = removeExtras(targetRoot, plan.extras, tree)
  for (const [rel, want] of plan.writes) {
    const have = tree.entries.get(rel)
    const abs = path.join(targetRoot, rel)
    if (have && have.type === 'dir' && want.type !== 'dir') removeDir(tree, rel, abs)
    if (want.type === 'dir') {
      if (have && have.type !== 'dir') fs.rmSync(fsPath(abs), {force: true})
      fs.mkdirSync(fsPath(abs), {recursive: true})
      fs.chmodSync(fsPath(abs), want.mode)
    } else {
      const tmp = fsPath(path.join(path.dirname(abs), `.hotctl-restore-${crypto.randomBytes(4).toString('hex')}`))
      if (want.type === 'symlink') fs.symlinkSync(fsPath(want.link!), tmp)
      else store.copyOut(want.hash!, tmp, want.mode)
      fs.renameSync(tmp, fsPath(abs))
    }
    written.push(rel)
  }
  return {written, removed}
}

/**
 * What `diffAgainst` would find right after `applyRestore(plan)`, without walking the tree again:
 * the plan's walk (taken under the lock just before) proved every other path equal to the
 * manifest, so only the paths the restore wrote (stat'd and hashed afresh: their inodes are new)
 * and the leftovers it was to remove are looked at. O(changed). `seen` gets each looked-at path's
 * stat as it was checked (undefined: gone).
 */
export function verifyRestored(
  plan: RestorePlan,
  cache: HashCache,
  seen?: Map<string, TreeEntry | undefined>,
): string[] {
  const {tree} = plan
  const diffs: string[] = []
  for (const [rel, want] of plan.writes) {
    const have = statEntry(path.join(tree.root, rel))
    seen?.set(rel, have)
    if (!have || !sameEntry(want, have, () => cache.hash(tree.root, rel, have))) diffs.push(rel)
  }
  // A leftover under what is now a symlink (or file) is gone from the tree even if the link's
  // target holds that name: only one whose parents are all directories is looked up.
  const wrote = new Map(plan.writes)
  const isDir = (rel: string) => (wrote.get(rel) ?? tree.entries.get(rel))?.type === 'dir'
  const reachable = (rel: string) => {
    for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) if (!isDir(rel.slice(0, i))) return false
    return true
  }
  for (const rel of plan.extras) {
    const have = reachable(rel) ? statEntry(path.join(tree.root, rel)) : undefined
    seen?.set(rel, have)
    if (have && !(have.type === 'dir' && holdsProtected(tree, rel))) diffs.push(rel)
  }
  return diffs
}

/** planRestore + applyRestore, without checking the objects first (callers that must: LocalTarget.restore). */
export function restoreTree(manifest: Manifest, tree: Tree, store: ObjectStore, cache: HashCache): RestoreResult {
  return applyRestore(planRestore(manifest, tree, cache), store)
}

/**
 * Removes paths of a walked tree, deepest first. A directory that still holds protected content
 * is kept; one that holds only excluded content (__pycache__, build caches) goes with it, since
 * what it was generated from is gone. Returns what was removed.
 */
export function removeExtras(root: string, rels: string[], tree: Tree): string[] {
  const removed: string[] = []
  for (const rel of [...rels].sort().reverse()) {
    const abs = fsPath(path.join(root, rel))
    const e = tree.entries.get(rel)
    if (!e) continue
    if (e.type === 'dir') {
      try {
        fs.rmdirSync(abs)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT') continue
        if (code !== 'ENOTEMPTY') throw err
        if (holdsProtected(tree, rel)) continue // kept with its protected content
        fs.rmSync(abs, {recursive: true, force: true})
      }
    } else fs.rmSync(abs, {force: true})
    removed.push(rel)
  }
  return removed
}

const holdsProtected = (tree: Tree, rel: string) =>
  [...tree.dirsWithProtected].some((d) => d === rel || d.startsWith(`${rel}/`))

function removeDir(tree: Tree, rel: string, abs: string): void {
  if (holdsProtected(tree, rel)) throw new Error(`cannot replace directory ${rel}: it holds protected paths`)
  fs.rmSync(fsPath(abs), {recursive: true, force: true})
}
