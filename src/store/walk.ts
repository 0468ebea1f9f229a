import {spawn, spawnSync, type SpawnSyncOptionsWithBufferEncoding} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {decodeName, fsPath} from '../file-names.js'
import {type PathMatcher, tailIndex} from '../plan/patterns.js'
import {TreeEntries, type TreeEntryMap} from './tree-entries.js'

/** One entry of a tree, keyed by its path relative to the root ('/'-separated). */
export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink'
  mode: number
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
  link?: string
}

/** How many entries and path bytes a walk should expect (from the hash cache of its last one): room made at once. */
export interface SizeHint {
  entries: number
  bytes: number
}

export interface Tree {
  root: string
  /** A local walk's are packed (TreeEntries); an ssh listing's are a Map. */
  entries: TreeEntryMap
  /** Directories directly holding skipped (excluded or protected) entries. */
  dirsWithSkipped: Set<string>
  /** Directories directly holding protected entries: never removed. */
  dirsWithProtected: Set<string>
}

/** A local walk: its entries packed. */
export type PackedTree = Tree & {entries: TreeEntries}

/**
 * Walks a tree, skipping what `skip` matches (excluded and protected paths) and never following
 * symlinks: with GNU find (walkWithFind) when it is there, else with lstat per entry (walkTreeNode).
 * Names keep their bytes (file-names.ts), so a name that is not UTF-8 is walked, backed up and
 * restored as it is.
 */
export function walkTree(root: string, skip: PathMatcher, protect?: PathMatcher): PackedTree {
  const dir = rootDir(root)
  if (dir === undefined) return emptyTree(root)
  if (dir && findUsable) {
    const r = spawnSync(FIND, findArgv(dir, skip), FIND_SYNC)
    const parser = new FindParser(dir, skip, protect)
    const tree = r.status === 0 && !r.error && parser.push(r.stdout) === r.stdout.length ? parser.tree : undefined
    if (tree) return (walks.find++, tree)
    noteFindFailure(r.error, parser)
  }
  return walkTreeNode(root, skip, protect)
}

/**
 * walkTree with find as a child process, its records parsed as they come: two walks (source and
 * target) run at once, each find on its own core. The same result as walkTree.
 */
export async function walkTreeAsync(
  root: string,
  skip: PathMatcher,
  protect?: PathMatcher,
  hint?: SizeHint,
): Promise<PackedTree> {
  const dir = rootDir(root)
  if (dir === undefined) return emptyTree(root)
  if (dir && findUsable) {
    const parser = new FindParser(dir, skip, protect, hint)
    const r = await new Promise<{ok: boolean; error?: Error}>((resolve) => {
      let rest: Buffer | undefined
      const child = spawn(FIND, findArgv(dir, skip), {stdio: ['ignore', 'pipe', 'ignore']})
      child.stdout.on('data', (chunk: Buffer) => {
        const b = rest ? Buffer.concat([rest, chunk]) : chunk
        rest = b.subarray(parser.push(b))
      })
      child.on('error', (error) => resolve({ok: false, error}))
      child.on('close', (code) => resolve({ok: code === 0 && !parser.failed && !rest?.length}))
    })
    if (r.ok) return (walks.find++, parser.tree)
    noteFindFailure(r.error, parser)
  }
  return walkTreeNode(root, skip, protect)
}

/** How this process's walks were done (the tests check that find is really used). */
export const walks = {find: 0, lstat: 0}

const emptyTree = (root: string): PackedTree => ({
  root,
  entries: new TreeEntries(),
  dirsWithSkipped: new Set(),
  dirsWithProtected: new Set(),
})

/**
 * The absolute root when it is a directory; '' when it is something else (the node walk then
 * fails with the error naming it, as before); undefined when it does not exist (an empty tree).
 */
function rootDir(root: string): string | undefined {
  try {
    return fs.statSync(root).isDirectory() ? path.resolve(root) : ''
  } catch {
    return fs.existsSync(root) ? '' : undefined
  }
}

const FIND = 'find'
/** Cleared when `find` is missing or is not GNU find (no -printf): later walks go straight to lstat. */
let findUsable = !process.env.HOTCTL_NODE_WALK
const FIND_SYNC: SpawnSyncOptionsWithBufferEncoding = {stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 2 ** 31 - 1}

/**
 * A failed find run (a path that vanished or could not be read, a find without -printf): that
 * walk is done again with lstat, which skips what vanished and names what cannot be read. A find
 * that cannot run at all, or printed what FindParser does not know, is not tried again.
 */
function noteFindFailure(error: Error | undefined, parser: FindParser): void {
  if (error || parser.failed) findUsable = false
}

/**
 * One record per path: `[S]type mode size mtime ctime inode NUL relpath NUL linktarget NUL`.
 * Names and link targets are printed as raw bytes (NUL is the one byte neither can hold). Plain
 * names that are always skipped (`.git`, `node_modules`) are pruned by find itself, marked S, so
 * their contents are never read; every other pattern is matched here, as in the lstat walk.
 */
function findArgv(root: string, skip: PathMatcher): string[] {
  const record = '%y %m %s %T@ %C@ %i\\0%P\\0%l\\0'
  const names = [...(skip.names ?? [])].filter((n) => !/[\\*?[\]]/.test(n))
  const prune = names.length
    ? [
        '(',
        ...names.flatMap((n, i) => (i ? ['-o', '-name', n] : ['-name', n])),
        ')',
        '-printf',
        `S${record}`,
        '-prune',
        '-o',
      ]
    : []
  return ['-H', root, '-mindepth', '1', ...prune, '-printf', record]
}

const [SPACE, DOT, MINUS, ZERO, NINE, SEVEN] = [0x20, 0x2e, 0x2d, 0x30, 0x39, 0x37]
const [DIR, FILE, LINK, PRUNED] = [0x64, 0x66, 0x6c, 0x53] // d f l S
class Shape extends Error {}

/**
 * find's records into a Tree, fed in chunks as they arrive. Paths under a skipped directory are
 * left out (find prints a directory before what it holds). Times are rebuilt from whole seconds
 * and nanoseconds exactly as Node computes `mtimeMs` (sec * 1000 + nsec / 1e6), so they compare
 * equal with lstat's everywhere (hash caches). Anything unexpected sets `failed` (the lstat walk
 * runs instead).
 */
class FindParser {
  readonly tree: PackedTree
  failed = false
  private skippedDir = '' // 'dir/' while the records under a skipped directory go by
  private readonly tails: Uint8Array | undefined
  private out: Buffer = Buffer.alloc(0)
  private p = 0

  constructor(
    root: string,
    private readonly skip: PathMatcher,
    private readonly protect: PathMatcher | undefined,
    hint?: SizeHint,
  ) {
    // A little more than last time: a tree that grew a bit is not copied while it is parsed.
    const entries = hint
      ? new TreeEntries(hint.entries + (hint.entries >> 4) + 64, hint.bytes + (hint.bytes >> 4) + 2048)
      : new TreeEntries(4096)
    this.tree = {root, entries, dirsWithSkipped: new Set(), dirsWithProtected: new Set()}
    this.tails = skip.tails
  }

  /** Parses the whole records in `out`; returns where the first incomplete one starts. */
  push(out: Buffer): number {
    this.out = out
    let at = 0
    try {
      while (at < out.length && !this.failed) {
        const nameAt = out.indexOf(0, at) + 1
        const linkAt = nameAt && out.indexOf(0, nameAt) + 1
        const next = linkAt && out.indexOf(0, linkAt) + 1
        if (!next) break
        this.p = at
        this.record(nameAt, linkAt, next)
        at = next
      }
    } catch (err) {
      if (!(err instanceof Shape)) throw err
      this.failed = true
    }
    return at
  }

  private record(nameAt: number, linkAt: number, next: number): void {
    const {out, tree} = this
    // The path as a string only when a pattern may match it (its last two bytes say: see tails).
    const {tails} = this
    const b = out[linkAt - 2]!
    const a = linkAt - 2 > nameAt ? out[linkAt - 3]! : 0
    const rel =
      this.skippedDir || !tails || (a | b) >= 0x80 || tails[tailIndex(a, b)] ? this.name(nameAt, linkAt - 1) : ''
    if (this.skippedDir) {
      if (rel.startsWith(this.skippedDir)) return
      this.skippedDir = ''
    }
    if (out[this.p] === PRUNED) this.p++ // pruned by find; matched below like any other path
    const t = out[this.p++]
    this.expect(SPACE)
    const isDir = t === DIR
    if (rel && this.skip(rel, isDir)) {
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : ''
      tree.dirsWithSkipped.add(parent)
      if (this.protect?.(rel, isDir)) tree.dirsWithProtected.add(parent)
      if (isDir) this.skippedDir = `${rel}/`
      return
    }
    const type = isDir ? 'dir' : t === FILE ? 'file' : t === LINK ? 'symlink' : undefined
    if (!type) return // sockets, fifos, devices: not deployable (as statEntry says)
    const mode = this.int(SEVEN, 8) & 0o7777
    this.expect(SPACE)
    const size = this.int(NINE, 10)
    this.expect(SPACE)
    const mtimeMs = this.ms()
    this.expect(SPACE)
    const ctimeMs = this.ms()
    this.expect(SPACE)
    if (Number.isNaN(mtimeMs) || Number.isNaN(ctimeMs)) {
      // A time before 1970: find's rendering of it is not one to rebuild Node's from; lstat it.
      const path = rel || this.name(nameAt, linkAt - 1)
      const entry = statEntry(`${tree.root}/${path}`)
      if (entry) tree.entries.set(path, entry)
      return
    }
    const inoAt = this.p
    let ino = this.int(NINE, 10)
    // Past 2^53 the digits summed in doubles can round otherwise than Node's uint64 → double.
    if (ino > Number.MAX_SAFE_INTEGER) ino = Number(BigInt(out.toString('latin1', inoAt, this.p)))
    if (this.p !== nameAt - 1) throw new Shape()
    const link = type === 'symlink' ? this.name(linkAt, next - 1) : undefined
    tree.entries.setBytes(out, nameAt, linkAt - 1, type, mode, size, mtimeMs, ctimeMs, ino, link)
  }

  /** decodeName of the bytes from `start` to `end`, without a Buffer view for the usual valid UTF-8. */
  private name(start: number, end: number): string {
    // Node's own Buffer method under toString('utf8', …), whose argument checks cost a third of it.
    const text = (this.out as Buffer & {utf8Slice(start: number, end: number): string}).utf8Slice(start, end)
    return text.includes('\ufffd') ? decodeName(this.out.subarray(start, end)) : text
  }

  private int(maxDigit: number, base: number): number {
    const {out} = this
    const start = this.p
    let v = 0
    for (let c = out[this.p]!; c >= ZERO && c <= maxDigit; c = out[++this.p]!) v = v * base + c - ZERO
    if (this.p === start) throw new Shape()
    return v
  }

  /** `seconds.fraction` (find prints 10 fraction digits; the first 9 are the nanoseconds); NaN for a time before 1970. */
  private ms(): number {
    if (this.out[this.p] === MINUS) {
      while (this.p < this.out.length && this.out[this.p] !== SPACE) this.p++
      return NaN
    }
    const sec = this.int(NINE, 10)
    this.expect(DOT)
    const {out} = this
    let nsec = 0
    for (let k = 0; k < 9; k++) {
      const c = out[this.p++]!
      if (c < ZERO || c > NINE) throw new Shape()
      nsec = nsec * 10 + c - ZERO
    }
    while (out[this.p]! >= ZERO && out[this.p]! <= NINE) this.p++
    return sec * 1000 + nsec / 1e6
  }

  private expect(byte: number): void {
    if (this.out[this.p++] !== byte) throw new Shape()
  }
}

/**
 * The walk with readdir and lstat per entry. Synchronous on purpose: for tens of thousands of
 * small stats the sync calls are several times faster than the thread-pool round trips of
 * fs.promises.
 */
export function walkTreeNode(root: string, skip: PathMatcher, protect?: PathMatcher): PackedTree {
  walks.lstat++
  const entries = new TreeEntries()
  const dirsWithSkipped = new Set<string>()
  const dirsWithProtected = new Set<string>()
  if (!fs.existsSync(root)) return {root, entries, dirsWithSkipped, dirsWithProtected}
  root = path.resolve(root)
  const visit = (relDir: string) => {
    const abs = relDir ? `${root}/${relDir}` : root
    for (const d of readDir(abs)) {
      const rel = relDir ? `${relDir}/${d.name}` : d.name
      const isDir = d.isDirectory()
      if (skip(rel, isDir)) {
        dirsWithSkipped.add(relDir)
        if (protect?.(rel, isDir)) dirsWithProtected.add(relDir)
        continue
      }
      const entry = statEntry(`${abs}/${d.name}`)
      if (!entry) continue
      entries.set(rel, entry)
      if (entry.type === 'dir') visit(rel)
    }
  }
  visit('')
  return {root, entries, dirsWithSkipped, dirsWithProtected}
}

/**
 * A directory's entries with names as decodeName gives them. Read as strings first (the fast
 * path); only a directory where a name came out lossy (U+FFFD) is read again as bytes.
 */
function readDir(abs: string): {name: string; isDirectory(): boolean}[] {
  const dir = fsPath(abs)
  const entries = fs.readdirSync(dir, {withFileTypes: true})
  if (!entries.some((d) => d.name.includes('\ufffd'))) return entries
  return fs
    .readdirSync(dir, {withFileTypes: true, encoding: 'buffer'})
    .map((d) => ({name: decodeName(d.name), isDirectory: () => d.isDirectory()}))
}

/** One path as a tree entry (lstat, never following links); undefined when absent or not deployable (sockets, fifos, devices). */
export function statEntry(abs: string): TreeEntry | undefined {
  let st: fs.Stats
  try {
    st = fs.lstatSync(fsPath(abs))
  } catch {
    return undefined
  }
  const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined
  if (!type) return undefined
  const entry: TreeEntry = {
    type,
    mode: st.mode & 0o7777,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    ino: st.ino,
  }
  if (type === 'symlink') entry.link = decodeName(fs.readlinkSync(fsPath(abs), {encoding: 'buffer'}))
  return entry
}
