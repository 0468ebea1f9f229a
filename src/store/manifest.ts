import type {ObjectStore} from './objects.js'

/** What a snapshot records per path: enough to rebuild and to verify by hash. */
export interface ManifestEntry {
  type: 'file' | 'dir' | 'symlink'
  mode: number
  size?: number
  hash?: string
  link?: string
}

export type Manifest = Map<string, ManifestEntry>

/** Per-directory chunk hashes: unchanged directories share their chunk object between snapshots. */
export type ManifestRoot = Record<string, string>

type Row = [name: string, type: 'f' | 'd' | 'l', mode: number, sizeOrLink?: number | string, hash?: string]

/** Stores a manifest as one object per directory (git's trees, one level deep). */
export function writeManifest(manifest: Manifest, store: ObjectStore): {root: ManifestRoot; added: number} {
  const byDir = new Map<string, Row[]>([['', []]])
  for (const [rel, e] of manifest) {
    const slash = rel.lastIndexOf('/')
    const dir = slash === -1 ? '' : rel.slice(0, slash)
    const name = rel.slice(slash + 1)
    const row: Row = e.type === 'file' ? [name, 'f', e.mode, e.size, e.hash] : e.type === 'dir' ? [name, 'd', e.mode] : [name, 'l', e.mode, e.link]
    let rows = byDir.get(dir)
    if (!rows) byDir.set(dir, (rows = []))
    rows.push(row)
  }
  const root: ManifestRoot = {}
  let added = 0
  for (const [dir, rows] of [...byDir].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    const put = store.putBytes(JSON.stringify(rows))
    root[dir] = put.hash
    added += put.added
  }
  return {root, added}
}

export function readManifest(root: ManifestRoot, store: ObjectStore): Manifest {
  const manifest: Manifest = new Map()
  for (const [dir, chunk] of Object.entries(root)) {
    const rows = JSON.parse(store.read(chunk).toString('utf8')) as Row[]
    for (const [name, t, mode, sizeOrLink, hash] of rows) {
      const rel = dir ? `${dir}/${name}` : name
      if (t === 'f') manifest.set(rel, {type: 'file', mode, size: sizeOrLink as number, hash})
      else if (t === 'd') manifest.set(rel, {type: 'dir', mode})
      else manifest.set(rel, {type: 'symlink', mode, link: sizeOrLink as string})
    }
  }
  return manifest
}

/**
 * Every object the given manifests need: their chunks and their files' content. Backups share most
 * chunks, so each distinct chunk is read once (ten backups of a 200-directory tree read ~200
 * chunks, not 2,000).
 */
export function objectsOf(roots: ManifestRoot[], store: ObjectStore): Set<string> {
  const chunks = new Set(roots.flatMap((r) => Object.values(r)))
  const out = new Set(chunks)
  for (const chunk of chunks) {
    for (const row of JSON.parse(store.read(chunk).toString('utf8')) as Row[]) if (row[1] === 'f' && row[4]) out.add(row[4])
  }
  return out
}
