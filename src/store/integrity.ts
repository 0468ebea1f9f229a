import {EXIT, HotctlError} from '../errors.js'
import {ID_PATTERN} from '../ids.js'
import type {BackupMeta, MetaRead} from '../state/backups.js'
import {
  addRows,
  describeCheck,
  displayDir,
  isSegment,
  type Manifest,
  type ManifestEntry,
  type ManifestRoot,
  parseChunk,
  type Row,
} from './manifest.js'
import {isHash, type ObjectCheck, type ObjectStore} from './objects.js'

/**
 * Integrity of backups, in the spirit of `git fsck` / `restic check`: a backup's metadata, every
 * directory chunk and every file object is checked against its hash before it is trusted. A
 * restore checks its backup's metadata and chunks, and the objects it will copy, before it writes
 * anything; `hotctl backups verify` checks everything.
 */
export interface Damage {
  /** The backup that is damaged (absent: the store itself). */
  backup?: string
  /** The metadata file (`backups/<id>.json`), a directory listing (chunk), a file's content (object), or the store's index. */
  what: 'metadata' | 'chunk' | 'object' | 'index'
  problem: 'missing' | 'unreadable' | 'invalid' | 'hash-mismatch' | 'size-mismatch'
  /** Path inside the backed-up tree: the directory of a chunk ('' = root), the file of an object. */
  path?: string
  hash?: string
  message: string
}

/** A backup that must not be restored; thrown before a restore writes anything. */
export class BackupDamagedError extends HotctlError {
  constructor(
    readonly backup: string,
    readonly damage: Damage[],
  ) {
    const shown = damage.slice(0, 3).map((d) => d.message)
    const more = damage.length > shown.length ? `; and ${damage.length - shown.length} more` : ''
    super(
      `backup ${backup} is damaged: ${shown.join('; ')}${more}`,
      EXIT.failed,
      `Nothing was restored from it. \`hotctl backups verify ${backup}\` lists the damage; \`hotctl backups verify\` checks the others.`,
      {backup, damage},
    )
    this.name = 'BackupDamagedError'
  }
}

/**
 * Check results by hash, shared by all the backups of one check (backups share most chunks and
 * objects, so each is read and hashed once).
 */
export class StoreChecker {
  private readonly chunks = new Map<string, {rows?: Row[]; problem?: Damage['problem']; detail?: string}>()
  private readonly objects = new Map<string, ObjectCheck>()
  hashedBytes = 0

  /**
   * `shareRows`: keep each chunk's parsed rows for the next backup that shares it (a check of many
   * backups). A check of one backup drops them once its manifest holds them (200k files: tens of MB).
   */
  constructor(
    readonly store: ObjectStore,
    private readonly shareRows = true,
  ) {}

  get chunksChecked(): number {
    return this.chunks.size
  }

  get objectsChecked(): number {
    return this.objects.size
  }

  chunk(hash: string): {rows?: Row[]; problem?: Damage['problem']; detail?: string} {
    const known = this.chunks.get(hash)
    // Rows not kept (shareRows false) are read again: identical directories share one chunk.
    if (known && (known.rows || known.problem)) return known
    const {data, check} = this.store.readChecked(hash)
    if (data && !known) this.hashedBytes += data.length
    let r: {rows?: Row[]; problem?: Damage['problem']; detail?: string}
    if (!data) r = {problem: problemOf(check), detail: describeCheck(check)}
    else {
      try {
        r = {rows: parseChunk(data)}
      } catch (err) {
        r = {problem: 'invalid', detail: `is not a valid directory listing: it ${(err as Error).message}`}
      }
    }
    this.chunks.set(hash, this.shareRows || !r.rows ? r : {})
    return r
  }

  object(hash: string): ObjectCheck {
    let r = this.objects.get(hash)
    if (!r) {
      r = this.store.check(hash)
      if (r.state === 'ok' || r.state === 'mismatch') this.hashedBytes += r.size
      this.objects.set(hash, r)
    }
    return r
  }
}

export interface CheckedBackup {
  meta?: BackupMeta
  manifest?: Manifest
  damage: Damage[]
}

/**
 * A backup's metadata and all its chunks, checked: the metadata is well-formed and agrees with
 * its id, every chunk hashes to its name and parses, every listed directory is a directory of its
 * parent, and the file count and bytes the metadata records are what the listings hold. All
 * chunks are checked (not only those a restore copies from): they define what "equal" means.
 */
export function checkBackup(id: string, read: MetaRead | undefined, checker: StoreChecker): CheckedBackup {
  const checked = checkedMeta(id, read)
  if (!checked.meta) return checked
  const {meta} = checked
  const at = `metadata backups/${id}.json`
  const damage: Damage[] = []
  const manifest: Manifest = new Map()
  /** The directories each listed directory holds (not its rows: the manifest holds those). */
  const subdirsOf = new Map<string, Set<string>>()
  for (const [dir, hash] of Object.entries(meta.root)) {
    const rows = chunkRows(checker, id, dir, hash, damage, subdirsOf)
    if (rows) addRows(manifest, dir, rows)
  }
  // A chunk for a directory its parent does not list as one (a symlink, say) would let a restore write through it.
  for (const dir of subdirsOf.keys()) {
    if (dir === '') continue
    const slash = dir.lastIndexOf('/')
    const parent = slash === -1 ? '' : dir.slice(0, slash)
    const parentDirs = subdirsOf.get(parent)
    if (!parentDirs && parent in meta.root) continue // the parent chunk is damaged: reported already
    if (!parentDirs?.has(dir.slice(slash + 1))) {
      const message = `${at} lists directory ${dir}/, which its parent ${displayDir(parent)} does not hold`
      damage.push({backup: id, what: 'metadata', problem: 'invalid', path: dir, hash: meta.root[dir], message})
    }
  }
  if (damage.length === 0) {
    let files = 0
    let bytes = 0
    for (const e of manifest.values()) {
      if (e.type !== 'file') continue
      files++
      bytes += e.size!
    }
    if (files !== meta.files || bytes !== meta.bytes) {
      const message = `${at} records ${meta.files} files, ${meta.bytes} bytes; its directory listings hold ${files} files, ${bytes} bytes`
      damage.push({backup: id, what: 'metadata', problem: 'invalid', message})
    }
  }
  return damage.length ? {meta, damage} : {meta, manifest, damage}
}

/**
 * The rows of `dir`'s chunk, with the directories it holds noted in `subdirsOf`; undefined when
 * the chunk cannot be read (its damage is added to `damage`).
 */
function chunkRows(
  checker: StoreChecker,
  id: string,
  dir: string,
  hash: string,
  damage: Damage[],
  subdirsOf: Map<string, Set<string>>,
): ReturnType<StoreChecker['chunk']>['rows'] {
  const c = checker.chunk(hash)
  if (!c.rows) {
    const message = `directory ${displayDir(dir)}: chunk ${hash} ${c.detail}`
    damage.push({backup: id, what: 'chunk', problem: c.problem!, path: dir, hash, message})
    return undefined
  }
  subdirsOf.set(dir, new Set(c.rows.flatMap((r) => (r[1] === 'd' ? [r[0]] : []))))
  return c.rows
}

/** A backup's metadata file, well-formed and agreeing with its id, or the damage. */
function checkedMeta(id: string, read: MetaRead | undefined): {meta?: BackupMeta; damage: Damage[]} {
  const at = `metadata backups/${id}.json`
  const damaged = (problem: Damage['problem'], message: string) => ({
    damage: [{backup: id, what: 'metadata' as const, problem, message: `${at} ${message}`}],
  })
  if (!read) return damaged('missing', 'is missing')
  if (read.error !== undefined) return damaged('unreadable', `is unreadable: ${read.error}`)
  const bad = metaProblem(id, read.raw)
  if (bad) return damaged('invalid', bad)
  return {meta: read.raw as BackupMeta, damage: []}
}

/**
 * A tree whose directory listings the caller holds: the snapshot it just took of the live tree
 * (its root and totals) and the walk it was taken from (`isDir`).
 */
export interface KnownTree {
  root: ManifestRoot
  files: number
  bytes: number
  isDir: (rel: string) => boolean
}

/** What checkBackupBeside found: the backup's rows of every directory whose listing differs from the known tree's. */
export interface CheckedBeside {
  meta?: BackupMeta
  /** Directory → the backup's rows ([] for a directory the backup has no listing of); absent when damaged. */
  differing?: Map<string, Row[]>
  /** The known tree's rows of the differing directories it has a listing of (read to count them anyway). */
  known?: Map<string, Row[]>
  damage: Damage[]
}

/**
 * checkBackup for a restore over a tree whose listings are known (the snapshot just taken of the
 * live tree, from the walk the restore plans with). A chunk the known tree has too is the same
 * listing (same hash): it is neither read nor needed. Only the chunks that differ are read and
 * checked, and the checks that span chunks (totals, each directory held by its parent) take the
 * known tree's side for the rest. Returns undefined when a chunk of the known tree cannot be
 * read: the caller then checks the whole backup (checkBackup).
 */
export function checkBackupBeside(
  id: string,
  read: MetaRead | undefined,
  checker: StoreChecker,
  known: KnownTree,
): CheckedBeside | undefined {
  const checked = checkedMeta(id, read)
  if (!checked.meta) return checked
  const {meta} = checked
  const at = `metadata backups/${id}.json`
  const damage: Damage[] = []
  const differing = new Map<string, Row[]>()
  const knownRows = new Map<string, Row[]>()
  let {files, bytes} = known
  const count = (rows: Row[], sign: number) => {
    for (const r of rows)
      if (r[1] === 'f') {
        files += sign
        bytes += sign * (r[3] as number)
      }
  }
  for (const [dir, hash] of Object.entries(known.root)) {
    if (meta.root[dir] === hash) continue
    const rows = checker.chunk(hash).rows
    if (!rows) return undefined
    count(rows, -1)
    differing.set(dir, [])
    knownRows.set(dir, rows)
  }
  /** Directories (of the differing listings) each holds; a missing entry: its chunk is damaged. */
  const subdirsOf = new Map<string, Set<string>>()
  for (const [dir, hash] of Object.entries(meta.root)) {
    if (known.root[dir] === hash) continue
    const rows = chunkRows(checker, id, dir, hash, damage, subdirsOf)
    if (!rows) continue
    count(rows, 1)
    differing.set(dir, rows)
  }
  // As in checkBackup: a chunk for a directory its parent does not list as one is damage.
  for (const [dir, hash] of Object.entries(meta.root)) {
    if (dir === '') continue
    const slash = dir.lastIndexOf('/')
    const parent = slash === -1 ? '' : dir.slice(0, slash)
    const shared = parent in meta.root && meta.root[parent] === known.root[parent]
    const parentDirs = subdirsOf.get(parent)
    if (!shared && !parentDirs && parent in meta.root) continue // the parent chunk is damaged: reported already
    if (shared ? !known.isDir(dir) : !parentDirs?.has(dir.slice(slash + 1))) {
      const message = `${at} lists directory ${dir}/, which its parent ${displayDir(parent)} does not hold`
      damage.push({backup: id, what: 'metadata', problem: 'invalid', path: dir, hash, message})
    }
  }
  if (damage.length === 0 && (files !== meta.files || bytes !== meta.bytes)) {
    const message = `${at} records ${meta.files} files, ${meta.bytes} bytes; its directory listings hold ${files} files, ${bytes} bytes`
    damage.push({backup: id, what: 'metadata', problem: 'invalid', message})
  }
  return damage.length ? {meta, damage} : {meta, differing, known: knownRows, damage}
}

/** The file objects among `entries` that are missing or do not hash to their name. */
export function checkObjects(
  id: string,
  entries: Iterable<[rel: string, e: ManifestEntry]>,
  checker: StoreChecker,
): Damage[] {
  const damage: Damage[] = []
  for (const [rel, e] of entries) {
    if (e.type !== 'file') continue
    const c = checker.object(e.hash!)
    if (c.state === 'ok' && c.size === e.size) continue
    const problem = c.state === 'ok' ? 'size-mismatch' : problemOf(c)
    const detail = c.state === 'ok' ? `is ${c.size} bytes; the listing says ${e.size}` : describeCheck(c)
    damage.push({
      backup: id,
      what: 'object',
      problem,
      path: rel,
      hash: e.hash,
      message: `${rel}: object ${e.hash} ${detail}`,
    })
  }
  return damage
}

export interface IntegrityReport {
  backups: {id: string; ok: boolean; files: number | null; damage: number}[]
  damage: Damage[]
  checked: {backups: number; chunks: number; objects: number; bytes: number}
  /** Not damage: content no backup uses (removed by the next prune that removes a backup), leftovers of interrupted writes. */
  info: {
    orphanObjects: number
    orphanBytes: number
    tempFiles: string[]
    incompleteBackups: string[]
    strayFiles: string[]
  }
}

/**
 * The full check: each backup given (metadata, all chunks, all objects), and with `wholeStore`
 * the store itself: an index naming an object that is not there (a later backup would rely on
 * it) is damage; unused objects and temp files are reported as info.
 */
export function checkStore(
  reads: MetaRead[],
  store: ObjectStore,
  opts: {wholeStore: boolean; incomplete?: string[]; alsoUsed?: Set<string>},
): IntegrityReport {
  const checker = new StoreChecker(store)
  const damage: Damage[] = []
  const backups: IntegrityReport['backups'] = []
  // Objects of other trees kept in the store (the trees as deployed, for `hotctl diff`) are used too.
  const used = new Set<string>(opts.alsoUsed)
  for (const read of reads) {
    const b = checkBackup(read.id, read, checker)
    if (b.meta) for (const hash of Object.values(b.meta.root)) used.add(hash)
    if (b.manifest) {
      for (const e of b.manifest.values()) if (e.hash) used.add(e.hash)
      b.damage.push(...checkObjects(read.id, b.manifest, checker))
    }
    damage.push(...b.damage)
    backups.push({
      id: read.id,
      ok: b.damage.length === 0,
      files: b.manifest ? b.meta!.files : null,
      damage: b.damage.length,
    })
  }
  const info: IntegrityReport['info'] = {
    orphanObjects: 0,
    orphanBytes: 0,
    tempFiles: [],
    incompleteBackups: opts.incomplete ?? [],
    strayFiles: [],
  }
  if (opts.wholeStore) {
    const scan = store.scan()
    for (const [hash, size] of scan.objects) {
      if (used.has(hash)) continue
      info.orphanObjects++
      info.orphanBytes += size
    }
    info.tempFiles = scan.temp
    info.strayFiles = scan.stray
    const ghosts = (scan.index ?? []).filter((h) => !scan.objects.has(h))
    if (ghosts.length > 0) {
      const message =
        `objects/index names ${ghosts.length} object(s) the store does not hold (${ghosts.slice(0, 3).join(', ')}): a later backup ` +
        'of that content would rely on them; delete objects/index (it is rebuilt from the objects on disk)'
      damage.push({what: 'index', problem: 'invalid', hash: ghosts[0], message})
    }
  }
  const checked = {
    backups: reads.length,
    chunks: checker.chunksChecked,
    objects: checker.objectsChecked,
    bytes: checker.hashedBytes,
  }
  return {backups, damage, checked, info}
}

/** What is wrong with a parsed metadata file, as a sentence tail; undefined when it is sound. */
function metaProblem(id: string, raw: unknown): string | undefined {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return 'is not a JSON object'
  const m = raw as Record<string, unknown>
  if (m.id !== id) return `says id ${JSON.stringify(m.id)}, not ${id}`
  if (!ID_PATTERN.test(id)) return 'has an invalid id'
  if (!Number.isSafeInteger(m.files) || (m.files as number) < 0) return 'has an invalid `files`'
  if (!Number.isSafeInteger(m.bytes) || (m.bytes as number) < 0) return 'has an invalid `bytes`'
  if (m.release !== null && typeof m.release !== 'string') return 'has an invalid `release`'
  const strings = (v: unknown) => Array.isArray(v) && v.every((p) => typeof p === 'string')
  if (m.protect !== undefined && !strings(m.protect)) return 'has an invalid `protect`'
  const root = m.root
  if (!root || typeof root !== 'object' || Array.isArray(root)) return 'has no `root` (directory → chunk map)'
  const entries = Object.entries(root as Record<string, unknown>)
  if (!('' in root)) return 'has no chunk for the root directory'
  for (const [dir, hash] of entries) {
    if (dir !== '' && !dir.split('/').every(isSegment))
      return `has an invalid directory ${JSON.stringify(dir)} in \`root\``
    if (!isHash(hash)) return `has an invalid chunk hash for directory ${displayDir(dir)}`
  }
  return undefined
}

function problemOf(check: ObjectCheck): Damage['problem'] {
  return check.state === 'missing' ? 'missing' : check.state === 'unreadable' ? 'unreadable' : 'hash-mismatch'
}
