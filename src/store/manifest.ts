import {isHash, type ObjectCheck, type ObjectStore} from './objects.js'

/** What a snapshot records per path: enough to rebuild and to verify by hash. */
export interface ManifestEntry {
  type: 'file' | 'dir' | 'symlink'
  mode: number
  size?: number
  hash?: string
  link?: string
}

export type Manifest = Map<string, ManifestEntry>

/** Per-directory chunk hashes: unchanged directories share their chunk object between snapshots. */
export type ManifestRoot = Record<string, string>

/** One entry of a directory chunk: `[name, 'f', mode, size, hash]`, `[name, 'd', mode]` or `[name, 'l', mode, link]`. */
export type Row = [name: string, type: 'f' | 'd' | 'l', mode: number, sizeOrLink?: number | string, hash?: string]

/** Stores a manifest as one object per directory (git's trees, one level deep). */
export function writeManifest(manifest: Manifest, store: ObjectStore): {root: ManifestRoot; added: number} {
  const writer = new ManifestWriter()
  for (const [rel, e] of manifest) writer.add(rel, e)
  return writer.write(store)
}

/**
 * A manifest built row by row straight into its directory chunks, for a caller that never needs
 * the Map (a snapshot): one compact row per path instead of an entry object and a row. Given a
 * store, it streams: rows must then come in depth-first order (a directory's subtree together,
 * as a walk lists it: `inDepthFirstOrder`), and each directory's chunk is stored as soon as the
 * rows leave its subtree, so only the open directories' rows are held (not one row per file).
 */
export class ManifestWriter {
  private readonly byDir = new Map<string, Row[]>()
  private readonly stored = new Map<string, string>()
  private added = 0
  /** Directories whose subtree the rows are in, outermost first (streaming). */
  private readonly open: string[] | undefined

  /** `partial`: rows of some directories only (the others' chunks are reused): no empty root chunk. */
  constructor(
    private readonly store?: ObjectStore,
    partial = false,
  ) {
    this.open = store ? [''] : undefined
    if (!partial) this.byDir.set('', []) // an empty tree still has its (empty) root chunk
  }

  add(rel: string, e: ManifestEntry): void {
    const slash = rel.lastIndexOf('/')
    const dir = slash === -1 ? '' : rel.slice(0, slash)
    const name = rel.slice(slash + 1)
    const open = this.open
    if (open) {
      while (open.length > 1 && !within(dir, open[open.length - 1]!)) this.close(open.pop()!)
      if (open[open.length - 1] !== dir) throw new Error(`manifest rows out of depth-first order at ${rel}`)
      if (e.type === 'dir') open.push(rel)
    }
    const row: Row =
      e.type === 'file'
        ? [name, 'f', e.mode, e.size, e.hash]
        : e.type === 'dir'
          ? [name, 'd', e.mode]
          : [name, 'l', e.mode, e.link]
    let rows = this.byDir.get(dir)
    if (!rows) this.byDir.set(dir, (rows = []))
    rows.push(row)
  }

  /** Stores the chunks not stored yet; returns the root (directories in order) and the bytes added. */
  write(store: ObjectStore): {root: ManifestRoot; added: number} {
    for (const dir of [...this.byDir.keys()]) this.close(dir, store)
    const root: ManifestRoot = {}
    for (const dir of [...this.stored.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
      root[dir] = this.stored.get(dir)!
    return {root, added: this.added}
  }

  /** Stores one directory's chunk (rows sorted by name) and drops its rows. */
  private close(dir: string, store = this.store!): void {
    const rows = this.byDir.get(dir)
    if (!rows) return // an empty directory has no chunk
    this.byDir.delete(dir)
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    const put = store.putBytes(JSON.stringify(rows))
    this.stored.set(dir, put.hash)
    this.added += put.added
  }
}

/** Is `dir` the directory `top` or inside it? */
const within = (dir: string, top: string) => top === '' || dir === top || dir.startsWith(`${top}/`)

/**
 * Are the paths in depth-first order (each directory's subtree listed together, after the
 * directory itself), so a ManifestWriter can stream them? A walk lists them so; a tree with paths
 * added at the end (the tree as deployed) may not.
 */
export function inDepthFirstOrder(entries: Iterable<[rel: string, e: {type: string}]>): boolean {
  const open = ['']
  for (const [rel, e] of entries) {
    const slash = rel.lastIndexOf('/')
    const dir = slash === -1 ? '' : rel.slice(0, slash)
    while (open.length > 1 && !within(dir, open[open.length - 1]!)) open.pop()
    if (open[open.length - 1] !== dir) return false
    if (e.type === 'dir') open.push(rel)
  }
  return true
}

/**
 * Reads a manifest, checking every chunk against its hash and its rows for shape: throws on the
 * first damaged one (`store/integrity.ts` collects them all, naming the backup).
 */
export function readManifest(root: ManifestRoot, store: ObjectStore): Manifest {
  const manifest: Manifest = new Map()
  for (const [dir, chunk] of Object.entries(root)) {
    const {data, check} = store.readChecked(chunk)
    if (!data) throw new Error(`directory ${displayDir(dir)}: chunk ${chunk} ${describeCheck(check)}`)
    addRows(manifest, dir, parseChunk(data))
  }
  return manifest
}

/** Adds one directory's rows to a manifest. */
export function addRows(manifest: Manifest, dir: string, rows: Row[]): void {
  for (const [name, t, mode, sizeOrLink, hash] of rows) {
    const rel = dir ? `${dir}/${name}` : name
    if (t === 'f') manifest.set(rel, {type: 'file', mode, size: sizeOrLink as number, hash})
    else if (t === 'd') manifest.set(rel, {type: 'dir', mode})
    else manifest.set(rel, {type: 'symlink', mode, link: sizeOrLink as string})
  }
}

/**
 * A chunk's rows, validated: a name is one path segment (never `..` or containing `/`, so a
 * damaged chunk cannot point a restore outside the target), modes are permission bits, files
 * have a size and a sha256, links a target, and no name appears twice. Throws naming the row.
 */
export function parseChunk(data: Buffer): Row[] {
  let rows: unknown
  try {
    rows = JSON.parse(data.toString('utf8'))
  } catch (err) {
    throw new Error(`is not valid JSON (${(err as Error).message})`)
  }
  if (!Array.isArray(rows)) throw new Error('is not a list of entries')
  const seen = new Set<string>()
  rows.forEach((row: unknown, i) => {
    const bad = rowProblem(row)
    if (bad) throw new Error(`entry ${i + 1} ${bad}`)
    const name = (row as Row)[0]
    if (seen.has(name)) throw new Error(`names ${JSON.stringify(name)} twice`)
    seen.add(name)
  })
  return rows as Row[]
}

function rowProblem(row: unknown): string | undefined {
  if (!Array.isArray(row)) return 'is not a list'
  const [name, t, mode, sizeOrLink, hash] = row as unknown[]
  if (!isSegment(name)) return `has an invalid name ${JSON.stringify(name)}`
  const where = JSON.stringify(name)
  if (!Number.isInteger(mode) || (mode as number) < 0 || (mode as number) > 0o7777)
    return `(${where}) has an invalid mode`
  if (t === 'f') {
    if (row.length !== 5) return `(${where}) is a file entry with ${row.length} fields, not 5`
    if (!Number.isSafeInteger(sizeOrLink) || (sizeOrLink as number) < 0) return `(${where}) has an invalid size`
    if (!isHash(hash)) return `(${where}) has an invalid content hash`
  } else if (t === 'd') {
    if (row.length !== 3) return `(${where}) is a directory entry with ${row.length} fields, not 3`
  } else if (t === 'l') {
    if (row.length !== 4) return `(${where}) is a symlink entry with ${row.length} fields, not 4`
    if (typeof sizeOrLink !== 'string' || sizeOrLink === '' || sizeOrLink.includes('\0'))
      return `(${where}) has an invalid link target`
  } else return `(${where}) has an unknown type ${JSON.stringify(t)}`
  return undefined
}

/** One path segment a directory can hold. */
export const isSegment = (s: unknown): s is string =>
  typeof s === 'string' && s !== '' && s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\0')

export const displayDir = (dir: string) => (dir ? `${dir}/` : '(root)')

/** "is missing", "does not match its hash (…)", as a sentence tail. */
export function describeCheck(check: ObjectCheck): string {
  if (check.state === 'missing') return 'is missing'
  if (check.state === 'unreadable') return `is unreadable (${check.error})`
  if (check.state === 'mismatch') return `does not match its hash (its content hashes to ${check.actual})`
  return 'is intact'
}

/**
 * Every object the given manifests need: their chunks and their files' content. Backups share most
 * chunks, so each distinct chunk is read once (ten backups of a 200-directory tree read ~200
 * chunks, not 2,000).
 */
export function objectsOf(roots: ManifestRoot[], store: ObjectStore): Set<string> {
  const chunks = new Set(roots.flatMap((r) => Object.values(r)))
  const out = new Set(chunks)
  for (const chunk of chunks) {
    for (const row of JSON.parse(store.read(chunk).toString('utf8')) as Row[])
      if (row[1] === 'f' && row[4]) out.add(row[4])
  }
  return out
}

/**
 * Objects only the removed manifests (`gone`) used: what an incremental prune may delete. Only the
 * chunks of `gone` that no kept manifest shares are read (a chunk shared is identical content, so
 * everything in it stays), and the kept manifests' chunks are read only when there is such a
 * candidate, to take out what they still use. A chunk of `gone` that cannot be read is skipped: its
 * objects stay (the full sweep of `hotctl backups prune` finds whatever is left unused).
 * A kept chunk is checked against its hash and searched for each candidate's name in its bytes,
 * not parsed (issue 10: a prune after a deploy read ~300 chunks into ~30k rows of garbage): a name
 * found anywhere in it stays. Those of the candidates' own directories are searched first: they
 * hold most candidates (the files that did not change), so few are left for the others.
 */
export function unusedObjects(gone: ManifestRoot[], kept: ManifestRoot[], store: ObjectStore): Set<string> {
  const keptChunks = new Set(kept.flatMap((r) => Object.values(r)))
  const candidates = new Set<string>()
  const dirs = new Set<string>()
  const read = new Set<string>()
  for (const root of gone)
    for (const [dir, chunk] of Object.entries(root)) {
      if (keptChunks.has(chunk) || read.has(chunk)) continue
      read.add(chunk)
      let rows: Row[]
      try {
        rows = JSON.parse(store.read(chunk).toString('utf8')) as Row[]
      } catch {
        continue
      }
      dirs.add(dir)
      candidates.add(chunk)
      // Only names a store object can have: a damaged chunk must not make prune delete a path outside the store.
      for (const row of rows) if (row[1] === 'f' && typeof row[4] === 'string' && isHash(row[4])) candidates.add(row[4])
    }
  if (candidates.size === 0) return candidates
  const order = new Set<string>()
  for (const root of kept) for (const dir of dirs) if (root[dir] !== undefined) order.add(root[dir])
  for (const chunk of keptChunks) order.add(chunk)
  for (const chunk of order) {
    candidates.delete(chunk)
    // A kept chunk that cannot be read, or is not what its name says, stops the prune: what it
    // uses cannot be told apart.
    const {data, check} = store.readChecked(chunk)
    if (!data) throw new Error(`chunk ${chunk} ${describeCheck(check)}`)
    for (const name of candidates) if (data.indexOf(name, 0, 'latin1') !== -1) candidates.delete(name)
    if (candidates.size === 0) break
  }
  return candidates
}
