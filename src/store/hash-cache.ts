import fs from 'node:fs'
import path from 'node:path'
import {hashFile} from './hash.js'
import type {Tree, TreeEntry} from './walk.js'

/** The stat fields a cached hash is validated by. */
export type Stat = Pick<TreeEntry, 'size' | 'mtimeMs' | 'ctimeMs' | 'ino'>

type Row = [size: number, mtimeMs: number, ctimeMs: number, ino: number, hash: string]

/**
 * Content hashes of a tree's files, remembered by stat (size, mtime, ctime, inode): a file whose
 * stat is unchanged is not read again. ctime catches in-place edits that reset mtime. Persisted as
 * one JSON file in the state dir (`[[path, size, mtimeMs, ctimeMs, ino, sha256], …]`); losing it
 * only costs re-reading. Held in a Map: tens of thousands of path keys on a plain object made
 * every lookup slow (and a file named `__proto__` unsafe).
 */
export class HashCache {
  private rows: Map<string, Row>
  private dirty = false
  hashed = 0

  private constructor(
    private readonly file: string | undefined,
    rows: Map<string, Row>,
  ) {
    this.rows = rows
  }

  static open(file?: string): HashCache {
    const rows = new Map<string, Row>()
    if (file) {
      try {
        const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown
        // Only a cache: rows of another shape are dropped and those files are read again (the
        // object form of earlier versions is still read).
        if (Array.isArray(v)) {
          for (const r of v as unknown[])
            if (Array.isArray(r) && typeof r[0] === 'string') rows.set(r[0], r.slice(1) as Row)
        } else if (v && typeof v === 'object') for (const [rel, r] of Object.entries(v)) rows.set(rel, r as Row)
      } catch {
        rows.clear()
      }
    }
    return new HashCache(file, rows)
  }

  /** The recorded hash of `rel` if its stat is still the one recorded (nothing touched it since), else undefined. */
  peek(rel: string, entry: Stat): string | undefined {
    const row = this.rows.get(rel)
    return Array.isArray(row) &&
      row[0] === entry.size &&
      row[1] === entry.mtimeMs &&
      row[2] === entry.ctimeMs &&
      row[3] === entry.ino &&
      typeof row[4] === 'string'
      ? row[4]
      : undefined
  }

  /** Is there a record of `rel` at all (valid or not)? */
  knows(rel: string): boolean {
    return Array.isArray(this.rows.get(rel))
  }

  /** Records `hash` as the content of `rel` with stat `entry` (read by the caller, e.g. while copying it). */
  record(rel: string, entry: Stat, hash: string): void {
    this.rows.set(rel, [entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino, hash])
    this.dirty = true
  }

  /** Hash of the file `rel` under `root`, read from disk only when its stat changed. */
  hash(root: string, rel: string, entry: Stat): string {
    const known = this.peek(rel, entry)
    if (known !== undefined) return known
    const hash = hashFile(root.endsWith('/') ? root + rel : `${root}/${rel}`)
    this.hashed++
    this.rows.set(rel, [entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino, hash])
    this.dirty = true
    return hash
  }

  /** Drops rows for paths no longer in the tree. */
  forget(tree: Tree): void {
    for (const rel of this.rows.keys()) {
      if (!tree.entries.has(rel)) {
        this.rows.delete(rel)
        this.dirty = true
      }
    }
  }

  /** Writes the file (atomically) if anything changed; with a tree, first drops rows no longer in it. */
  save(tree?: Tree): void {
    if (tree) this.forget(tree)
    if (!this.file || !this.dirty) return
    fs.mkdirSync(path.dirname(this.file), {recursive: true})
    const tmp = `${this.file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(Array.from(this.rows, ([rel, row]) => [rel, ...row])))
    fs.renameSync(tmp, this.file)
    this.dirty = false
  }
}
