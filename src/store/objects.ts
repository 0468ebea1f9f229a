import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {fsPath} from '../file-names.js'

/**
 * Content-addressed object store (git-like): `objects/ab/abcdef…` keyed by sha256. Objects are
 * copies, never hard links to live files (a service or editor may write a live file in place).
 * An object appears only by rename after it is fully written, so a crash leaves at most a temp file.
 */
export class ObjectStore {
  private known?: Set<string>
  private indexDirty = false

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

  has(hash: string): boolean {
    if (!this.known) {
      try {
        this.known = new Set(fs.readFileSync(this.indexFile, 'utf8').split('\n').filter(Boolean))
      } catch {
        this.known = this.listObjects()
        this.indexDirty = true
      }
    }
    return this.known.has(hash)
  }

  /** Writes the index if objects were added (atomically). */
  flush(): void {
    if (!this.indexDirty || !this.known) return
    fs.mkdirSync(this.dir, {recursive: true})
    const tmp = `${this.indexFile}.${process.pid}.tmp`
    fs.writeFileSync(tmp, [...this.known].join('\n'))
    fs.renameSync(tmp, this.indexFile)
    this.indexDirty = false
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

  /** Copies a file in, hashing what is actually copied. Returns its hash and the bytes added. */
  putFile(file: string): {hash: string; added: number; size: number} {
    const tmp = this.tempPath()
    const h = crypto.createHash('sha256')
    const src = fs.openSync(fsPath(file), 'r')
    const dst = fs.openSync(tmp, 'w', 0o444)
    let size = 0
    try {
      const buf = Buffer.allocUnsafe(1 << 20)
      let n: number
      while ((n = fs.readSync(src, buf, 0, buf.length, null)) > 0) {
        h.update(buf.subarray(0, n))
        fs.writeSync(dst, buf, 0, n)
        size += n
      }
    } finally {
      fs.closeSync(src)
      fs.closeSync(dst)
    }
    return {...this.commit(tmp, h.digest('hex'), size), size}
  }

  putBytes(data: Buffer | string): {hash: string; added: number} {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data)
    const hash = crypto.createHash('sha256').update(buf).digest('hex')
    if (this.has(hash)) return {hash, added: 0}
    const tmp = this.tempPath()
    fs.writeFileSync(tmp, buf, {mode: 0o444})
    return this.commit(tmp, hash, buf.length)
  }

  read(hash: string): Buffer {
    return fs.readFileSync(this.pathOf(hash))
  }

  /** Deletes objects not in `keep`, and leftover temp files. Returns bytes freed. */
  collectGarbage(keep: Set<string>): number {
    if (!fs.existsSync(this.dir)) return 0
    fs.rmSync(path.join(this.dir, 'tmp'), {recursive: true, force: true})
    const stored = [...this.listObjects()]
    const garbage = stored.filter((h) => !keep.has(h))
    // The index forgets them first: it must never name a deleted object.
    this.known = new Set(stored.filter((h) => keep.has(h)))
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

  private tempPath(): string {
    const dir = path.join(this.dir, 'tmp')
    fs.mkdirSync(dir, {recursive: true})
    return path.join(dir, `${process.pid}-${crypto.randomBytes(6).toString('hex')}`)
  }

  private commit(tmp: string, hash: string, size: number): {hash: string; added: number} {
    if (this.has(hash)) {
      fs.rmSync(tmp, {force: true})
      return {hash, added: 0}
    }
    const dest = this.pathOf(hash)
    fs.mkdirSync(path.dirname(dest), {recursive: true})
    fs.renameSync(tmp, dest)
    this.known!.add(hash)
    this.indexDirty = true
    return {hash, added: size}
  }
}
