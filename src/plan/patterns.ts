/**
 * rsync-style path patterns (the subset hotctl documents), used both to build rsync's
 * --exclude arguments and to filter hotctl's own tree walks, so both agree:
 * - `name` (no slash) matches that name at any depth; `dir/` matches directories only;
 * - a pattern with an inner slash (`data/cache`, `/build`) is anchored at the tree root;
 * - `*` and `?` stay within one path segment, `**` crosses segments.
 */
export interface PathMatcher {
  (relPath: string, isDir: boolean): boolean
  /** Plain names matched at any depth, whatever the type: a walk may prune them without asking. */
  names?: ReadonlySet<string>
  /**
   * When every pattern is a plain name, `*suffix` or plain path: can a path ending in these two
   * ASCII characters match? Indexed by tailIndex. A walk then asks only about those paths (and
   * about any whose last two bytes are not both ASCII).
   */
  tails?: Uint8Array
}

export function compilePatterns(patterns: string[]): PathMatcher {
  // Plain names (.git, node_modules) are a Set lookup on the basename; the rest are joined into at
  // most four regular expressions (on the name or the whole path, for any entry or directories
  // only): walks call this once per entry, ~40k times a deploy at 20k files.
  const literal = new Set(patterns.filter((p) => /^[^/*?[\]]+$/.test(p.trim())).map((p) => p.trim()))
  // Without a new string per call (a walk's garbage): plain names and `*.ext` by the path's end,
  // plain anchored paths (`/.hotctl-maintenance.json`) by a Set lookup on the whole path.
  const names = [...literal]
  const suffixes: string[] = []
  const paths = new Set<string>()
  const groups = {name: [] as string[], path: [] as string[], dirName: [] as string[], dirPath: [] as string[]}
  for (const pattern of patterns) {
    if (literal.has(pattern.trim())) continue
    let p = pattern.trim()
    if (/^\*[^/*?[\]]+$/.test(p)) {
      suffixes.push(p.slice(1))
      continue
    }
    if (/^\/*[^*?[\]]+$/.test(p) && !p.endsWith('/') && !/\/\//.test(p)) {
      paths.add(p.replace(/^\/+/, ''))
      continue
    }
    const dirOnly = p.endsWith('/')
    if (dirOnly) p = p.replace(/\/+$/, '')
    const anchored = p.includes('/')
    p = p.replace(/^\/+/, '')
    groups[dirOnly ? (anchored ? 'dirPath' : 'dirName') : anchored ? 'path' : 'name'].push(globToRegex(p))
  }
  const join = (parts: string[]) => (parts.length ? new RegExp(`^(?:${parts.join('|')})$`) : undefined)
  const [name, full, dirName, dirPath] = [
    join(groups.name),
    join(groups.path),
    join(groups.dirName),
    join(groups.dirPath),
  ]
  const baseIs = (relPath: string, end: string, whole: boolean) => {
    const at = relPath.length - end.length
    if (at < 0 || !relPath.endsWith(end)) return false
    return !whole || at === 0 || relPath.charCodeAt(at - 1) === SLASH
  }
  // Only the names, suffixes and paths can match: a path ending in none of their last two
  // characters is let through at once (most of a walk's ~40k calls).
  let tails: Uint8Array | undefined
  if (!name && !full && !dirName && !dirPath) {
    tails = new Uint8Array(128 * 128)
    for (const t of [...names, ...suffixes, ...paths]) {
      const [a, b] = [t.length > 1 ? t.charCodeAt(t.length - 2) : -1, t.charCodeAt(t.length - 1)]
      if (a >= 128 || b >= 128) continue // never let through: the path has a char ≥ 0x80 there
      if (a >= 0) tails[tailIndex(a, b)] = 1
      else for (let c = 0; c < 128; c++) tails[tailIndex(c, b)] = 1 // any char before, or none
    }
  }
  const match: PathMatcher = (relPath, isDir) => {
    if (tails) {
      const n = relPath.length
      const [a, b] = [n > 1 ? relPath.charCodeAt(n - 2) : 0, relPath.charCodeAt(n - 1)]
      if (a < 128 && b < 128 && tails[tailIndex(a, b)] === 0) return false
    }
    for (const n of names) if (baseIs(relPath, n, true)) return true
    // `*x` needs one character before x in the name (`*` may match none: `.pyc` is matched too)
    for (const x of suffixes) if (baseIs(relPath, x, false)) return true
    if (paths.has(relPath)) return true
    if (!name && !full && !(isDir && (dirName || dirPath))) return false
    const base = relPath.slice(relPath.lastIndexOf('/') + 1)
    return !!name?.test(base) || !!full?.test(relPath) || (isDir && (!!dirName?.test(base) || !!dirPath?.test(relPath)))
  }
  match.names = literal
  match.tails = tails
  return match
}

const SLASH = 0x2f

/** Where PathMatcher.tails holds a path ending in ASCII codes `a`, `b` (`a` 0 for a one-character path). */
export const tailIndex = (a: number, b: number): number => (a << 7) | b

function globToRegex(glob: string): string {
  let out = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` also matches no directory at all: `**/*.so` matches `x.so` and `a/b/x.so`
        if (glob[i + 2] === '/') {
          out += '(?:.*/)?'
          i += 2
        } else {
          out += '.*'
          i++
        }
      } else out += '[^/]*'
    } else if (c === '?') out += '[^/]'
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1)
      if (end === -1) out += '\\['
      else {
        out += `[${glob
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`
        i = end
      }
    } else out += c.replace(/[.+^${}()|\\]/g, '\\$&')
  }
  return out
}

/** Is `relPath` matched by a pattern, itself or through any of its parent directories? */
export function matchesPathOrParent(match: PathMatcher, relPath: string, isDir = false): boolean {
  const parts = relPath.split('/')
  for (let i = 1; i < parts.length; i++) if (match(parts.slice(0, i).join('/'), true)) return true
  return match(relPath, isDir)
}

/**
 * The same patterns as rsync must read them to agree with compilePatterns: rsync matches an
 * inner-slash pattern against the end of a path, so anchor it with a leading slash; and for rsync
 * a double star followed by a slash needs at least one directory there, so add the form without it
 * (`a/b` beside `a/<double star>/b`).
 */
export function rsyncPatterns(patterns: string[]): string[] {
  const out: string[] = []
  for (const raw of patterns) {
    const p = raw.trim()
    const body = p.replace(/\/+$/, '')
    if (!body.includes('/')) {
      out.push(p)
      continue
    }
    const anchored = p.startsWith('/') ? p : `/${p}`
    out.push(anchored)
    // every way of letting each double-star-slash match no directory at all
    const [first, ...rest] = anchored.split('**/')
    let forms = [first!]
    for (const part of rest) forms = forms.flatMap((f) => [`${f}**/${part}`, `${f}${part}`])
    for (const f of forms) if (!out.includes(f)) out.push(f)
  }
  return out
}
