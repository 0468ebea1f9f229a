import {spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {execa} from 'execa'
import {stopOnAbort} from '../process/group.js'
import type {ResolvedConfig} from '../config/resolve.js'
import {MARKER_NAME, syncExcludes} from '../config/resolve.js'
import {EXIT, HotctlError} from '../errors.js'
import {type ChangeSet, changeSetFromItemize} from '../plan/changeset.js'
import {showPath} from '../file-names.js'
import {compilePatterns, matchesPathOrParent, type PathMatcher, rsyncPatterns} from '../plan/patterns.js'
import {describeRsyncExit, filesFromInput, planArgv, syncArgv} from '../rsync/argv.js'
import {type ItemizedChange, parseItemize} from '../rsync/itemize.js'
import {type BackupMeta, BackupIndex} from '../state/backups.js'
import {Journal} from '../state/journal.js'
import {acquireLock, currentOwner, type LockOwner, readLock} from '../state/lock.js'
import {HashCache} from '../store/hash-cache.js'
import {objectsOf, readManifest} from '../store/manifest.js'
import {ObjectStore} from '../store/objects.js'
import {diffAgainst, removeExtras, restoreTree, snapshotTree} from '../store/snapshot.js'
import {statEntry, type Tree, walkTree} from '../store/walk.js'
import type {PreflightItem, ReleaseMarker, Target} from './target.js'

/** A target directory on this machine, with its state dir beside it. */
export class LocalTarget implements Target {
  readonly description: string
  readonly journal: Journal
  private readonly skip: PathMatcher
  private readonly protected: PathMatcher
  private readonly store: ObjectStore
  private readonly index: BackupIndex
  private readonly lockFile: string
  private readonly syncExcludes: string[]
  private readonly caches = new Map<string, HashCache>()
  /** The target walk of the last plan, reused by the backup and the sync that follow it. */
  private planned?: Tree

  constructor(private readonly config: ResolvedConfig) {
    this.description = config.target
    // The state dir is created by the first write (lock, journal, backup), never by a read-only command.
    this.journal = new Journal(path.join(config.stateDir, 'journal.jsonl'))
    this.skip = compilePatterns([...config.exclude, ...config.protect])
    this.protected = compilePatterns(config.protect)
    this.store = new ObjectStore(path.join(config.stateDir, 'objects'))
    this.index = new BackupIndex(path.join(config.stateDir, 'backups'))
    this.lockFile = path.join(config.stateDir, 'lock')
    this.syncExcludes = syncExcludes(config)
  }

  async preflight(): Promise<PreflightItem[]> {
    const {source, target, stateDir} = this.config
    const items: PreflightItem[] = []
    const rsync = await execa(rsyncBinary(), ['--version'], {reject: false})
    items.push({name: 'rsync', ok: rsync.exitCode === 0, detail: rsync.exitCode === 0 ? String(rsync.stdout).split('\n')[0]! : 'rsync not found: install it (apt-get install rsync)'})
    items.push(dirCheck('source', source, fs.constants.R_OK))
    items.push(dirCheck('target', target, fs.constants.W_OK))
    items.push(fs.existsSync(stateDir) ? dirCheck('state dir', stateDir, fs.constants.W_OK) : {...dirCheck('state dir', path.dirname(stateDir), fs.constants.W_OK), name: 'state dir (to be created)'})
    const stateParent = fs.existsSync(stateDir) ? stateDir : path.dirname(stateDir)
    if (fs.existsSync(target) && fs.existsSync(stateParent)) {
      const same = fs.statSync(target).dev === fs.statSync(stateParent).dev
      items.push({name: 'same filesystem', ok: same, detail: same ? `${stateDir} is on the target's filesystem` : `${stateDir} is on another filesystem than ${target}: set stateDir beside the target`})
    }
    return items
  }

  lock(command: string, onStale: (old: LockOwner) => void): () => void {
    return acquireLock(this.lockFile, currentOwner(command), onStale)
  }

  readLock(): LockOwner | undefined {
    return readLock(this.lockFile)
  }

  readMarker(): ReleaseMarker | null {
    return readMarkerFile(path.join(this.config.target, MARKER_NAME))
  }

  writeMarker(marker: ReleaseMarker): void {
    const file = path.join(this.config.target, MARKER_NAME)
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, `${JSON.stringify(marker, null, 2)}\n`)
    fs.renameSync(tmp, file)
  }

  async planChanges(source: string): Promise<ChangeSet> {
    // rsync scans both trees in its own processes while this one walks the target for the backup.
    // Excludes are perishable there: a directory holding only them can go, or change type.
    const {protect, exclude, target} = this.config
    const argv = planArgv({source, target, excludes: rsyncPatterns([...protect, MARKER_NAME]), perishable: rsyncPatterns(exclude)})
    const scan = execa(rsyncBinary(), argv, {reject: false, encoding: 'buffer'})
    const dst = this.walkTarget()
    const r = await scan
    refuseReplacingProtected(source, dst)
    if (r.exitCode !== 0) {
      throw new HotctlError(`planning scan (rsync --dry-run) failed (exit ${r.exitCode}: ${describeRsyncExit(r.exitCode ?? -1)}): ${lastLines(r.stderr)}`, EXIT.checksFailed, 'Check that source and target are readable; the target was not touched.')
    }
    const srcCache = this.sourceCache(source)
    const dstCache = this.targetCache()
    const sameContent = (rel: string) => {
      const s = statEntry(path.join(source, rel))
      const d = dst.entries.get(rel)
      return !!s && !!d && s.type === 'file' && d.type === 'file' && s.size === d.size && srcCache.hash(source, rel, s) === dstCache.hash(dst.root, rel, d)
    }
    // rsync was given the same patterns; this is the guard that does not depend on it agreeing.
    const notOurs = (rel: string, isDir: boolean) => rel === MARKER_NAME || matchesPathOrParent(this.skip, rel, isDir)
    const changes = changeSetFromItemize(parseItemize(r.stdout), sameContent, notOurs)
    // Only what the walk manages may be deleted (never sockets, fifos, devices it leaves alone).
    changes.deleted = changes.deleted.filter((rel) => dst.entries.has(rel))
    srcCache.save()
    dstCache.save()
    this.planned = dst
    return changes
  }

  previewSync(source: string, changes: ChangeSet): Promise<ItemizedChange[]> {
    return this.rsync(source, changes, true)
  }

  async sync(source: string, changes: ChangeSet, signal?: AbortSignal, onChild?: (pgid: number) => void): Promise<ItemizedChange[]> {
    // Deletions are hotctl's own: exactly the planned paths, deepest first. Those in the way of a
    // write (a path changing type, or under one) go first; the rest after rsync, so modules that
    // moved are not missing while the new tree lands.
    const written = new Set([...changes.added, ...changes.changed])
    const inTheWay = (rel: string) => rel.split('/').some((_, i, parts) => written.has(parts.slice(0, i + 1).join('/')))
    const tree = this.planned ?? this.walkTarget()
    this.planned = undefined
    // A directory becoming a file or symlink goes whole, with the excluded leftovers (__pycache__)
    // the plan does not list: rsync would refuse to replace a non-empty directory.
    const replacedDirs = [...written].filter((rel) => tree.entries.get(rel)?.type === 'dir' && statEntry(path.join(source, rel))?.type !== 'dir')
    removeExtras(this.config.target, [...changes.deleted.filter(inTheWay), ...replacedDirs], tree)
    const items = await this.rsync(source, changes, false, signal, onChild)
    removeExtras(this.config.target, changes.deleted.filter((rel) => !inTheWay(rel)), tree)
    return [...changes.deleted.map((p) => ({path: p, kind: 'deleted' as const, fileType: 'file' as const, code: '*deleting'})), ...items]
  }

  verifySynced(source: string, changes: ChangeSet): string[] {
    const bad: string[] = []
    const srcCache = this.sourceCache(source)
    const dstCache = this.targetCache()
    for (const rel of [...changes.added, ...changes.changed]) {
      const s = statEntry(path.join(source, rel))
      const d = statEntry(path.join(this.config.target, rel))
      if (!s || !d || s.type !== d.type || (s.type === 'symlink' ? s.link !== d.link : s.mode !== d.mode)) bad.push(rel)
      else if (s.type === 'file' && (s.size !== d.size || srcCache.hash(source, rel, s) !== dstCache.hash(this.config.target, rel, d))) bad.push(rel)
    }
    const written = new Set([...changes.added, ...changes.changed])
    for (const rel of changes.deleted) if (!written.has(rel) && inTree(this.config.target, rel)) bad.push(rel)
    srcCache.save()
    dstCache.save()
    return bad
  }

  backups(): BackupMeta[] {
    return this.index.list()
  }

  snapshot(id: string, reason: BackupMeta['reason']): BackupMeta {
    // The walk taken by planChanges (under the same lock) is reused by this backup and by the
    // sync's deletions: one stat pass per deploy. The sync drops it.
    const tree = this.planned ?? this.walkTarget()
    const cache = this.targetCache()
    const snap = snapshotTree(tree, cache, this.store)
    this.store.flush()
    cache.forget(tree) // saved once, after the sync is verified (a lost update only costs a re-read)
    // Content on disk before the metadata that declares the backup complete (one syncfs, not one
    // fsync per object).
    flushFilesystem(this.config.stateDir)
    const marker = this.readMarker()
    const meta: BackupMeta = {id, time: new Date().toISOString(), reason, release: marker?.id ?? null, gitSha: marker?.gitSha ?? null, files: snap.files, bytes: snap.bytes, added: snap.added, protect: this.config.protect, root: snap.root}
    this.index.write(meta)
    return meta
  }

  restore(id: string): {written: string[]; removed: string[]} {
    const meta = this.requireBackup(id)
    return restoreTree(readManifest(meta.root, this.store), this.walkFor(meta), this.store, this.targetCache())
  }

  verify(id: string): string[] {
    const meta = this.requireBackup(id)
    const tree = this.walkFor(meta)
    const cache = this.targetCache()
    const diffs = diffAgainst(readManifest(meta.root, this.store), tree, cache)
    cache.save(tree)
    return diffs
  }

  prune(keep: number, pinned: string[]): {removed: string[]; freedBytes: number} {
    const all = this.index.list()
    const kept = new Set(all.slice(-keep).map((b) => b.id))
    for (const id of pinned) kept.add(id)
    const removed = all.filter((b) => !kept.has(b.id)).map((b) => b.id)
    for (const id of removed) this.index.remove(id)
    if (removed.length === 0) return {removed, freedBytes: 0}
    const live = objectsOf(all.filter((b) => kept.has(b.id)).map((b) => b.root), this.store)
    return {removed, freedBytes: this.store.collectGarbage(live)}
  }

  private requireBackup(id: string): BackupMeta {
    const meta = this.index.get(id)
    if (!meta) throw new HotctlError(`backup ${id} is missing or incomplete in ${this.config.stateDir}`, EXIT.needsAttention, 'Run `hotctl backups` to see the complete ones.')
    return meta
  }

  /** Paths protected now or when the backup was taken stay untouched (the config may have changed). */
  private walkFor(meta: BackupMeta): Tree {
    const protect = [...this.config.protect, ...(meta.protect ?? [])]
    return walkTree(this.config.target, compilePatterns([...this.config.exclude, ...protect]), compilePatterns(protect))
  }

  private walkTarget(): Tree {
    return walkTree(this.config.target, this.skip, this.protected)
  }

  private targetCache(): HashCache {
    return this.cache(path.join(this.config.stateDir, 'cache', 'target-hashes.json'))
  }

  /** One cache per source path: CI checkouts in different places do not mix. */
  private sourceCache(source: string): HashCache {
    const key = crypto.createHash('sha256').update(source).digest('hex').slice(0, 12)
    return this.cache(path.join(this.config.stateDir, 'cache', `source-${key}.json`))
  }

  /** Each cache file is read once per process and written only when something was hashed. */
  private cache(file: string): HashCache {
    let c = this.caches.get(file)
    if (!c) this.caches.set(file, (c = HashCache.open(file)))
    return c
  }

  private async rsync(source: string, changes: ChangeSet, dryRun: boolean, signal?: AbortSignal, onChild?: (pgid: number) => void): Promise<ItemizedChange[]> {
    const writes = [...changes.added, ...changes.changed]
    if (writes.length === 0) return []
    const argv = syncArgv({source, target: this.config.target, excludes: this.syncExcludes, dryRun})
    // Own process group, journaled: if hotctl is killed, the next run stops it before restoring.
    const sub = execa(rsyncBinary(), argv, {input: filesFromInput(writes), reject: false, detached: true, encoding: 'buffer'})
    if (sub.pid) onChild?.(sub.pid)
    let canceled = false
    const dispose = stopOnAbort(sub.pid, signal, () => (canceled = true))
    const r = await sub
    dispose()
    if (canceled) throw new HotctlError('sync interrupted', EXIT.interrupted)
    if (r.exitCode !== 0) {
      const what = `rsync${dryRun ? ' --dry-run' : ''} failed (exit ${r.exitCode}: ${describeRsyncExit(r.exitCode ?? -1)}): ${lastLines(r.stderr)}`
      throw new HotctlError(what, dryRun ? EXIT.checksFailed : EXIT.restored)
    }
    return parseItemize(r.stdout)
  }

}

/** syncfs of the state dir's filesystem (coreutils `sync -f`), or a plain sync where -f is missing. */
function flushFilesystem(dir: string): void {
  if (spawnSync('sync', ['-f', dir]).status !== 0) spawnSync('sync')
}

const lastLines = (text: string | Uint8Array) => (typeof text === 'string' ? text : Buffer.from(text).toString()).trim().split('\n').slice(-3).join(' | ')

/** Is `rel` in the tree under `root`, reached through real directories only (never through a symlink)? */
function inTree(root: string, rel: string): boolean {
  const parts = rel.split('/')
  for (let i = 1; i < parts.length; i++) if (statEntry(path.join(root, ...parts.slice(0, i)))?.type !== 'dir') return false
  return statEntry(path.join(root, rel)) !== undefined
}

/**
 * Protected content is never deleted, so a directory holding it cannot become a file or symlink.
 * Refused before anything is touched, naming the path (rsync's own scan would only fail with 23).
 */
function refuseReplacingProtected(source: string, dst: Tree): void {
  const holders = new Set<string>()
  for (const d of dst.dirsWithProtected) for (let p = d; p; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') holders.add(p)
  for (const rel of [...holders].sort()) {
    const src = statEntry(path.join(source, rel))
    if (src && src.type !== 'dir') {
      throw new HotctlError(
        `${showPath(rel)} is a ${src.type} in the source but a directory holding protected paths in the target`,
        EXIT.checksFailed,
        `hotctl never deletes protected content: move it out of ${showPath(rel)} (or stop protecting it), or keep ${showPath(rel)} a directory in the source. The target was not touched.`,
      )
    }
  }
}

function dirCheck(name: string, dir: string, mode: number): PreflightItem {
  try {
    fs.accessSync(dir, mode)
    return {name, ok: true, detail: `${dir} ${mode === fs.constants.W_OK ? 'writable' : 'readable'}`}
  } catch (err) {
    return {name, ok: false, detail: `${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'not accessible'}`}
  }
}


export function readMarkerFile(file: string): ReleaseMarker | null {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as ReleaseMarker
    return typeof m.id === 'string' ? m : null
  } catch {
    return null
  }
}

/** HOTCTL_RSYNC names another rsync binary (a newer build, or a wrapper adding e.g. --bwlimit). */
export const rsyncBinary = () => process.env.HOTCTL_RSYNC || 'rsync'

export const currentUser = () => os.userInfo().username
