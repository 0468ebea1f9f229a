import crypto from 'node:crypto'
import fs from 'node:fs'
import {fsPath} from '../file-names.js'

let shared: Buffer | undefined
/**
 * One 1 MiB buffer for the process's file reads: hashing and copying are synchronous, never
 * interleaved, and a buffer per file (20k files: 20 GB allocated) kept the collector busy.
 */
export const copyBuffer = (): Buffer => (shared ??= Buffer.allocUnsafe(1 << 20))

/** One call for a whole file's bytes (crypto.hash, Node ≥ 20.12): no Hash object per file. */
const oneShot = typeof crypto.hash === 'function'

/**
 * sha256 of a file's content, raw (32 bytes), read in chunks through `buf`. With the size the walk
 * saw, a short read once that much is read is the end of the file: no read returning 0 after it
 * (one syscall of two for most files), and a file read whole by its first read is hashed in one
 * call. A file that grew since is read on to its end.
 */
export function hashFileDigest(file: string | Buffer, size = -1, buf = copyBuffer()): Buffer {
  const fd = fs.openSync(typeof file === 'string' ? fsPath(file) : file, 'r')
  try {
    let n = fs.readSync(fd, buf, 0, buf.length, null)
    if (oneShot && n < buf.length && size >= 0 && n >= size) return crypto.hash('sha256', buf.subarray(0, n), 'buffer')
    const h = crypto.createHash('sha256')
    for (let total = n; ; total += n) {
      if (n > 0) h.update(n === buf.length ? buf : buf.subarray(0, n))
      if (n === 0 || (n < buf.length && size >= 0 && total >= size)) break
      n = fs.readSync(fd, buf, 0, buf.length, null)
    }
    return h.digest()
  } finally {
    fs.closeSync(fd)
  }
}

/** sha256 of a file's content, hex. */
export const hashFile = (file: string, size?: number): string => hashFileDigest(file, size).toString('hex')
