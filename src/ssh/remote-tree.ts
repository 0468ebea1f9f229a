import zlib from 'node:zlib'
import {decodeName} from '../file-names.js'
import type {PathMatcher} from '../plan/patterns.js'
import type {Tree, TreeEntry} from '../store/walk.js'
import type {SshConnection} from './connection.js'
import {RemoteHashRecord} from './hash-record.js'
import {RecordCache} from './record-cache.js'
import {batches} from './remote-files.js'

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
const FORMAT = `'%y %m %s %T@ %C@ %i\\0%P\\0%l\\0'`
const LIST = `cd -- "$1" 2>/dev/null || exit 0
exec find . -mindepth 1 -printf ${FORMAT}`

/**
 * The hash record ($2) and its patch ($3), each as its length, a newline, its bytes (`0` when there
 * is none), then LIST; the record is `=` instead when its sha256 is `$4` (the controller's copy).
 * The patch is read to the length measured (it only grows under the lock).
 */
const LIST_WITH_RECORD = `if [ ! -f "$2" ]; then echo 0
elif [ -n "$4" ] && [ "$(sha256sum < "$2")" = "$4  -" ]; then echo =
else wc -c < "$2"; cat -- "$2"; fi
if [ -f "$3" ]; then n=$(wc -c < "$3"); echo "$n"; head -c "$n" -- "$3"; else echo 0; fi
${LIST}`

/** This controller's copy of the host's hash record `recordFile` (see RecordCache). */
export const recordCache = (conn: SshConnection, recordFile: string) =>
  new RecordCache(`${conn.destination}:${conn.host.port ?? 22}`, recordFile)

/** The hash record's patch file, next to it (see RemoteHashRecord). */
export const recordPatchFile = (recordFile: string) => `${recordFile.replace(/\.json\.gz$/, '')}.patch.jsonl`

export type RemoteTree = Tree & {entries: Map<string, RemoteTreeEntry>}

/**
 * What SshTarget's planning keeps in its TargetPlan for the sync, the verify (which brings both
 * up to date with what it wrote) and the tree as deployed: the host's tree and hash record.
 */
export interface RemotePlanWalk {
  dst: RemoteTree
  record: RemoteHashRecord
}

const failed = (conn: SshConnection, what: string, r: {exitCode: number; stderr: string}) =>
  new Error(
    `${what} on ${conn.host.name} failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`,
  )

/**
 * The host's tree and its hash record (`recordFile`), in one round trip. The record's base comes
 * from this controller's copy when the host has the same (by sha256), parsed while the host lists.
 */
export async function walkRemoteWithRecord(
  conn: SshConnection,
  root: string,
  recordFile: string,
  skip: PathMatcher,
  protect?: PathMatcher,
  /** Called once the listing is asked for: what it asks next goes in right behind it. */
  asked?: () => void,
): Promise<{tree: RemoteTree; record: RemoteHashRecord}> {
  const cache = recordCache(conn, recordFile)
  const copy = cache.read()
  const reply = conn.run(LIST_WITH_RECORD, [root, recordFile, recordPatchFile(recordFile), copy?.sha ?? ''], {
    timeoutMs: Math.max(conn.settings.timeoutMs, 600_000),
    exact: true,
  })
  asked?.()
  // The request is on its way (sent within this turn of the event loop); the copy is parsed meanwhile.
  await new Promise((resolve) => setImmediate(resolve))
  const copied = copy ? RemoteHashRecord.parseBase(copy.text) : undefined
  const r = await reply
  if (r.exitCode !== 0) throw failed(conn, `listing ${root}`, r)
  let at = 0
  const cut = () => new Error(`the listing of ${root} on ${conn.host.name} is cut short`)
  const section = () => {
    const nl = r.stdout.indexOf(0x0a, at)
    const len = Number(r.stdout.toString('latin1', at, nl === -1 ? r.stdout.length : nl).trim())
    if (nl === -1 || !Number.isInteger(len) || nl + 1 + len > r.stdout.length) throw cut()
    at = nl + 1 + len
    return r.stdout.subarray(nl + 1, at)
  }
  let base
  if (r.stdout.toString('latin1', 0, 2) === '=\n') {
    if (!copied) throw cut() // the host never says `=` unless sent a copy's sha256
    base = copied
    at = 2
  } else {
    const gz = section()
    let json: Buffer | undefined
    try {
      json = gz.length > 0 ? zlib.gunzipSync(gz) : undefined
    } catch {
      // an unreadable record is an empty one (RemoteHashRecord.parseBase)
    }
    base = RemoteHashRecord.parseBase(json?.toString('utf8'))
    if (json !== undefined) cache.write(gz, json)
  }
  const record = RemoteHashRecord.withPatch(base, section())
  return {tree: parseRemoteList(r.stdout.subarray(at), root, skip, protect), record}
}

/**
 * Stat, then sha256, of paths under a root on the host: one find for the stat of each (as LIST
 * prints it), then sha256sum of the regular files among them, in that order, so a hash is never
 * newer than the stat it is recorded with. Absent paths are simply not in the result. The tail
 * (cwd = the root, `./path` arguments) is shared by scripts that end the same way.
 */
export const STAT_HASH_TAIL = `find "$@" -maxdepth 0 -printf ${FORMAT.replace('%P', '%p')} 2>/dev/null
printf 'END\\0'
find "$@" -maxdepth 0 -type f -exec sha256sum -z -- {} + 2>/dev/null
exit 0`
const STAT_HASH = `cd -- "$1" || exit 3
shift
${STAT_HASH_TAIL}`

export async function statAndHash(
  conn: SshConnection,
  root: string,
  paths: string[],
): Promise<Map<string, RemoteTreeEntry & {hash?: string}>> {
  const out = new Map<string, RemoteTreeEntry & {hash?: string}>()
  for (const batch of batches(paths)) {
    const r = await conn.run(STAT_HASH, [root, ...batch.map((p) => `./${p}`)], {
      timeoutMs: Math.max(conn.settings.timeoutMs, 600_000),
      exact: true,
    })
    if (r.exitCode !== 0) throw failed(conn, `reading paths under ${root}`, r)
    for (const [rel, e] of parseStatAndHash(r.stdout, `${root} on ${conn.host.name}`)) out.set(rel, e)
  }
  return out
}

/**
 * What STAT_HASH prints (also the tail of other scripts that end the same way): find's stat of
 * each `./path`, `END`, then `sha256sum -z` of the regular files among them.
 */
export function parseStatAndHash(stdout: Buffer, where: string): Map<string, RemoteTreeEntry & {hash?: string}> {
  const stats = parseRemoteList(stdout, where, () => false, undefined, true)
  if (stats.end === undefined) throw new Error(`reading paths under ${where}: output cut short`)
  const sums = stdout.subarray(stats.end)
  for (let i = 0; i < sums.length;) {
    const z = sums.indexOf(0, i)
    if (z === -1) break
    const rec = sums.subarray(i, z)
    i = z + 1
    // `<64 hex><space><space or *>./<name>`
    if (rec.length < 68) continue
    const rel = decodeName(Buffer.from(rec.subarray(68)))
    const e = stats.entries.get(rel)
    if (e) (e as RemoteTreeEntry & {hash?: string}).hash = rec.toString('latin1', 0, 64)
  }
  return stats.entries
}

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
  /**
   * STAT_HASH's output: paths as `./rel` (find's %p of named starting points), each listed on its
   * own, up to an `END` field (never a head: those start with a type letter and a space).
   */
  named = false,
): RemoteTree & {end?: number} {
  const entries = new Map<string, RemoteTreeEntry>()
  const dirsWithSkipped = new Set<string>()
  const dirsWithProtected = new Set<string>()
  // find lists a directory before what it holds: a skipped directory's contents are skipped with it.
  const skippedDirs = new Set<string>()
  // Fields are decoded straight from `out` (no Buffer per field): this runs once per host file.
  const fieldEnd = () => {
    const end = out.indexOf(0, at)
    if (end === -1) throw new Error(`the listing of ${root} is cut short`)
    return end
  }
  const name = (from: number, end: number) => {
    const text = out.toString('utf8', from, end)
    return text.includes('\ufffd') ? decodeName(out.subarray(from, end)) : text
  }
  let at = 0
  while (at < out.length) {
    let end = fieldEnd()
    const headAt = at
    const headEnd = end
    at = end + 1
    if (named && end - headAt === 3 && latin1(out, headAt, end) === 'END')
      return {root, entries, dirsWithSkipped, dirsWithProtected, end: at}
    end = fieldEnd()
    const rel = name(named ? at + 2 : at, end)
    at = end + 1
    const linkAt = at
    const linkEnd = (at = fieldEnd()) // the link target: decoded below, for a symlink only
    at = linkEnd + 1
    const y = out[headAt]
    const slash = rel.lastIndexOf('/')
    const parent = slash === -1 ? '' : rel.slice(0, slash)
    if (!named && parent && skippedDirs.has(parent)) {
      if (y === DIR) skippedDirs.add(rel)
      continue
    }
    const type = y === FILE ? 'file' : y === DIR ? 'dir' : y === LINK ? 'symlink' : undefined
    if (skip(rel, type === 'dir')) {
      dirsWithSkipped.add(parent)
      if (protect?.(rel, type === 'dir')) dirsWithProtected.add(parent)
      if (y === DIR) skippedDirs.add(rel)
      continue
    }
    if (!type) continue
    const e = parseHead(out, headAt, headEnd, type)
    if (type === 'symlink') e.link = name(linkAt, linkEnd)
    entries.set(rel, e)
  }
  return {root, entries, dirsWithSkipped, dirsWithProtected, end: named ? undefined : at}
}

/** Node's own Buffer method under toString('latin1', …), whose argument checks cost a third of it. */
const latin1 = (b: Buffer, start: number, end: number) =>
  (b as Buffer & {latin1Slice(start: number, end: number): string}).latin1Slice(start, end)
const [SPACE, DOT, ZERO, NINE, SEVEN] = [0x20, 0x2e, 0x30, 0x39, 0x37]
const [DIR, FILE, LINK] = [0x64, 0x66, 0x6c] // d f l

/**
 * An entry from its head `y mode size mtime ctime ino` (out[at, end)), read from the bytes: no
 * string per field but the two times the hash record compares (this runs once per host file).
 * Anything else than find's usual digits (a time before 1970, say) is read field by field.
 */
function parseHead(out: Buffer, at: number, end: number, type: RemoteTreeEntry['type']): RemoteTreeEntry {
  let p = at + 1
  let ok = out[p++] === SPACE
  const int = (max: number, base: number) => {
    const from = p
    let v = 0
    for (let c = out[p]!; c >= ZERO && c <= max; c = out[++p]!) v = v * base + c - ZERO
    if (p === from || out[p++] !== SPACE) ok = false
    return v
  }
  const time = () => {
    const from = p
    let v = 0
    for (let c = out[p]!; c >= ZERO && c <= NINE; c = out[++p]!) v = v * 10 + c - ZERO
    if (p === from || out[p++] !== DOT) ok = false
    let nsec = 0
    for (let k = 0; k < 9; k++) {
      const c = out[p++]!
      if (c < ZERO || c > NINE) ok = false
      nsec = nsec * 10 + c - ZERO
    }
    while (out[p]! >= ZERO && out[p]! <= NINE) p++
    const text = latin1(out, from, p)
    if (out[p++] !== SPACE) ok = false
    return {ms: v * 1e3 + nsec / 1e6, text}
  }
  const mode = int(SEVEN, 8)
  const size = ok ? int(NINE, 10) : 0
  const mtime = ok ? time() : undefined
  const ctime = ok ? time() : undefined
  const inoAt = p
  let ino = 0
  if (ok) for (let c = out[p]!; c >= ZERO && c <= NINE; c = out[++p]!) ino = ino * 10 + c - ZERO
  if (!ok || p !== end || p === inoAt || ino > Number.MAX_SAFE_INTEGER || !mtime || !ctime) {
    const [, m, s, mt, ct, i] = latin1(out, at, end).split(' ')
    return {
      type,
      mode: parseInt(m!, 8),
      size: Number(s),
      mtimeMs: timeMs(mt!),
      ctimeMs: timeMs(ct!),
      ino: Number(i),
      mtime: mt!,
      ctime: ct!,
    }
  }
  return {type, mode, size, mtimeMs: mtime.ms, ctimeMs: ctime.ms, ino, mtime: mtime.text, ctime: ctime.text}
}

/** `sec.fraction` as Node's stat computes mtimeMs (sec * 1e3 + nsec / 1e6), so equal times compare equal. */
export function timeMs(t: string): number {
  const dot = t.indexOf('.')
  if (dot === -1) return Number(t) * 1e3
  // find prints 10 fraction digits: the first 9 are the nanoseconds (fewer: padded, as before).
  const frac = t.length - dot - 1 >= 9 ? t.slice(dot + 1, dot + 10) : t.slice(dot + 1).padEnd(9, '0')
  return Number(t.slice(0, dot)) * 1e3 + Number(frac) / 1e6
}
