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
  readManifest,
  type Row,
} from './manifest.js'
import type {ObjectStore} from './objects.js'
import {statEntry, type Tree, type TreeEntry} from './walk.js'

export interface SnapshotResult {
  /** Read back from the store when asked (a snapshot never holds the whole Map). */
  readonly manifest: Manifest
  root: ManifestRoot
  files: number
  bytes: number
  /** Bytes this snapshot added to the store: the content no earlier snapshot holds. */
  added: number
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

/**
 * Records a walked tree: stores only content the store lacks; unchanged files cost nothing.
 * A first backup of a big tree reads every byte, so it yields to the event loop every 50 ms and
 * reports its progress (`onProgress`) when it does.
 */
export async function snapshotTree(
  tree: Tree,
  cache: HashCache,
  store: ObjectStore,
  onProgress?: (p: SnapshotProgress) => void,
): Promise<SnapshotResult> {
  // A walk's order lets each directory's chunk be stored as soon as it is complete (memory: the
  // open directories' rows, not a row per file); another order collects all rows first.
  const manifest = new ManifestWriter(inDepthFirstOrder(tree.entries) ? store : undefined)
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
  for (const [rel, e] of tree.entries) {
    if (Date.now() - yielded >= YIELD_MS) {
      onProgress?.({files, bytes, totalFiles, totalBytes, stored: added})
      await new Promise((resolve) => setImmediate(resolve))
      yielded = Date.now()
    }
    if (e.type === 'file') {
      // A file hotctl has no record of (a first backup) is read once: hashed as it is copied in.
      // One it knows is hashed only if its stat moved, and copied only if the store lacks it.
      let hash = cache.knows(rel) ? cache.hash(tree.root, rel, e) : undefined
      let size = e.size
      if (hash === undefined || !store.has(hash)) {
        // What was really copied, should the file have changed since the walk.
        const put = store.putFile(path.join(tree.root, rel))
        ;({hash, size} = put)
        added += put.added
        cache.record(rel, e, hash)
      }
      manifest.add(rel, {type: 'file', mode: e.mode, size, hash})
      files++
      bytes += size
    } else manifest.add(rel, {type: e.type, mode: e.mode, link: e.link})
  }
  onProgress?.({files, bytes, totalFiles, totalBytes, stored: added})
  const written = manifest.write(store)
  const {root} = written
  return {
    get manifest() {
      return readManifest(root, store)
    },
    root,
    files,
    bytes,
    added: added + written.added,
  }
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
  const writes: RestorePlan['writes'] = []
  for (const [rel, want] of manifest) {
    const have = tree.entries.get(rel)
    if (!have || !sameEntry(want, have, () => cache.hash(tree.root, rel, have))) writes.push([rel, want])
  }
  // Parents first; only what differs is sorted (a rollback of 10 files in a 200k-file tree sorts 10).
  writes.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return {tree, extras, writes}
}

/**
 * planRestore over the directories whose listings differ from the live tree's (`differing`: the
 * backup's rows of each, [] for a directory it has no listing of; see checkBackupBeside). Every
 * other directory of the walk hashed to the backup's listing (same names, types, modes, sizes,
 * content hashes): nothing in it is compared again. The same plan planRestore makes, O(changed)
 * but for one pass over the walk's paths to find the leftovers.
 */
export function planRestoreDirs(differing: Map<string, Row[]>, tree: Tree, cache: HashCache): RestorePlan {
  const want: Manifest = new Map()
  for (const [dir, rows] of differing) addRows(want, dir, rows)
  const extras: string[] = []
  if (differing.size > 0)
    for (const rel of tree.entries.keys()) {
      const slash = rel.lastIndexOf('/')
      if (differing.has(slash === -1 ? '' : rel.slice(0, slash)) && !want.has(rel)) extras.push(rel)
    }
  const writes: RestorePlan['writes'] = []
  for (const [rel, w] of want) {
    const have = tree.entries.get(rel)
    if (!have || !sameEntry(w, have, () => cache.hash(tree.root, rel, have))) writes.push([rel, w])
  }
  writes.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return {tree, extras, writes}
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
 * and the leftovers it was to remove are looked at. O(changed).
 */
export function verifyRestored(plan: RestorePlan, cache: HashCache): string[] {
  const {tree} = plan
  const diffs: string[] = []
  for (const [rel, want] of plan.writes) {
    const have = statEntry(path.join(tree.root, rel))
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
