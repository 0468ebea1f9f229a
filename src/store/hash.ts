import crypto from 'node:crypto'
import fs from 'node:fs'
import {fsPath} from '../file-names.js'

let shared: Buffer | undefined
/**
 * One 1 MiB buffer for the process's file reads: hashing and copying are synchronous, never
 * interleaved, and a buffer per file (20k files: 20 GB allocated) kept the collector busy.
 */
export const copyBuffer = (): Buffer => (shared ??= Buffer.allocUnsafe(1 << 20))

/** sha256 of a file's content, hex, read in chunks through the shared buffer. */
export function hashFile(file: string): string {
  const h = crypto.createHash('sha256')
  const fd = fs.openSync(fsPath(file), 'r')
  try {
    const buf = copyBuffer()
    let n: number
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(n === buf.length ? buf : buf.subarray(0, n))
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}
