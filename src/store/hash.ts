import crypto from 'node:crypto'
import fs from 'node:fs'
import {fsPath} from '../file-names.js'

/** sha256 of a file's content, hex. Small files are read whole; big ones streamed in chunks. */
export function hashFile(file: string): string {
  const h = crypto.createHash('sha256')
  const fd = fs.openSync(fsPath(file), 'r')
  try {
    const buf = Buffer.allocUnsafe(1 << 20)
    let n: number
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n))
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}
