import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import type {Socket} from 'node:net'
import path from 'node:path'
import {copyBuffer, hashFile} from './hash.js'
import {HashSet} from './hash-set.js'
import {copyWorkers, MIN_PARALLEL_BYTES, STAGED, type StagedBatch, StagingPool} from './put-pool.js'

/** Object names are sha256 hex digests. */
export const isHash = (s: unknown): s is string => typeof s === 'string' && /^[0-9a-f]{64}$/.test(s)

/** What an object's content says about its name. */
export type ObjectCheck =
  | {state: 'ok'; size: number}
  | {state: 'missing'}
  | {state: 'mismatch'; actual: string; size: number}
  | {state: 'unreadable'; error: string}
import {fsPath} from '../file-names.js'

/** sha256 of bytes in memory, hex: one call (crypto.hash, Node ≥ 20.12) costs far less than a Hash object per file. */
/** Names has() looks up on disk before the index is read instead. */
const PROBES = 1024
/** Names out of order in the index file that a prune leaves there (see filterUnread). */
const UNSORTED_MAX = 4096
const HASH_HEX = 64
const NL = 0x0a

/**
 * Does the index file `text` end in at most `most` names out of order? Its names are a sorted
 * run, then the ones appended since it was last written whole. 32 pairs of lines just before the
 * last `most` are compared: all in order, they are in the sorted run (names appended are in no
 * order: 32 pairs in order by chance, 2^-32). A file of fewer lines: true.
 */
export function tailWithin(text: Buffer, most: number): boolean {
  let at = text.length
  for (let i = 0; i < most && at > 0; i++) at = text.lastIndexOf(NL, at - 1)
  let prev: number | undefined
  for (let i = 0; i < 33 && at > 0; i++) {
    const start = text.lastIndexOf(NL, at - 1) + 1
    // compare: 1 when the earlier line sorts before the later one.
    if (prev !== undefined && at - start === HASH_HEX && text.compare(text, start, at, prev, prev + HASH_HEX) <= 0)
      return false
    prev = start
    at = start - 1
  }
  return true
}

const sha256 = (data: Buffer): string =>
  typeof crypto.hash === 'function'
    ? crypto.hash('sha256', data, 'hex')
    : crypto.createHash('sha256').update(data).digest('hex')

/** What putting one file gave: its hash, the bytes it added to the store, and the bytes copied. */
export interface Put {
  hash: string
  added: number
  size: number
}

/** What a parallel copy put, per file: as `putFile` returns it, in arrays (no object per file held while batches wait). */
export interface Puts {
  hashes: string[]
  added: Float64Array
  sizes: Float64Array
}

/** Copies files of one tree into a batch on every core (`ObjectStore.parallelCopier`); `close` before the batch ends. */
export interface ParallelCopier {
  /** Puts the files at these paths under the tree (a batch of BATCH_FILES / BATCH_BYTES at most), as `putFile` each would. */
  put(rels: string[], sizes: number[]): Promise<Puts>
  close(): Promise<void>
}

/**
 * Objects written by a batch (`beginBatch`): already under their final names, in a staging
 * directory of the run (`tmp/<run>/<fan>/<hash>`), invisible to readers until `makeDurable`.
 */
interface Stage {
  dir: string
  /** Fan-out directories made in the staging directory. */
  fans: Set<string>
  count: number
  /** The staged files while there are few (each is fsync'd); dropped past FSYNC_EACH_UP_TO. */
  files?: string[]
  /** Bytes staged since the last background syncfs started (see `writeBehind`). */
  unflushed: number
  /** A background syncfs is running. */
  flushing: boolean
  /** The shell running the background syncfs runs (`writeBehind`); null when it could not run. */
  syncer?: ChildProcess | null
}

/**
 * Content-addressed object store (git-like): `objects/ab/abcdef…` keyed by sha256. Objects are
 * copies, never hard links to live files (a service or editor may write a live file in place).
 * An object appears under its name only after it is fully written, so a crash leaves at most
 * temp files: one by one (written to a temp name, renamed), or in a batch (a backup): written
 * under their final names into a staging directory, made durable together, then moved into place
 * (a fan-out directory the store lacks moves whole: one rename for all its objects).
 */
export class ObjectStore {
  private known?: HashSet
  private indexDirty = false
  /**
   * Names this process stored while it had not read the index (known undefined): has() looks on
   * disk instead, for up to PROBES names; flush appends these to the index file unread.
   */
  private pending = new Set<string>()
  private probes = 0
  /** Names holds() found stored (until this process deletes objects). */
  private readonly held = new Set<string>()
  /** Directories this process made sure exist (a mkdir per object costs at 200k files). */
  private readonly dirsMade = new Set<string>()
  /** Objects this process added outside a batch, not yet made durable (paths while few, else only counted). */
  private unsynced: string[] = []
  private unsyncedMany = false
  private stage?: Stage
  private tempSeq = 0
  private tempPrefix?: string

  constructor(readonly dir: string) {}

  /**
   * `index` lists stored hashes so a backup need not list 20k objects. It only ever names objects
   * that exist: written after new objects land, and before garbage collection deletes any. An
   * object missing from it is merely copied again.
   */
  private get indexFile(): string {
    return path.join(this.dir, 'index')
  }

  pathOf(hash: string): string {
    return path.join(this.dir, hash.slice(0, 2), hash)
  }

  /**
   * Is the object stored? A deploy asks about a few names (the files it wrote, its chunks): one
   * stat each, without reading the index (issue 10: reading the 20k-name index and writing it again
   * cost a deploy ~40 ms of CPU). After PROBES of them the index is read (a backup of many files).
   * An object is under its name only once fully written, as holds() trusts.
   */
  has(hash: string): boolean {
    if (!this.known && this.probes < PROBES) {
      this.probes++
      return this.pending.has(hash) || fs.existsSync(this.pathOf(hash))
    }
    return this.loaded().has(hash)
  }

  /**
   * has() for a few names, without reading the index if this process has not: one stat each (an
   * object is under its name only once fully written). A snapshot reusing a recorded tree's
   * chunks checks a few hundred of them, where reading an index of every object costs more.
   */
  holds(hash: string): boolean {
    if (this.known?.has(hash) || this.held.has(hash)) return true
    if (!fs.existsSync(this.pathOf(hash))) return false
    this.held.add(hash) // a deploy's backup and its record of the tree ask about the same chunks
    return true
  }

  /** The index, read on first use (or, without one, the store listed). */
  private loaded(): HashSet {
    if (!this.known) {
      try {
        this.known = HashSet.read(this.indexFile)
      } catch {
        this.known = HashSet.of(this.listObjects())
        this.indexDirty = true
      }
      for (const hash of this.pending) this.known.add(hash)
      this.pending.clear()
    }
    return this.known
  }

  /** Writes the index if objects were added (atomically). */
  flush(): void {
    if (!this.indexDirty) return
    if (!this.known) {
      // The names stored without the index read go at the end of its file, as they are.
      if (this.pending.size > 0 && !this.appendUnread([...this.pending])) return this.flush()
      this.pending.clear()
      this.indexDirty = false
      return
    }
    if (this.known.appendable) {
      // The few names a deploy adds go at the end of the file this process read (HashSet.parse).
      const fd = fs.openSync(this.indexFile, 'a')
      try {
        this.known.appendTo(fd)
      } finally {
        fs.closeSync(fd)
      }
      this.indexDirty = false
      return
    }
    fs.mkdirSync(this.dir, {recursive: true})
    const tmp = `${this.indexFile}.${process.pid}.tmp`
    const fd = fs.openSync(tmp, 'w')
    try {
      this.known.writeTo(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, this.indexFile)
    this.indexDirty = false
  }

  /**
   * Appends `names` to the index file without reading it (false when there is no index file: the
   * index is then read, or the store listed, as loaded() does).
   */
  private appendUnread(names: string[]): boolean {
    let fd: number
    try {
      fd = fs.openSync(this.indexFile, 'r+')
    } catch {
      this.loaded()
      return false
    }
    try {
      const end = fs.fstatSync(fd).size
      fs.writeSync(fd, `${end > 0 ? '\n' : ''}${names.join('\n')}`, end)
    } finally {
      fs.closeSync(fd)
    }
    return true
  }

  /**
   * The index file without the lines naming `garbage`, and with the names stored since (pending),
   * written atomically, without reading it into a set: false (nothing written) when there is no
   * index file, or when its names out of order (appended after its last full write) have grown
   * past UNSORTED_MAX (then it is read and written whole, sorted).
   */
  private filterUnread(garbage: Set<string>): boolean {
    let text: Buffer
    try {
      text = fs.readFileSync(this.indexFile)
    } catch {
      return false
    }
    if (!tailWithin(text, UNSORTED_MAX)) return false
    const drop: number[] = []
    for (const name of garbage)
      for (let at = text.indexOf(name, 0, 'latin1'); at !== -1; at = text.indexOf(name, at + 1, 'latin1')) {
        const end = at + name.length
        if ((at === 0 || text[at - 1] === NL) && (end === text.length || text[end] === NL)) drop.push(at)
      }
    drop.sort((a, b) => a - b)
    const parts: Buffer[] = []
    let from = 0
    for (const at of drop) {
      // A line and the newline after it (the last line: the one before it).
      const cut = at + HASH_HEX < text.length ? at : Math.max(at - 1, from)
      if (cut > from) parts.push(text.subarray(from, cut))
      from = at + HASH_HEX + 1
    }
    if (from < text.length) parts.push(text.subarray(from))
    const last = parts.at(-1)
    if (last?.at(-1) === NL) parts[parts.length - 1] = last.subarray(0, -1) // the line after it went
    const names = [...this.pending].filter((h) => !garbage.has(h))
    const kept = parts.reduce((n, p) => n + p.length, 0)
    if (names.length > 0) parts.push(Buffer.from(`${kept > 0 ? '\n' : ''}${names.join('\n')}`))
    const tmp = `${this.indexFile}.${process.pid}.tmp`
    const fd = fs.openSync(tmp, 'w')
    try {
      for (const p of parts) for (let at = 0; at < p.length;) at += fs.writeSync(fd, p, at, p.length - at)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, this.indexFile)
    this.pending.clear()
    this.indexDirty = false
    return true
  }

  /** What is really on disk: one readdir per fan-out directory. */
  private listObjects(): Set<string> {
    const found = new Set<string>()
    if (!fs.existsSync(this.dir)) return found
    for (const fan of fs.readdirSync(this.dir)) {
      if (fan.length !== 2) continue
      for (const name of fs.readdirSync(path.join(this.dir, fan))) found.add(name)
    }
    return found
  }

  /**
   * Copies a file in, hashing what is actually copied. Returns its hash and the bytes added. A
   * file that fits the copy buffer is read once (a short read of a regular file is its end),
   * hashed, and written only if the store lacks it.
   */
  putFile(file: string): Put {
    const src = fs.openSync(fsPath(file), 'r')
    try {
      const buf = copyBuffer()
      const n = fs.readSync(src, buf, 0, buf.length, null)
      if (n < buf.length) return {...this.putBytes(buf.subarray(0, n)), size: n}
      return this.putStream(src, buf, n)
    } finally {
      fs.closeSync(src)
    }
  }

  /** A file bigger than the copy buffer: streamed into a temp file, hashed as it is written. */
  private putStream(src: number, buf: Buffer, first: number): Put {
    const tmp = this.tempPath()
    const h = crypto.createHash('sha256')
    const dst = fs.openSync(tmp, 'w', 0o444)
    let size = 0
    try {
      for (let n = first; n > 0; n = fs.readSync(src, buf, 0, buf.length, null)) {
        h.update(buf.subarray(0, n))
        fs.writeSync(dst, buf, 0, n)
        size += n
      }
    } finally {
      fs.closeSync(dst)
    }
    const hash = h.digest('hex')
    if (this.has(hash)) {
      fs.rmSync(tmp, {force: true})
      return {hash, added: 0, size}
    }
    if (!this.stage) fs.renameSync(tmp, this.newObjectPath(hash))
    else {
      // Linked, never renamed over a name a parallel copy staged (its result counts that object).
      const staged = linkNew(tmp, this.newObjectPath(hash))
      fs.rmSync(tmp, {force: true})
      if (!staged) return {hash, added: 0, size}
    }
    this.added(hash, size)
    return {hash, added: size, size}
  }

  putBytes(data: Buffer | string): {hash: string; added: number} {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data)
    const hash = sha256(buf)
    if (this.has(hash)) return {hash, added: 0}
    if (this.stage) {
      // In a batch the staging directory is private: written under its final name, no rename.
      // Found there, a parallel copy (parallelCopier) staged the same content: its result counts it.
      if (!writeNew(this.newObjectPath(hash), buf, true)) return {hash, added: 0}
    } else {
      const tmp = this.tempPath()
      writeNew(tmp, buf)
      fs.renameSync(tmp, this.newObjectPath(hash))
    }
    this.added(hash, buf.length)
    return {hash, added: buf.length}
  }

  read(hash: string): Buffer {
    return fs.readFileSync(this.pathOf(hash))
  }

  /** Reads an object and checks it against its name: the data only when it hashes to it. */
  readChecked(hash: string): {data: Buffer; check: ObjectCheck} | {data?: undefined; check: ObjectCheck} {
    let data: Buffer
    try {
      data = this.read(hash)
    } catch (err) {
      return {check: missingOrUnreadable(err)}
    }
    const actual = crypto.createHash('sha256').update(data).digest('hex')
    return actual === hash
      ? {data, check: {state: 'ok', size: data.length}}
      : {check: {state: 'mismatch', actual, size: data.length}}
  }

  /** Hashes an object's content (streamed) and compares it with its name. */
  check(hash: string): ObjectCheck {
    const file = this.pathOf(hash)
    let size: number
    let actual: string
    try {
      size = fs.statSync(file).size
      actual = hashFile(file)
    } catch (err) {
      return missingOrUnreadable(err)
    }
    return actual === hash ? {state: 'ok', size} : {state: 'mismatch', actual, size}
  }

  /**
   * Copies an object's content to `dest` (a new temp file), hashing what is actually written: a
   * copy that does not hash to the object's name is removed and throws, so it is never renamed
   * into place even if the object changed after it was checked.
   */
  copyOut(hash: string, dest: fs.PathLike, mode: number): void {
    const h = crypto.createHash('sha256')
    const src = fs.openSync(this.pathOf(hash), 'r')
    let dst: number | undefined
    try {
      dst = fs.openSync(dest, 'wx', mode)
      const buf = copyBuffer()
      let n: number
      while ((n = fs.readSync(src, buf, 0, buf.length, null)) > 0) {
        h.update(buf.subarray(0, n))
        fs.writeSync(dst, buf, 0, n)
      }
    } catch (err) {
      if (dst !== undefined) fs.rmSync(dest, {force: true})
      throw err
    } finally {
      fs.closeSync(src)
      if (dst !== undefined) fs.closeSync(dst)
    }
    const actual = h.digest('hex')
    if (actual !== hash) {
      fs.rmSync(dest, {force: true})
      throw new Error(`object ${hash} changed while it was being restored (its content now hashes to ${actual})`)
    }
    fs.chmodSync(dest, mode) // the umask applied to open()
  }

  /**
   * Everything under the store directory, for a full check: object names with their sizes, and
   * what is not an object (temp files of interrupted writes, stray names). Never trusts the index.
   */
  scan(): {objects: Map<string, number>; temp: string[]; stray: string[]; index: string[] | undefined} {
    const objects = new Map<string, number>()
    const temp: string[] = []
    const stray: string[] = []
    let index: string[] | undefined
    if (!fs.existsSync(this.dir)) return {objects, temp, stray, index}
    for (const d of fs.readdirSync(this.dir, {withFileTypes: true})) {
      if (d.name === 'index' && d.isFile()) index = fs.readFileSync(this.indexFile, 'utf8').split('\n').filter(Boolean)
      else if (d.name === 'tmp' && d.isDirectory())
        temp.push(...fs.readdirSync(path.join(this.dir, 'tmp')).map((n) => `tmp/${n}`))
      else if (d.name.startsWith('index.') && d.name.endsWith('.tmp')) temp.push(d.name)
      else if (d.isDirectory() && /^[0-9a-f]{2}$/.test(d.name)) {
        for (const name of fs.readdirSync(path.join(this.dir, d.name))) {
          const st = fs.lstatSync(path.join(this.dir, d.name, name))
          if (isHash(name) && name.startsWith(d.name) && st.isFile()) objects.set(name, st.size)
          else stray.push(`${d.name}/${name}`)
        }
      } else stray.push(d.name)
    }
    return {objects, temp, stray, index}
  }

  /** Deletes objects not in `keep`, and leftover temp files. Returns bytes freed. */
  collectGarbage(keep: Set<string>): number {
    if (!fs.existsSync(this.dir)) return 0
    if (this.stage) this.makeDurable() // the temp files go next: a batch's objects first move into place
    fs.rmSync(path.join(this.dir, 'tmp'), {recursive: true, force: true})
    this.dirsMade.clear()
    this.held.clear()
    const stored = [...this.listObjects()]
    const garbage = stored.filter((h) => !keep.has(h))
    // The index forgets them first: it must never name a deleted object.
    this.known = HashSet.of(stored.filter((h) => keep.has(h)))
    this.pending.clear() // on disk (makeDurable above): listed
    this.indexDirty = true
    this.flush()
    let freed = 0
    for (const hash of garbage) {
      const p = this.pathOf(hash)
      freed += fs.statSync(p).size
      fs.rmSync(p, {force: true})
    }
    return freed
  }

  /**
   * Deletes the given objects (those present), and leftover temp files: an incremental prune's
   * garbage, found without listing the store. Returns bytes freed.
   */
  collectObjects(garbage: Set<string>): number {
    if (!fs.existsSync(this.dir)) return 0
    if (this.stage) this.makeDurable() // the temp files go next: a batch's objects first move into place
    fs.rmSync(path.join(this.dir, 'tmp'), {recursive: true, force: true})
    this.dirsMade.clear()
    this.held.clear()
    if (garbage.size === 0) return 0
    // The index forgets them first: it must never name a deleted object.
    if (this.known || !this.filterUnread(garbage)) {
      this.known = this.loaded().without(garbage)
      this.indexDirty = true
      this.flush()
    }
    let freed = 0
    for (const hash of garbage) {
      const p = this.pathOf(hash)
      try {
        freed += fs.statSync(p).size
      } catch {
        continue // not stored (or already gone)
      }
      fs.rmSync(p, {force: true})
    }
    return freed
  }

  private tempPath(): string {
    const dir = this.ensureDir(path.join(this.dir, 'tmp'))
    this.tempPrefix ??= `${process.pid}-${crypto.randomBytes(6).toString('hex')}`
    return path.join(dir, `${this.tempPrefix}-${this.tempSeq++}`)
  }

  private ensureDir(dir: string): string {
    if (!this.dirsMade.has(dir)) {
      fs.mkdirSync(dir, {recursive: true})
      this.dirsMade.add(dir)
    }
    return dir
  }

  /**
   * Starts a batch (a backup): objects put from now on are written under their final names into a
   * staging directory of this run and appear in the store only at `makeDurable`, all together.
   */
  beginBatch(): void {
    if (this.stage) return
    this.tempPrefix ??= `${process.pid}-${crypto.randomBytes(6).toString('hex')}`
    const tmp = path.join(this.dir, 'tmp')
    removeDeadBatches(tmp)
    const dir = path.join(tmp, `${this.tempPrefix}-batch-${this.tempSeq++}`)
    fs.mkdirSync(dir, {recursive: true})
    this.stage = {dir, fans: new Set(), count: 0, files: [], unflushed: 0, flushing: false}
  }

  /**
   * Drops a batch that failed: its staged objects are deleted, and what this process believed
   * stored is read again from the index (which never names a staged object).
   */
  abortBatch(): void {
    const st = this.stage
    if (!st) return
    this.stage = undefined
    st.syncer?.stdin!.end()
    fs.rmSync(st.dir, {recursive: true, force: true})
    this.known = undefined
    this.pending.clear()
    this.indexDirty = false
  }

  /**
   * Makes the objects this process added durable before anything declares them part of a backup.
   * A batch's objects are made durable *before* they appear under their names: the staged
   * content is synced, moved into place, and the moves synced. A few objects: an fsync each and
   * the directories naming them. Many (a first backup): one syncfs of the filesystem (coreutils
   * `sync -f`), cheaper than thousands of fsyncs.
   */
  makeDurable(): void {
    const st = this.stage
    this.stage = undefined
    st?.syncer?.stdin!.end() // its loop ends after the sync it may be running
    if (st && st.count > 0) {
      if (st.files) for (const f of st.files) fsyncPath(f)
      else syncFs(this.dir)
      const dirs = this.publish(st)
      if (st.files) for (const d of dirs) fsyncPath(d)
      else syncFs(this.dir)
    } else if (st) fs.rmSync(st.dir, {recursive: true, force: true})
    const added = this.unsynced
    const many = this.unsyncedMany
    this.unsynced = []
    this.unsyncedMany = false
    if (many) return syncFs(this.dir)
    if (added.length === 0) return
    const dirs = new Set<string>([this.dir])
    for (const file of added) {
      fsyncPath(file)
      dirs.add(path.dirname(file))
    }
    for (const dir of dirs) fsyncPath(dir)
  }

  /**
   * Moves a batch's staged objects into the store: a fan-out directory the store lacks in one
   * rename, one that exists object by object. Returns the directories whose entries changed.
   */
  private publish(st: Stage): Set<string> {
    const dirs = new Set<string>()
    for (const fan of st.fans) {
      const from = path.join(st.dir, fan)
      const to = path.join(this.dir, fan)
      if (!this.dirsMade.has(to)) {
        try {
          fs.renameSync(from, to) // also onto an empty directory
          this.dirsMade.add(to)
          dirs.add(this.dir)
          continue
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err
          this.dirsMade.add(to)
        }
      }
      for (const name of fs.readdirSync(from)) fs.renameSync(path.join(from, name), path.join(to, name))
      dirs.add(to)
    }
    fs.rmSync(st.dir, {recursive: true, force: true})
    return dirs
  }

  /**
   * Starts a syncfs in the background while a big batch is still being copied: the kernel would
   * otherwise start writing the staged content back only at `makeDurable` (or once a tenth of
   * memory is dirty), and the backup would wait for all of it there (231 MiB: ~0.6 s here). Only
   * an early start: `makeDurable`'s own syncfs, after the last write, is what makes the batch
   * durable. One at a time; its exit is seen when the copy loop yields.
   */
  private writeBehind(st: Stage): void {
    st.flushing = true
    st.unflushed = 0
    this.writeBehinds++
    const done = () => {
      if (st.flushing) this.writeBehindsDone++
      st.flushing = false
    }
    if (st.syncer === undefined) {
      // One small shell per batch runs each `sync -f` (a line in, a line out when done): a spawn
      // from this big process costs ~10 ms of its time (73 of them in a 2.3 GiB first backup).
      const child = spawn('sh', ['-c', 'while read -r _; do sync -f "$0"; echo; done', this.dir], {
        stdio: ['pipe', 'pipe', 'ignore'],
      })
      const gone = () => {
        st.syncer = null
        done()
      }
      child.on('error', gone) // no shell: syncfs runs spawned one by one, as before
      child.on('exit', gone)
      child.stdout!.on('data', done)
      child.stdin!.on('error', () => undefined) // EPIPE once it is gone: seen by 'exit'
      ;(child.stdin as Socket).unref()
      ;(child.stdout as Socket).unref()
      child.unref()
      st.syncer = child
    }
    if (st.syncer) return void st.syncer.stdin!.write('\n')
    const child = spawn('sync', ['-f', this.dir], {stdio: 'ignore'})
    child.on('exit', done)
    child.on('error', done) // no `sync` binary: makeDurable falls back as before
    child.unref()
  }

  /** Background syncfs runs started by this store, and those seen to end (the tests check a big batch starts them). */
  writeBehinds = 0
  writeBehindsDone = 0

  /** Where a new object is written: its place in the store, or in a batch its place in the staging directory. */
  private newObjectPath(hash: string): string {
    const fan = hash.slice(0, 2)
    const st = this.stage
    if (!st) return path.join(this.ensureDir(path.join(this.dir, fan)), hash)
    if (!st.fans.has(fan)) {
      fs.mkdirSync(path.join(st.dir, fan), {recursive: true}) // a parallel copy may have made it
      st.fans.add(fan)
    }
    return path.join(st.dir, fan, hash)
  }

  /**
   * For a batch that copies much content the store mostly lacks (a first backup): files are
   * copied into the staging directory on this thread and on workers at once (put-pool.ts), each
   * hashed as it is copied, as `putFile` does. Undefined when that is not worth it: no batch open,
   * one core, little content, or a store that already holds much (a parallel copy writes first and
   * learns the hash after; `putFile` skips content the store has).
   */
  parallelCopier(root: string, files: number, bytes: number): ParallelCopier | undefined {
    const st = this.stage
    const workers = copyWorkers()
    if (!st || workers < 1 || bytes < MIN_PARALLEL_BYTES || this.loaded().size * 4 > files) return undefined
    this.tempPrefix ??= `${process.pid}-${crypto.randomBytes(6).toString('hex')}`
    this.loaded().expect(files)
    const dir = root.endsWith('/') ? root : `${root}/`
    const pool = new StagingPool(fsPath(dir), st.dir, copyBuffer(), `${this.tempPrefix}-copy`, workers)
    return {
      put: async (rels, sizes) => this.absorb(st, await pool.put(rels.map(fsPath), sizes), dir, rels),
      close: () => pool.close(),
    }
  }

  /**
   * Counts what a parallel copy staged: the first copy of a content seen here is the batch's
   * object (its fan-out directory is published with the batch); a file it could not open is put
   * here (and fails here, with its own error, if it still cannot be read). A staged copy of
   * content the store already had is removed.
   */
  private absorb(st: Stage, b: StagedBatch, dir: string, rels: string[]): Puts {
    if (this.stage !== st) throw new Error('the backup batch ended before its copies were counted')
    const digests = Buffer.from(b.digests.buffer, b.digests.byteOffset, b.digests.byteLength)
    const out: Puts = {hashes: [], added: new Float64Array(rels.length), sizes: b.sizes}
    for (let i = 0; i < rels.length; i++) {
      if (b.states[i] === STAGED.failed) {
        const put = this.putFile(dir + rels[i])
        out.hashes.push(put.hash)
        out.added[i] = put.added
        out.sizes[i] = put.size
        continue
      }
      const hash = digests.toString('hex', i * 32, i * 32 + 32)
      out.hashes.push(hash)
      if (this.has(hash)) {
        // Stored before this batch: the copy goes, never moved unsynced over the stored object. Not
        // when it was counted earlier in this batch: batches are copied at the same time, so its
        // twin ('already') can come first, and this copy is the staged file that twin counted.
        if (b.states[i] === STAGED.new && fs.existsSync(this.pathOf(hash)))
          fs.rmSync(path.join(st.dir, hash.slice(0, 2), hash), {force: true})
        continue
      }
      st.fans.add(hash.slice(0, 2))
      this.added(hash, b.sizes[i]!)
      out.added[i] = b.sizes[i]!
    }
    return out
  }

  /** Records an object written by this process (staged, or in place and not yet durable). */
  private added(hash: string, size: number): void {
    if (this.known) this.known.add(hash)
    else this.pending.add(hash)
    this.indexDirty = true
    const st = this.stage
    if (st) {
      st.count++
      if (st.files && st.count > FSYNC_EACH_UP_TO) st.files = undefined
      else st.files?.push(this.newObjectPath(hash))
      st.unflushed += size
      if (!st.files && !st.flushing && st.unflushed >= WRITE_BEHIND_BYTES) this.writeBehind(st)
    } else if (!this.unsyncedMany) {
      this.unsynced.push(this.pathOf(hash))
      if (this.unsynced.length > FSYNC_EACH_UP_TO) {
        this.unsyncedMany = true
        this.unsynced = []
      }
    }
  }
}

/** Above this many new objects, one syncfs instead of an fsync each. */
const FSYNC_EACH_UP_TO = 256

/** Staged bytes between background syncfs runs of a big batch (`writeBehind`). */
const WRITE_BEHIND_BYTES = 32 * 1024 * 1024

/**
 * Staging directories of batches whose process is gone (killed during a backup): a first backup's
 * can hold a whole tree's copy. Removed under the target's lock, before a new batch starts.
 */
function removeDeadBatches(tmp: string): void {
  let names: string[]
  try {
    names = fs.readdirSync(tmp)
  } catch {
    return
  }
  for (const name of names) {
    const m = /^(\d+)-[0-9a-f]+-batch-\d+$/.exec(name)
    if (!m || alive(Number(m[1]))) continue
    fs.rmSync(path.join(tmp, name), {recursive: true, force: true})
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** A new file with `data` (fails if the name exists, unless `mayExist`: then nothing is written and it returns false). */
function writeNew(file: string, data: Buffer, mayExist = false): boolean {
  let fd: number
  try {
    fd = fs.openSync(file, 'wx', 0o444)
  } catch (err) {
    if (mayExist && (err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
  try {
    for (let at = 0; at < data.length;) at += fs.writeSync(fd, data, at, data.length - at)
  } finally {
    fs.closeSync(fd)
  }
  return true
}

/** `file` also named `name`, unless that name exists (then false). */
function linkNew(file: string, name: string): boolean {
  try {
    fs.linkSync(file, name)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

/** syncfs(2) of the filesystem holding `dir` (coreutils `sync -f`; a plain `sync` where that fails). */
function syncFs(dir: string): void {
  if (spawnSync('sync', ['-f', dir]).status !== 0) spawnSync('sync')
}

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function missingOrUnreadable(err: unknown): ObjectCheck {
  const e = err as NodeJS.ErrnoException
  return e.code === 'ENOENT' ? {state: 'missing'} : {state: 'unreadable', error: e.code ?? e.message}
}
