import fs from 'node:fs'
import path from 'node:path'

/**
 * A controller-side cache file written in pieces, never held whole: into `tmp` (its directory
 * made 0700, the file 0600), put in place by `finish`, or removed by `drop` (a no-op once
 * finished). `reserve` bytes are left at the start for the `head` given to `finish` (known only
 * at the end, e.g. a checksum of the pieces). Never throws: a cache that cannot be written is only
 * missing (the next run transfers again).
 */
export function cacheFileWriter(
  tmp: string,
  reserve = 0,
): {write: (piece: Buffer | string) => void; finish: (file: string, head?: Buffer) => boolean; drop: () => void} {
  let fd: number | undefined
  const drop = () => {
    if (fd === undefined) return
    try {
      fs.closeSync(fd)
      fs.rmSync(tmp, {force: true})
    } catch {
      // only a cache
    }
    fd = undefined
  }
  try {
    fs.mkdirSync(path.dirname(tmp), {recursive: true, mode: 0o700})
    fd = fs.openSync(tmp, 'w', 0o600)
    if (reserve > 0) writeAll(fd, Buffer.alloc(reserve, ' '))
  } catch {
    drop()
  }
  return {
    write: (piece) => {
      if (fd === undefined) return
      try {
        writeAll(fd, typeof piece === 'string' ? Buffer.from(piece) : piece)
      } catch {
        drop()
      }
    },
    finish: (file, head) => {
      if (fd === undefined) return false
      try {
        if (head) writeAll(fd, head, 0)
        fs.closeSync(fd)
        fd = undefined
        fs.renameSync(tmp, file)
        return true
      } catch {
        if (fd !== undefined) drop()
        else fs.rmSync(tmp, {force: true})
        return false
      }
    },
    drop,
  }
}

/** Writes all of `buf` to `fd` (at `position`, else where the file is). */
function writeAll(fd: number, buf: Buffer, position?: number): void {
  for (let at = 0; at < buf.length;)
    at += fs.writeSync(fd, buf, at, buf.length - at, position === undefined ? null : position + at)
}
