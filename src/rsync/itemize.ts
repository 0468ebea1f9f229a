import {decodeName} from '../file-names.js'

/** One line of rsync --itemize-changes, e.g. `>f.st...... app/x.py` or `*deleting   old.py`. */
export interface ItemizedChange {
  path: string
  kind: 'added' | 'changed' | 'deleted' | 'attrs'
  fileType: 'file' | 'dir' | 'symlink' | 'other'
  code: string
}

const BACKSLASH = 0x5c
const HASH = 0x23
const isOctal = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x37

/**
 * A name as rsync printed it with --8-bit-output: bytes as they are, except control characters
 * other than tab, and a backslash that starts `\#` + three digits, which come as `\#ooo` (octal).
 * So every `\#ooo` in the output is an escape, and everything else is the name's own bytes.
 */
export function unescapeName(printed: Buffer): Buffer {
  if (!printed.includes('\\#')) return printed
  const out: number[] = []
  for (let i = 0; i < printed.length; i++) {
    const c = printed[i]!
    if (
      c === BACKSLASH &&
      printed[i + 1] === HASH &&
      isOctal(printed[i + 2]) &&
      isOctal(printed[i + 3]) &&
      isOctal(printed[i + 4])
    ) {
      out.push(parseInt(printed.toString('latin1', i + 2, i + 5), 8))
      i += 4
    } else out.push(c)
  }
  return Buffer.from(out)
}

/**
 * Parses `%i %n` lines (no `%L`: a name or a link target may itself hold " -> "). Takes rsync's
 * stdout as bytes, so names that are not UTF-8 keep their bytes (see file-names.ts).
 */
export function parseItemize(output: Uint8Array | string): ItemizedChange[] {
  const bytes =
    typeof output === 'string'
      ? Buffer.from(output, 'utf8')
      : Buffer.from(output.buffer, output.byteOffset, output.byteLength)
  const out: ItemizedChange[] = []
  for (let start = 0; start < bytes.length;) {
    let end = bytes.indexOf(0x0a, start)
    if (end === -1) end = bytes.length
    const line = bytes.subarray(start, end)
    start = end + 1
    // Fixed width: an 11-character code, one space, the name (which may itself start with spaces).
    if (line.length < 13 || line[11] !== 0x20) continue
    const code = line.toString('latin1', 0, 11)
    let name = line.subarray(12)
    const isDir = name[name.length - 1] === 0x2f // rsync marks directories with a trailing slash
    if (isDir) name = name.subarray(0, -1)
    const path = decodeName(unescapeName(name))
    if (code.startsWith('*deleting')) {
      out.push({path, kind: 'deleted', fileType: isDir ? 'dir' : 'file', code: '*deleting'})
      continue
    }
    if (!/^[<>ch.][fdLDS][.+?a-zA-Z ]{9}$/.test(code)) continue // rsync's own messages
    const type = code[1]
    const fileType = type === 'f' ? 'file' : type === 'd' ? 'dir' : type === 'L' ? 'symlink' : 'other'
    const kind = code.slice(2).startsWith('+') ? 'added' : code[0] === '.' ? 'attrs' : 'changed'
    out.push({path, kind, fileType, code})
  }
  return out
}
