import {decodeName} from '../file-names.js'
import type {PathMatcher} from '../plan/patterns.js'
import type {Tree, TreeEntry} from '../store/walk.js'
import type {SshConnection} from './connection.js'

/** A remote tree entry with its times exactly as the host printed them (`sec.fraction`), for the hash record. */
export interface RemoteTreeEntry extends TreeEntry {
  mtime: string
  ctime: string
}

/**
 * The whole tree under a root on the host in one round trip (GNU find -printf: findutils on the
 * host): per entry its type, mode, size, mtime and ctime to the nanosecond, inode, path and link
 * target, NUL-separated (names come back as bytes). A missing root is an empty tree.
 */
const LIST = `cd -- "$1" 2>/dev/null || exit 0
exec find . -mindepth 1 -printf '%y %m %s %T@ %C@ %i\\0%P\\0%l\\0'`

/**
 * Walks the host's tree like walkTree walks a local one: `skip` (excluded and protected paths,
 * hotctl's own files) leaves entries and everything under them out; sockets, fifos and devices
 * are left out too.
 */
export async function walkRemote(
  conn: SshConnection,
  root: string,
  skip: PathMatcher,
  protect?: PathMatcher,
): Promise<Tree & {entries: Map<string, RemoteTreeEntry>}> {
  const r = await conn.run(LIST, [root], {timeoutMs: Math.max(conn.settings.timeoutMs, 600_000)})
  if (r.exitCode !== 0)
    throw new Error(
      `listing ${root} on ${conn.host.name} failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`,
    )
  return parseRemoteList(r.stdout, root, skip, protect)
}

/** Parses LIST's output (exported for its unit test). */
export function parseRemoteList(
  out: Buffer,
  root: string,
  skip: PathMatcher,
  protect?: PathMatcher,
): Tree & {entries: Map<string, RemoteTreeEntry>} {
  const entries = new Map<string, RemoteTreeEntry>()
  const dirsWithSkipped = new Set<string>()
  const dirsWithProtected = new Set<string>()
  // find lists a directory before what it holds: a skipped directory's contents are skipped with it.
  const skippedDirs = new Set<string>()
  const field = () => {
    const end = out.indexOf(0, at)
    if (end === -1) throw new Error(`the listing of ${root} is cut short`)
    const f = out.subarray(at, end)
    at = end + 1
    return f
  }
  let at = 0
  while (at < out.length) {
    const head = field().toString('latin1').split(' ')
    const rel = decodeName(field())
    const link = field()
    const [y, mode, size, mtime, ctime, ino] = head
    const slash = rel.lastIndexOf('/')
    const parent = slash === -1 ? '' : rel.slice(0, slash)
    if (parent && skippedDirs.has(parent)) {
      if (y === 'd') skippedDirs.add(rel)
      continue
    }
    const type = y === 'f' ? 'file' : y === 'd' ? 'dir' : y === 'l' ? 'symlink' : undefined
    if (skip(rel, type === 'dir')) {
      dirsWithSkipped.add(parent)
      if (protect?.(rel, type === 'dir')) dirsWithProtected.add(parent)
      if (y === 'd') skippedDirs.add(rel)
      continue
    }
    if (!type) continue
    const e: RemoteTreeEntry = {
      type,
      mode: parseInt(mode!, 8),
      size: Number(size),
      mtimeMs: timeMs(mtime!),
      ctimeMs: timeMs(ctime!),
      ino: Number(ino),
      mtime: mtime!,
      ctime: ctime!,
    }
    if (type === 'symlink') e.link = decodeName(link)
    entries.set(rel, e)
  }
  return {root, entries, dirsWithSkipped, dirsWithProtected}
}

/** `sec.fraction` as Node's stat computes mtimeMs (sec * 1e3 + nsec / 1e6), so equal times compare equal. */
export function timeMs(t: string): number {
  const [sec, frac = ''] = t.split('.')
  const ns = Number(frac.padEnd(9, '0').slice(0, 9))
  return Number(sec) * 1e3 + ns / 1e6
}
