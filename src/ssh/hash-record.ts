import zlib from 'node:zlib'
import type {RemoteTreeEntry} from './remote-tree.js'

/**
 * One file: its path, size, mtime and ctime as the host printed them (`sec.fraction`, to the
 * nanosecond), inode, sha256; kept as stored (no copy per row when read or written).
 */
type Row = [path: string, size: number, mtime: string, ctime: string, ino: number, hash: string]

/** A stored base's rows, parsed (RemoteHashRecord.parseBase), before its patch is applied. */
export type RecordBase = Map<string, Row>

/**
 * The host's record of its target files' sha256, each valid while the file's stat is the one
 * recorded: size, mtime and ctime to the nanosecond, inode. An edit in place that keeps size and
 * mtime still moves the ctime (only the kernel sets it), so a recorded hash is never trusted for
 * content it did not see. Kept on the host, in the state dir (`cache/target-hashes.json.gz`), so
 * every controller plans from it; written after a deploy. Losing it only costs hashing again.
 */
export class RemoteHashRecord {
  /** Rows set (a Row) or deleted (null) since the record was read or last saved. */
  private readonly dirty = new Map<string, Row | null>()

  private constructor(
    private readonly rows: Map<string, Row>,
    /** Rows in the stored base, and lines in its patch (see `patch`). */
    private readonly base: number,
    private patchLines: number,
  ) {}

  /**
   * The record as stored: a base (gzipped JSON `[[path, size, mtime, ctime, ino, sha256], …]`) and
   * its patch, JSON lines appended since (a row, or `[path]` for a deletion), applied in order.
   * Anything unreadable is an empty base; an unreadable patch line is skipped (a cut-off last
   * line, say). Only a cache: every row is checked by stat before use, so a lost or stale row
   * costs a hash, never a wrong answer.
   */
  static parse(gz: Buffer | undefined, patch?: Buffer): RemoteHashRecord {
    return RemoteHashRecord.withPatch(RemoteHashRecord.parseBase(gz), patch)
  }

  /**
   * The base alone (see `parse`), from the stored gzip or (a string) its JSON: this controller's
   * copy (record-cache.ts), parsed while the host still lists its tree.
   */
  static parseBase(stored: Buffer | string | undefined): RecordBase {
    const rows: RecordBase = new Map()
    if (stored && stored.length > 0) {
      try {
        const text = typeof stored === 'string' ? stored : zlib.gunzipSync(stored).toString('utf8')
        const v = JSON.parse(text) as unknown
        if (Array.isArray(v)) for (const r of v as unknown[]) if (validRow(r)) rows.set(r[0], r)
      } catch {
        rows.clear()
      }
    }
    return rows
  }

  /** A parsed base (taken over, not copied) with its patch applied (see `parse`). */
  static withPatch(rows: RecordBase, patch?: Buffer): RemoteHashRecord {
    const base = rows.size
    let lines = 0
    if (base > 0 && patch && patch.length > 0) {
      for (const line of patch.toString('utf8').split('\n')) {
        let r: unknown
        try {
          r = JSON.parse(line)
        } catch {
          continue
        }
        lines++
        if (Array.isArray(r) && r.length === 1 && typeof r[0] === 'string') rows.delete(r[0])
        else if (validRow(r)) rows.set(r[0], r)
      }
    }
    return new RemoteHashRecord(rows, base, lines)
  }

  /** The recorded hash of `rel` while its stat is still the recorded one, else undefined. */
  peek(rel: string, e: RemoteTreeEntry): string | undefined {
    const r = this.rows.get(rel)
    return r && r[1] === e.size && r[2] === e.mtime && r[3] === e.ctime && r[4] === e.ino ? r[5] : undefined
  }

  /** Is there a row for `rel` at all (valid or not)? */
  knows(rel: string): boolean {
    return this.rows.has(rel)
  }

  /** `hash` was read from the file after `e` was taken (so a later change moves its stat). */
  set(rel: string, e: RemoteTreeEntry, hash: string): void {
    const row: Row = [rel, e.size, e.mtime, e.ctime, e.ino, hash]
    this.rows.set(rel, row)
    this.dirty.set(rel, row)
  }

  delete(rel: string): void {
    if (this.rows.delete(rel)) this.dirty.set(rel, null)
  }

  /**
   * What changed since the record was read or last saved, as patch lines to append to the stored
   * one; undefined when the whole record should be written instead (no stored base, or the patch
   * would outgrow a quarter of it). Either way the caller then stores it and calls `saved`.
   */
  patch(): string | undefined {
    if (patchOutgrows(this.base, this.patchLines + this.dirty.size)) return undefined
    let out = ''
    for (const [rel, r] of this.dirty) out += `${JSON.stringify(r ?? [rel])}\n`
    return out
  }

  /** The stored record now has every change: `patched` lines were appended, or (undefined) it was rewritten whole. */
  saved(patched?: number): void {
    if (patched === undefined) this.patchLines = 0
    else this.patchLines += patched
    this.dirty.clear()
  }

  /** Changes not stored yet. */
  get unsaved(): number {
    return this.dirty.size
  }

  /** Only the paths `keep` says still exist are stored (the record never outgrows the tree). */
  serialize(keep: (rel: string) => boolean): Buffer {
    return this.stored(keep)
  }

  /**
   * `serialize`, its JSON handed to `json` in pieces of about 256 KiB as it is made (this
   * controller's copy is written from them), each piece gzipped as a member of its own (gunzip
   * reads the members as one): no array of rows, string or buffer of the whole JSON is made (at
   * 20k files these were the peak of a first deploy's memory).
   */
  stored(keep: (rel: string) => boolean, json?: (piece: Buffer) => void): Buffer {
    const gz: Buffer[] = []
    let piece = '['
    const flush = (end: string) => {
      const bytes = Buffer.from(piece + end, 'utf8')
      piece = ''
      json?.(bytes)
      gz.push(zlib.gzipSync(bytes, {level: 1}))
    }
    let first = true
    for (const [rel, r] of this.rows) {
      if (!keep(rel)) continue
      piece += first ? JSON.stringify(r) : `,${JSON.stringify(r)}`
      first = false
      if (piece.length >= 1 << 18) flush('')
    }
    flush(']')
    return gz.length === 1 ? gz[0]! : Buffer.concat(gz)
  }
}

/**
 * Whether a patch of `patch` rows on a stored base of `base` rows should rather be a rewrite of the
 * whole: no base, or the patch would outgrow a quarter of it (256 rows at least). The host's hash
 * record and its backup manifests (ssh-backups.ts) follow this one rule.
 */
export function patchOutgrows(base: number, patch: number): boolean {
  return base === 0 || patch > Math.max(256, base / 4)
}

/**
 * A row of the right shape. Its hash is only ever compared with sha256 hex computed elsewhere
 * (the source's, a manifest's), so any 64 characters that are not one can only mean "differs":
 * its length is checked, not each character (a pattern per row was a quarter of the parse).
 */
function validRow(r: unknown): r is Row {
  return (
    Array.isArray(r) &&
    r.length === 6 &&
    typeof r[0] === 'string' &&
    typeof r[1] === 'number' &&
    typeof r[2] === 'string' &&
    typeof r[3] === 'string' &&
    typeof r[4] === 'number' &&
    typeof r[5] === 'string' &&
    r[5].length === 64
  )
}
