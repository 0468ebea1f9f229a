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
import {BackupDamagedError, checkBackup, checkObjects, checkStore, type IntegrityReport, StoreChecker} from '../store/integrity.js'
import {type Manifest, objectsOf} from '../store/manifest.js'
import {ObjectStore} from '../store/objects.js'
import {applyRestore, diffAgainst, planRestore, removeExtras, snapshotTree} from '../store/snapshot.js'
import {statEntry, type Tree, walkTree} from '../store/walk.js'
import type {PreflightItem, PreflightOptions, ReleaseMarker, Target} from './target.js'

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

  async preflight(opts: PreflightOptions): Promise<PreflightItem[]> {
    const {source, target, stateDir} = this.config
    const items: PreflightItem[] = [await rsyncCheck()]
    if (opts.source) items.push(dirCheck('source', source, fs.constants.R_OK))
    const targetExists = fs.existsSync(target)
    if (targetExists || !opts.createTarget) {
      const item = dirCheck('target', target, fs.constants.W_OK)
      if (!targetExists) item.hint = 'Check the `target` path in the config; to deploy into a new directory, pass --create-target.'
      items.push(item)
    } else items.push({...dirCheck('target (to be created)', nearestExisting(target), fs.constants.W_OK), name: 'target (to be created)'})
    items.push(fs.existsSync(stateDir) ? dirCheck('state dir', stateDir, fs.constants.W_OK) : {...dirCheck('state dir', nearestExisting(stateDir), fs.constants.W_OK), name: 'state dir (to be created)'})
    const stateParent = nearestExisting(stateDir)
    const targetParent = nearestExisting(target)
    if (fs.existsSync(stateParent) && fs.existsSync(targetParent)) {
      const same = fs.statSync(targetParent).dev === fs.statSync(stateParent).dev
      items.push({
        name: 'same filesystem',
        ok: same,
        detail: same ? `${stateDir} is on the target's filesystem` : `${stateDir} is on another filesystem than ${target}`,
        hint: same ? undefined : 'Set `stateDir` to a directory beside the target (on its filesystem), or leave it out for the default.',
      })
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
    if (r.exitCode === undefined) {
      throw new HotctlError(`planning scan: could not run ${rsyncBinary()}: ${r.shortMessage}`, EXIT.checksFailed, 'Run `hotctl check`; install rsync or fix HOTCTL_RSYNC. The target was not touched.')
    }
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
    fs.mkdirSync(this.config.target, {recursive: true}) // deploy --create-target (preflight refused it otherwise)
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

  /**
   * Before anything is written, the backup's metadata, all its chunks and the objects this restore
   * will copy (only files that differ from the live tree: O(changed)) are checked against their
   * hashes; a damaged backup throws BackupDamagedError with the target untouched.
   */
  restore(id: string): {written: string[]; removed: string[]} {
    const checker = new StoreChecker(this.store)
    const {meta, manifest} = this.checkedBackup(id, checker)
    const plan = planRestore(manifest, this.walkFor(meta), this.targetCache())
    const damage = checkObjects(id, plan.writes, checker)
    if (damage.length > 0) throw new BackupDamagedError(id, damage)
    return applyRestore(plan, this.store)
  }

  verify(id: string): string[] {
    const {meta, manifest} = this.checkedBackup(id, new StoreChecker(this.store))
    const tree = this.walkFor(meta)
    const cache = this.targetCache()
    const diffs = diffAgainst(manifest, tree, cache)
    cache.save(tree)
    return diffs
  }

  backupIds(): string[] {
    return this.index.readAll().map((r) => r.id)
  }

  checkBackups(id?: string): IntegrityReport {
    const reads = this.index.readAll().filter((r) => id === undefined || r.id === id)
    return checkStore(reads, this.store, {wholeStore: id === undefined, incomplete: id === undefined ? this.index.incomplete() : []})
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

  /** A backup's metadata and manifest, every chunk checked against its hash; throws when damaged. */
  private checkedBackup(id: string, checker: StoreChecker): {meta: BackupMeta; manifest: Manifest} {
    const read = this.index.read(id)
    if (!read) {
      const hint = 'Run `hotctl backups` to see the complete ones.'
      throw new HotctlError(`backup ${id} is missing or incomplete in ${this.config.stateDir}`, EXIT.needsAttention, hint)
    }
    const b = checkBackup(id, read, checker)
    if (!b.manifest) throw new BackupDamagedError(id, b.damage)
    return {meta: b.meta!, manifest: b.manifest}
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
  const want = mode === fs.constants.W_OK ? 'writable' : 'readable'
  try {
    if (!fs.statSync(dir).isDirectory()) return {name, ok: false, detail: `${dir} is not a directory`}
    fs.accessSync(dir, mode)
    return {name, ok: true, detail: `${dir} ${want}`}
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EROFS' ? 'is on a read-only filesystem' : `is not ${want} (${code})`
    return {name, ok: false, detail: `${dir} ${why}`}
  }
}

/** The path itself, or its closest ancestor that exists (where a missing directory would be created). */
function nearestExisting(p: string): string {
  let cur = p
  while (!fs.existsSync(cur) && path.dirname(cur) !== cur) cur = path.dirname(cur)
  return cur
}

/** The rsync hotctl will run (HOTCTL_RSYNC or `rsync` on PATH): present, and 3.1 or newer. */
async function rsyncCheck(): Promise<PreflightItem> {
  const bin = rsyncBinary()
  const named = process.env.HOTCTL_RSYNC ? `${bin} (from HOTCTL_RSYNC)` : bin
  const r = await execa(bin, ['--version'], {reject: false})
  const version = /version\s+(\d+)\.(\d+)\.(\d+)/.exec(String(r.stdout))
  if (r.exitCode !== 0 || !version) {
    const why = r.exitCode === undefined ? 'cannot be run (not found or not executable)' : `\`--version\` failed (exit ${r.exitCode})`
    const hint = process.env.HOTCTL_RSYNC ? 'Point HOTCTL_RSYNC at a working rsync, or unset it.' : 'Install rsync 3.1 or newer (apt-get install rsync).'
    return {name: 'rsync', ok: false, detail: `${named} ${why}`, hint}
  }
  const [major, minor] = [Number(version[1]), Number(version[2])]
  if (major < 3 || (major === 3 && minor < 1)) {
    return {name: 'rsync', ok: false, detail: `${named} is version ${version.slice(1).join('.')}; hotctl needs 3.1 or newer`, hint: 'Install a newer rsync.'}
  }
  return {name: 'rsync', ok: true, detail: `${named}: ${String(r.stdout).split('\n')[0]!}`}
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
