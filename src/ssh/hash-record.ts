import zlib from 'node:zlib'
import type {RemoteTreeEntry} from './remote-tree.js'

/** One file: size, mtime and ctime as the host printed them (`sec.fraction`, to the nanosecond), inode, sha256. */
type Row = [size: number, mtime: string, ctime: string, ino: number, hash: string]

/**
 * The host's record of its target files' sha256, each valid while the file's stat is the one
 * recorded: size, mtime and ctime to the nanosecond, inode. An edit in place that keeps size and
 * mtime still moves the ctime (only the kernel sets it), so a recorded hash is never trusted for
 * content it did not see. Kept on the host, in the state dir (`cache/target-hashes.json.gz`), so
 * every controller plans from it; written after a deploy. Losing it only costs hashing again.
 */
export class RemoteHashRecord {
  private constructor(private readonly rows: Map<string, Row>) {}

  /** The record as stored (gzipped JSON `[[path, size, mtime, ctime, ino, sha256], …]`); anything unreadable is an empty record. */
  static parse(gz: Buffer | undefined): RemoteHashRecord {
    const rows = new Map<string, Row>()
    if (gz && gz.length > 0) {
      try {
        const v = JSON.parse(zlib.gunzipSync(gz).toString('utf8')) as unknown
        if (Array.isArray(v))
          for (const r of v as unknown[])
            if (
              Array.isArray(r) &&
              r.length === 6 &&
              typeof r[0] === 'string' &&
              typeof r[1] === 'number' &&
              typeof r[2] === 'string' &&
              typeof r[3] === 'string' &&
              typeof r[4] === 'number' &&
              typeof r[5] === 'string' &&
              /^[0-9a-f]{64}$/.test(r[5])
            )
              rows.set(r[0], r.slice(1) as Row)
      } catch {
        rows.clear()
      }
    }
    return new RemoteHashRecord(rows)
  }

  /** The recorded hash of `rel` while its stat is still the recorded one, else undefined. */
  peek(rel: string, e: RemoteTreeEntry): string | undefined {
    const r = this.rows.get(rel)
    return r && r[0] === e.size && r[1] === e.mtime && r[2] === e.ctime && r[3] === e.ino ? r[4] : undefined
  }

  /** Is there a row for `rel` at all (valid or not)? */
  knows(rel: string): boolean {
    return this.rows.has(rel)
  }

  /** `hash` was read from the file after `e` was taken (so a later change moves its stat). */
  set(rel: string, e: RemoteTreeEntry, hash: string): void {
    this.rows.set(rel, [e.size, e.mtime, e.ctime, e.ino, hash])
  }

  delete(rel: string): void {
    this.rows.delete(rel)
  }

  /** Only the paths `keep` says still exist are stored (the record never outgrows the tree). */
  serialize(keep: (rel: string) => boolean): Buffer {
    const out: (string | number)[][] = []
    for (const [rel, r] of this.rows) if (keep(rel)) out.push([rel, ...r])
    return zlib.gzipSync(JSON.stringify(out), {level: 1})
  }
}
