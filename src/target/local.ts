import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type {ResolvedConfig} from '../config/resolve.js'
import {MAINTENANCE_NAME, MARKER_NAME, OWN_FILES, STEP_BACKUP_DIR_ENV, syncExcludes} from '../config/resolve.js'
import type {Command} from '../config/schema.js'
import {EXIT, HotctlError} from '../errors.js'
import {fsPath, showPath} from '../file-names.js'
import type {ChangeSet} from '../plan/changeset.js'
import {diffTrees, type SameContent, type SameContentAt} from '../plan/diff-trees.js'
import {syncAroundDeletions} from '../plan/sync-order.js'
import {reapGroup, stopGroup, stopOnAbort} from '../process/group.js'
import {describeRsyncExit, filesFromInput, syncArgv} from '../rsync/argv.js'
import {rsyncBinary} from '../rsync/binary.js'
import {type ItemizedChange, parseItemize} from '../rsync/itemize.js'
import {type CommandResult, runCommand} from '../service/run-command.js'
import type {Manifest} from '../store/manifest.js'
import {DIGEST, hashFiles} from '../store/hash-pool.js'
import {removeExtras} from '../store/snapshot.js'
import {statEntry, type Tree} from '../store/walk.js'
import {showArgv, verbose} from '../ui/verbose.js'
import {LocalBackupStore} from './local-backups.js'
import {localPreflight} from './local-preflight.js'
import {LocalStateStore} from './local-state.js'
import {LocalTree} from './local-tree.js'
import type {
  MaintenanceMarker,
  PreflightItem,
  PreflightOptions,
  ReleaseMarker,
  ServiceCommandOptions,
  SyncProgress,
  Target,
  TargetPlan,
} from './target.js'

/** A target directory on this machine, with its state dir beside it; rsync writes, node plans and backs up. */
export class LocalTarget implements Target {
  readonly description: string
  readonly state: LocalStateStore
  readonly backups: LocalBackupStore
  private readonly tree: LocalTree
  private readonly syncExcludes: string[]

  constructor(
    private readonly config: ResolvedConfig,
    warn: (message: string) => void,
  ) {
    this.description = config.target
    this.tree = new LocalTree(config)
    this.state = new LocalStateStore(config.stateDir, warn)
    this.backups = new LocalBackupStore(this.tree)
    this.syncExcludes = syncExcludes(config)
  }

  async identity(): Promise<{user: string; host: string}> {
    return {user: os.userInfo().username, host: os.hostname()}
  }

  preflight(opts: PreflightOptions): Promise<PreflightItem[]> {
    return localPreflight(this.config, opts)
  }

  async readMarker(): Promise<ReleaseMarker | null> {
    return this.tree.readMarker()
  }

  async writeMarker(marker: ReleaseMarker): Promise<void> {
    this.backups.targetWritten()
    const file = path.join(this.config.target, MARKER_NAME)
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, `${JSON.stringify(marker, null, 2)}\n`)
    fs.renameSync(tmp, file)
  }

  async writeMaintenance(m: MaintenanceMarker): Promise<void> {
    const file = path.join(this.config.target, MAINTENANCE_NAME)
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, `${JSON.stringify(m)}\n`)
    fs.renameSync(tmp, file)
  }

  async clearMaintenance(): Promise<void> {
    fs.rmSync(path.join(this.config.target, MAINTENANCE_NAME), {force: true})
  }

  async writeStateFile(file: string, text: string): Promise<void> {
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, text, {mode: 0o600})
    fs.renameSync(tmp, file)
  }

  async readStateFile(file: string): Promise<string | undefined> {
    try {
      return fs.readFileSync(file, 'utf8')
    } catch {
      return undefined
    }
  }

  async planChanges(source: string, opts: {dryRun: boolean}): Promise<TargetPlan> {
    // Both trees walked here (one lstat each, no rsync scan): the target's walk is reused by the
    // backup and the sync. Hashes come from the records kept in the state dir, checked by stat.
    const missing = sourceProblem(source)
    if (missing)
      throw new HotctlError(
        missing,
        EXIT.failed,
        'Fix `source` in the config (or the path it names); the target was not touched.',
      )
    const {src, dst} = await this.tree.walkBoth(source)
    refuseReplacingProtected(source, dst)
    const srcCache = this.tree.sourceCache(source)
    const dstCache = this.tree.targetCache()
    // Content decides what the quick check cannot. The hashes planning needs and no record has
    // (all of a fresh clone's) are collected by the walk's comparison, read on every core, then
    // compared: the pairs that differ are changed. Held as slots of the walks and the caches in
    // typed arrays (issue 10, memory per file: a fresh clone of 200k files has 200k of them; as
    // strings and objects they held ~37 MB more at 200k), each path made again only when read.
    const most = src.entries.size
    /** Per pending file: its slot in the source's walk and in the target's. */
    const pendingAt = new Int32Array(most * 2)
    /** Per pending file: its source's and its target's cache slot (-1 until hashed). */
    const cacheSlots = new Int32Array(most * 2)
    /** Hashes to read: pending index × 2 + side (0 source, 1 target). */
    const toHash = new Int32Array(most * 2)
    let pending = 0
    let hashing = 0
    // By the walks' slots: no path or entry is made for a file whose content is the same.
    const sameAt: SameContentAt = (s, d, mtimeEqual) => {
      const srcSlot = srcCache.validSlotAt(src.entries, s)
      const dstSlot = dstCache.validSlotAt(dst.entries, d)
      if (mtimeEqual) {
        // rsync's quick check (same size and mtime: unchanged) holds while the target file is as
        // hotctl recorded it. One changed behind its back (an in-place edit that kept size and
        // mtime moves the ctime) is compared by content; so is one whose source hash is known.
        if (dstSlot >= 0) return srcSlot < 0 || srcCache.sameHash(srcSlot, dstCache, dstSlot)
        if (!dstCache.knowsAt(dst.entries, d)) return true // no record (never deployed by hotctl): as rsync -a
      }
      if (srcSlot >= 0 && dstSlot >= 0) return srcCache.sameHash(srcSlot, dstCache, dstSlot)
      const p = pending++
      pendingAt[p * 2] = s
      pendingAt[p * 2 + 1] = d
      cacheSlots[p * 2] = srcSlot
      cacheSlots[p * 2 + 1] = dstSlot
      if (srcSlot < 0) toHash[hashing++] = p * 2
      if (dstSlot < 0) toHash[hashing++] = p * 2 + 1
      return true // decided below, once hashed
    }
    const sameContent: SameContent = (rel, _s, _d, mtimeEqual, at) =>
      sameAt(at ? at.src : src.entries.slotOf(rel), at ? at.dst : dst.entries.slotOf(rel), mtimeEqual)
    const changes = diffTrees(src, dst, sameContent, (rel) => OWN_FILES.includes(rel), sameAt, OWN_FILES)
    if (hashing > 0) {
      const sides = [src, dst]
      const roots = sides.map((t) => (t.root.endsWith('/') ? t.root : `${t.root}/`))
      const caches = [srcCache, dstCache]
      const slotOf = (i: number) => pendingAt[toHash[i]!]!
      const side = (i: number) => toHash[i]! & 1
      const sizes = new Float64Array(hashing)
      for (let i = 0; i < hashing; i++) sizes[i] = sides[side(i)]!.entries.sizeAt(slotOf(i))
      const digests = await hashFiles(
        {length: hashing, path: (i) => roots[side(i)]! + sides[side(i)]!.entries.nameAt(slotOf(i))},
        sizes,
      )
      for (let i = 0; i < hashing; i++) {
        const {entries} = sides[side(i)]!
        const rel = entries.nameAt(slotOf(i))
        cacheSlots[toHash[i]!] = caches[side(i)]!.recordDigest(rel, entries.entryAt(slotOf(i)), digests, i * DIGEST)
        caches[side(i)]!.hashed++
      }
      const differ: string[] = []
      for (let p = 0; p < pending; p++)
        if (!srcCache.sameHash(cacheSlots[p * 2]!, dstCache, cacheSlots[p * 2 + 1]!))
          differ.push(src.entries.nameAt(pendingAt[p * 2]!))
      if (differ.length > 0) changes.changed = [...changes.changed, ...differ].sort() // as diffTrees orders them
    }
    // Planning is read-only under --dry-run: what was hashed is kept only by a real deploy.
    if (!opts.dryRun) {
      srcCache.save()
      dstCache.save()
    }
    return {changes, walk: dst}
  }

  describeSync(source: string): string[] {
    return [rsyncBinary(), ...syncArgv({source, target: this.config.target, excludes: this.syncExcludes})]
  }

  previewSync(source: string, plan: TargetPlan): Promise<ItemizedChange[]> {
    return this.rsync(source, plan.changes, true)
  }

  async sync(
    source: string,
    plan: TargetPlan,
    signal?: AbortSignal,
    onChild?: (pgid: number) => Promise<void>,
    onProgress?: (p: SyncProgress) => void,
  ): Promise<ItemizedChange[]> {
    const {changes} = plan
    this.backups.targetWritten()
    const tree = (plan.walk as Tree | undefined) ?? this.tree.walk()
    return syncAroundDeletions(source, changes, {
      isTargetDir: (rel) => tree.entries.get(rel)?.type === 'dir',
      remove: (paths) => void removeExtras(this.config.target, paths, tree), // deepest first
      write: () => {
        fs.mkdirSync(this.config.target, {recursive: true}) // deploy --create-target (preflight refused it otherwise)
        return this.rsync(source, changes, false, signal, onChild, onProgress)
      },
    })
  }

  async verifySynced(source: string, plan: TargetPlan): Promise<string[]> {
    const {changes} = plan
    const bad: string[] = []
    const srcCache = this.tree.sourceCache(source)
    const dstCache = this.tree.targetCache()
    for (const rel of [...changes.added, ...changes.changed]) {
      const s = statEntry(path.join(source, rel))
      const d = statEntry(path.join(this.config.target, rel))
      if (!s || !d || s.type !== d.type || (s.type === 'symlink' ? s.link !== d.link : s.mode !== d.mode)) bad.push(rel)
      else if (
        s.type === 'file' &&
        (s.size !== d.size || srcCache.hash(source, rel, s) !== dstCache.hash(this.config.target, rel, d))
      )
        bad.push(rel)
    }
    const written = new Set([...changes.added, ...changes.changed])
    for (const rel of changes.deleted) if (!written.has(rel) && inTree(this.config.target, rel)) bad.push(rel)
    srcCache.save()
    dstCache.save()
    return bad
  }

  runServiceCommand(cmd: Command, opts: ServiceCommandOptions): Promise<CommandResult> {
    return runCommand(cmd, {...opts, cwd: this.config.target})
  }

  async reapChildren(pgids: number[]): Promise<number[]> {
    const left: number[] = []
    // Only groups that still run an rsync or a release step of ours are killed: process ids get reused.
    for (const pgid of pgids)
      if (!(await reapGroup(pgid, ['--files-from=-', `${STEP_BACKUP_DIR_ENV}=`]))) left.push(pgid)
    return left
  }

  async liveFiles(): Promise<Manifest> {
    // Hashes come from the stat-validated cache; nothing is saved: diff is read-only.
    const tree = this.tree.walk()
    const cache = this.tree.targetCache()
    const out: Manifest = new Map()
    for (const [rel, e] of tree.entries) {
      if (e.type === 'file')
        out.set(rel, {type: 'file', mode: e.mode, size: e.size, hash: cache.hash(tree.root, rel, e)})
      else out.set(rel, {type: e.type, mode: e.mode, link: e.link})
    }
    return out
  }

  async readLive(rel: string): Promise<Buffer> {
    return fs.readFileSync(fsPath(path.join(this.config.target, rel)))
  }

  private async rsync(
    source: string,
    changes: ChangeSet,
    dryRun: boolean,
    signal?: AbortSignal,
    onChild?: (pgid: number) => Promise<void>,
    onProgress?: (p: SyncProgress) => void,
  ): Promise<ItemizedChange[]> {
    const writes = [...changes.added, ...changes.changed]
    if (writes.length === 0) return []
    const argv = syncArgv({source, target: this.config.target, excludes: this.syncExcludes, dryRun})
    verbose(`rsync: ${showArgv([rsyncBinary(), ...argv])} (${writes.length} paths on stdin)`)
    // Own process group, journaled: if hotctl is killed, the next run stops it before restoring.
    // node's spawn, not execa: loading execa cost a deploy ~15 ms before rsync started.
    const sub = runChild(rsyncBinary(), argv, filesFromInput(writes))
    try {
      if (sub.pid) await onChild?.(sub.pid) // journaled before the writer is waited for: recovery can stop it
    } catch (err) {
      stopGroup(sub.pid) // not journaled: it must not go on writing unrecorded
      await sub.done
      throw err
    }
    if (onProgress) followItemized(sub.stdout, source, onProgress)
    let canceled = false
    const dispose = stopOnAbort(sub.pid, signal, () => (canceled = true))
    const r = await sub.done
    dispose()
    if (canceled) throw new HotctlError('sync interrupted', EXIT.interrupted)
    if (r.exitCode !== 0) {
      const what = `rsync${dryRun ? ' --dry-run' : ''} failed (exit ${r.exitCode}: ${describeRsyncExit(r.exitCode ?? -1)}): ${lastLines(r.stderr)}`
      throw new HotctlError(what, dryRun ? EXIT.failed : EXIT.restored)
    }
    return parseItemize(r.stdout)
  }
}

/**
 * `bin argv` in its own process group (detached), `input` on its stdin, its output collected:
 * `done` settles when it has exited (exit code -1: killed by a signal, or it could not run, the
 * error then as its stderr).
 */
function runChild(
  bin: string,
  argv: string[],
  input: Buffer,
): {pid?: number; stdout: NodeJS.ReadableStream; done: Promise<{exitCode: number; stdout: Buffer; stderr: Buffer}>} {
  const child = spawn(bin, argv, {detached: true, stdio: ['pipe', 'pipe', 'pipe']})
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  child.stdin.on('error', () => undefined) // a child that exits without reading: its exit code says why
  child.stdin.end(input)
  const done = new Promise<{exitCode: number; stdout: Buffer; stderr: Buffer}>((resolve) => {
    let failed: Error | undefined
    child.on('error', (e) => (failed = e))
    child.on('close', (code) =>
      resolve({
        exitCode: failed ? -1 : (code ?? -1), // -1: killed by a signal
        stdout: Buffer.concat(out),
        stderr: failed ? Buffer.from(failed.message) : Buffer.concat(err),
      }),
    )
  })
  return {pid: child.pid, stdout: child.stdout, done}
}

/** Counts the files rsync reports written (one itemized line each, as it goes) and their sizes. */
export function followItemized(
  out: NodeJS.ReadableStream | null,
  source: string,
  onProgress: (p: SyncProgress) => void,
): void {
  const done: SyncProgress = {files: 0, bytes: 0}
  let rest = Buffer.alloc(0)
  out?.on('data', (chunk: Buffer) => {
    const all = Buffer.concat([rest, chunk])
    const end = all.lastIndexOf(0x0a)
    if (end === -1) return void (rest = all)
    rest = all.subarray(end + 1)
    for (const item of parseItemize(all.subarray(0, end + 1))) {
      if (item.fileType !== 'file') continue
      done.files++
      done.bytes += statEntry(path.join(source, item.path))?.size ?? 0
    }
    onProgress({...done})
  })
}

const lastLines = (text: string | Uint8Array) =>
  (typeof text === 'string' ? text : Buffer.from(text).toString()).trim().split('\n').slice(-3).join(' | ')

/** Is `rel` in the tree under `root`, reached through real directories only (never through a symlink)? */
function inTree(root: string, rel: string): boolean {
  const parts = rel.split('/')
  for (let i = 1; i < parts.length; i++)
    if (statEntry(path.join(root, ...parts.slice(0, i)))?.type !== 'dir') return false
  return statEntry(path.join(root, rel)) !== undefined
}

/**
 * Protected content is never deleted, so a directory holding it cannot become a file or symlink.
 * Refused before anything is touched, naming the path (rsync's own scan would only fail with 23).
 */
export function refuseReplacingProtected(source: string, dst: Tree): void {
  const holders = new Set<string>()
  for (const d of dst.dirsWithProtected)
    for (let p = d; p; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') holders.add(p)
  for (const rel of [...holders].sort()) {
    const src = statEntry(path.join(source, rel))
    if (src && src.type !== 'dir') {
      throw new HotctlError(
        `${showPath(rel)} is a ${src.type} in the source but a directory holding protected paths in the target`,
        EXIT.failed,
        `hotctl never deletes protected content: move it out of ${showPath(rel)} (or stop protecting it), or keep ${showPath(rel)} a directory in the source. The target was not touched.`,
      )
    }
  }
}

/** What is wrong with the source directory, in words, or undefined when it is a readable directory. */
export function sourceProblem(source: string): string | undefined {
  try {
    const st = fs.statSync(source)
    if (!st.isDirectory()) return `source ${source} is a file, not a directory`
    fs.accessSync(source, fs.constants.R_OK | fs.constants.X_OK)
    return undefined
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOENT' ? `source ${source} does not exist` : `source ${source} cannot be read (${code})`
  }
}
