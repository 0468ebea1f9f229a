import {decodeName} from '../file-names.js'
import type {ManifestEntry} from '../store/manifest.js'
import type {SshConnection} from './connection.js'

/** What the host says about one path: its manifest entry (sha256 for files), or undefined when absent. */
export type RemoteEntry = Omit<ManifestEntry, 'type'> & {type: ManifestEntry['type'] | 'other'}

/**
 * Describes paths under a root on the host, in batches, one round trip and a few processes per
 * batch (never one per file): a type letter per path from the shell's own tests, then `stat` of
 * those that exist, `sha256sum -z` of the regular files and `readlink -z` of the symlinks (one
 * xargs each, NUL-separated, in argument order). Paths go as `./path`, so none is read as an option.
 */
const DESCRIBE = `cd -- "$1" || exit 3
shift
for p; do
  if [ -L "./$p" ]; then printf l
  elif [ -f "./$p" ]; then printf f
  elif [ -d "./$p" ]; then printf d
  elif [ -e "./$p" ]; then printf o
  else printf '%s' -; fi
done
printf '\\0'
for p; do if [ -L "./$p" ] || [ -e "./$p" ]; then printf './%s\\0' "$p"; fi; done | xargs -0 -r stat --printf '%a %s\\0' -- || exit 4
for p; do if [ ! -L "./$p" ] && [ -f "./$p" ]; then printf './%s\\0' "$p"; fi; done | xargs -0 -r sha256sum -z -- || exit 5
for p; do if [ -L "./$p" ]; then printf './%s\\0' "$p"; fi; done | xargs -0 -r readlink -z -- || exit 6`

/**
 * sha256 of regular files under `root` on the host, one `sha256sum -z` per batch (names come back
 * unescaped, NUL-terminated); a path that cannot be read is left out (it then differs).
 */
export async function hashRemote(conn: SshConnection, root: string, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const batch of batches(paths)) {
    const r = await conn.run(HASH, [root, ...batch.map((p) => `./${p}`)])
    const bytes = r.stdout
    for (let at = 0; at < bytes.length;) {
      const end = bytes.indexOf(0, at)
      if (end === -1) break
      // `<64 hex><space><space or *>./<name>`
      const rec = bytes.subarray(at, end)
      at = end + 1
      if (rec.length < 68) continue
      out.set(decodeName(Buffer.from(rec.subarray(68))), rec.toString('latin1', 0, 64))
    }
  }
  return out
}

const HASH = `cd -- "$1" || exit 3
shift
exec sha256sum -z -- "$@" 2>/dev/null`

/** Up to this many bytes of names per batch: well inside the host's ARG_MAX for the exec'd tools. */
const BATCH_BYTES = 512 * 1024

export function batches(paths: string[], maxBytes = BATCH_BYTES, maxCount = 8000): string[][] {
  const out: string[][] = []
  let cur: string[] = []
  let size = 0
  for (const p of paths) {
    // UTF-8 length: an escaped byte counts 3 (an upper bound, with no buffer per name).
    const n = Buffer.byteLength(p) + 16
    if (cur.length > 0 && (size + n > maxBytes || cur.length >= maxCount)) {
      out.push(cur)
      cur = []
      size = 0
    }
    cur.push(p)
    size += n
  }
  if (cur.length > 0) out.push(cur)
  return out
}

/** Type, mode, size, sha256 (files) and link target (symlinks) of each path under `root` on the host. */
export async function describeRemote(
  conn: SshConnection,
  root: string,
  paths: string[],
): Promise<Map<string, RemoteEntry | undefined>> {
  const out = new Map<string, RemoteEntry | undefined>()
  const fail = (what: string, r: {exitCode: number; stderr: string}) =>
    new Error(
      `${what} under ${root} on ${conn.host.name} failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`,
    )
  for (const batch of batches(paths)) {
    const r = await conn.run(DESCRIBE, [root, ...batch], {exact: true})
    if (r.exitCode !== 0)
      throw fail(
        r.exitCode === 4 ? 'stat' : r.exitCode === 5 ? 'sha256sum' : r.exitCode === 6 ? 'readlink' : 'reading paths',
        r,
      )
    parseDescribe(r.stdout, batch, out)
  }
  return out
}

/** Parses what DESCRIBE printed (exported for its unit test). */
export function parseDescribe(stdout: Buffer, batch: string[], out: Map<string, RemoteEntry | undefined>): void {
  const records: Buffer[] = []
  for (let at = 0; at < stdout.length;) {
    const end = stdout.indexOf(0, at)
    if (end === -1) break
    records.push(stdout.subarray(at, end))
    at = end + 1
  }
  const types = records.shift()?.toString('latin1') ?? ''
  if (types.length !== batch.length) throw new Error(`the host described ${types.length} of ${batch.length} paths`)
  const existing = [...types].filter((t) => t !== '-').length
  const stats = records.splice(0, existing)
  const files = [...types].filter((t) => t === 'f').length
  const hashes = records.splice(0, files)
  const links = records
  if (
    stats.length !== existing ||
    hashes.length !== files ||
    links.length !== [...types].filter((t) => t === 'l').length
  )
    throw new Error('paths changed on the host while they were read')
  let s = 0
  let h = 0
  let l = 0
  batch.forEach((rel, i) => {
    const t = types[i]
    if (t === '-') {
      out.set(rel, undefined)
      return
    }
    const [mode, size] = stats[s++]!.toString('latin1').split(' ')
    const e: RemoteEntry = {
      type: t === 'f' ? 'file' : t === 'd' ? 'dir' : t === 'l' ? 'symlink' : 'other',
      mode: parseInt(mode!, 8),
    }
    if (t === 'f') {
      e.size = Number(size)
      e.hash = hashes[h++]!.toString('latin1', 0, 64)
    }
    if (t === 'l') e.link = decodeName(Buffer.from(links[l++]!))
    out.set(rel, e)
  })
}
