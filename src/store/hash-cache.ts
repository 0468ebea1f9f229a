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
 * one JSON file in the state dir; losing it only costs re-reading.
 */
export class HashCache {
  private rows: Record<string, Row>
  private dirty = false
  hashed = 0

  private constructor(
    private readonly file: string | undefined,
    rows: Record<string, Row>,
  ) {
    this.rows = rows
  }

  static open(file?: string): HashCache {
    let rows: Record<string, Row> = {}
    if (file) {
      try {
        const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown
        // Only a cache: anything of another shape is dropped and the files are read again.
        rows = v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, Row>) : {}
      } catch {
        rows = {}
      }
    }
    return new HashCache(file, rows)
  }

  /** The recorded hash of `rel` if its stat is still the one recorded (nothing touched it since), else undefined. */
  peek(rel: string, entry: Stat): string | undefined {
    const row = this.rows[rel]
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
    return Array.isArray(this.rows[rel])
  }

  /** Records `hash` as the content of `rel` with stat `entry` (read by the caller, e.g. while copying it). */
  record(rel: string, entry: Stat, hash: string): void {
    this.rows[rel] = [entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino, hash]
    this.dirty = true
  }

  /** Hash of the file `rel` under `root`, read from disk only when its stat changed. */
  hash(root: string, rel: string, entry: Stat): string {
    const known = this.peek(rel, entry)
    if (known !== undefined) return known
    const hash = hashFile(path.join(root, rel))
    this.hashed++
    this.rows[rel] = [entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino, hash]
    this.dirty = true
    return hash
  }

  /** Drops rows for paths no longer in the tree. */
  forget(tree: Tree): void {
    for (const rel of Object.keys(this.rows)) {
      if (!tree.entries.has(rel)) {
        delete this.rows[rel]
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
    fs.writeFileSync(tmp, JSON.stringify(this.rows))
    fs.renameSync(tmp, this.file)
    this.dirty = false
  }
}
