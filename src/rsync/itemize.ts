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
    if (!line.trim()) continue
    if (line.startsWith('*deleting')) {
      const p = unescape(line.slice('*deleting'.length).trimStart())
      out.push({path: p.replace(/\/$/, ''), kind: 'deleted', fileType: p.endsWith('/') ? 'dir' : 'file', code: '*deleting'})
      continue
    }
    const m = /^([<>ch.*])([fdLDS])([.+?a-zA-Z ]{9,10}) (.+)$/.exec(line)
    if (!m) continue // rsync's own messages
    const [, update, type, attrs, name] = m as unknown as [string, string, string, string, string]
    const fileType = type === 'f' ? 'file' : type === 'd' ? 'dir' : type === 'L' ? 'symlink' : 'other'
    const kind = attrs.startsWith('+') ? 'added' : update === '.' ? 'attrs' : 'changed'
    const path = unescape(type === 'L' ? name.replace(/ -> .*$/, '') : name.replace(/\/$/, ''))
    out.push({path, kind, fileType, code: `${update}${type}${attrs}`})
  }
  return out
}
