/** One line of rsync --itemize-changes, e.g. `>f.st...... app/x.py` or `*deleting   old.py`. */
export interface ItemizedChange {
  path: string
  kind: 'added' | 'changed' | 'deleted' | 'attrs'
  fileType: 'file' | 'dir' | 'symlink' | 'other'
  code: string
}

/** rsync prints unprintable bytes of names as \\#ooo (octal). */
const unescape = (name: string) => name.replace(/\\#([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))

export function parseItemize(output: string): ItemizedChange[] {
  const out: ItemizedChange[] = []
  for (const line of output.split('\n')) {
    // Fixed width: an 11-character code, one space, the name (which may itself start with spaces).
    if (line.length < 13 || line[11] !== ' ') continue
    const code = line.slice(0, 11)
    const name = line.slice(12)
    if (code.startsWith('*deleting')) {
      out.push({path: unescape(name.replace(/\/$/, '')), kind: 'deleted', fileType: name.endsWith('/') ? 'dir' : 'file', code: '*deleting'})
      continue
    }
    if (!/^[<>ch.][fdLDS][.+?a-zA-Z ]{9}$/.test(code)) continue // rsync's own messages
    const type = code[1]
    const fileType = type === 'f' ? 'file' : type === 'd' ? 'dir' : type === 'L' ? 'symlink' : 'other'
    const kind = code.slice(2).startsWith('+') ? 'added' : code[0] === '.' ? 'attrs' : 'changed'
    const path = unescape(type === 'L' ? name.replace(/ -> .*$/, '') : name.replace(/\/$/, ''))
    out.push({path, kind, fileType, code})
  }
  return out
}
