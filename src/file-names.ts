/**
 * File names are bytes (anything but NUL and '/'), while hotctl's paths are JS strings (change
 * sets, manifests, caches, JSON output). A name that is valid UTF-8 is its plain string; every
 * byte that is not part of valid UTF-8 becomes the lone surrogate U+DC80–U+DCFF (Python's
 * `surrogateescape`, what os.fsdecode does), which no valid UTF-8 can produce. The mapping is
 * lossless both ways, survives JSON (as "\udcff"), and every fs call turns the string back into
 * the exact bytes with `fsPath`.
 */

const ESCAPED = /[\udc80-\udcff]/u

/** The name's bytes as hotctl's string (lossless). */
export function decodeName(bytes: Buffer): string {
  const text = bytes.toString('utf8')
  // Node's decoder is strict (no overlongs, no encoded surrogates): without U+FFFD the text is exact.
  if (!text.includes('\ufffd')) return text
  let out = ''
  for (let i = 0; i < bytes.length;) {
    const n = validSequence(bytes, i)
    if (n > 0) {
      out += bytes.toString('utf8', i, i + n)
      i += n
    } else out += String.fromCharCode(0xdc00 + bytes[i++]!)
  }
  return out
}

/** The exact bytes of a string made by decodeName. */
export function encodeName(name: string): Buffer {
  if (!ESCAPED.test(name)) return Buffer.from(name, 'utf8')
  const parts: Buffer[] = []
  let run = ''
  for (const ch of name) {
    const cp = ch.codePointAt(0)!
    if (cp >= 0xdc80 && cp <= 0xdcff) {
      parts.push(Buffer.from(run, 'utf8'), Buffer.from([cp - 0xdc00]))
      run = ''
    } else run += ch
  }
  parts.push(Buffer.from(run, 'utf8'))
  return Buffer.concat(parts)
}

/** Does a string made by decodeName hold escaped bytes (it is not the UTF-8 of its bytes)? */
export const hasEscapedBytes = (name: string): boolean => ESCAPED.test(name)

/** What to hand to an fs call: the string itself, or its bytes when it holds escaped bytes. */
export const fsPath = (p: string): string | Buffer => (ESCAPED.test(p) ? encodeName(p) : p)

/** A path for messages: as it is when plain, else JSON-quoted (control characters, escaped bytes, edge spaces visible). */
export const showPath = (p: string): string =>
  /^[^\s\p{C}"\\]([^\p{C}"\\]*[^\s\p{C}"\\])?$/u.test(p) ? p : JSON.stringify(p)

/** Length of the valid UTF-8 sequence at `i` (RFC 3629: shortest form, no surrogates), or 0. */
function validSequence(b: Buffer, i: number): number {
  const c = b[i]!
  if (c < 0x80) return 1
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0
  return 0
}
