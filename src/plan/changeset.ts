import type {HashCache} from '../store/hash-cache.js'
import type {Tree} from '../store/walk.js'

/** What a deploy will do to the target, by path. */
export interface ChangeSet {
  added: string[]
  changed: string[]
  deleted: string[]
}

export const changeCount = (c: ChangeSet) => c.added.length + c.changed.length + c.deleted.length

/**
 * Source vs target. Like rsync's quick check, equal size and mtime count as equal; where they
 * differ, content decides (hashes, cached by stat on both sides), so a fresh clone of the live
 * tree — new mtimes everywhere — changes nothing. `ignore` names hotctl's own files in the target.
 */
export function computeChangeSet(src: Tree, dst: Tree, srcCache: HashCache, dstCache: HashCache, ignore: (rel: string) => boolean): ChangeSet {
  const added: string[] = []
  const changed: string[] = []
  const deleted: string[] = []
  for (const [rel, s] of src.entries) {
    if (ignore(rel)) continue
    const d = dst.entries.get(rel)
    if (!d) added.push(rel)
    else if (d.type !== s.type) changed.push(rel)
    else if (s.type === 'symlink') {
      if (s.link !== d.link) changed.push(rel)
    } else if (s.mode !== d.mode) changed.push(rel)
    else if (s.type === 'file') {
      if (s.size !== d.size) changed.push(rel)
      else if (s.mtimeMs !== d.mtimeMs && srcCache.hash(src, rel, s) !== dstCache.hash(dst, rel, d)) changed.push(rel)
    }
  }
  for (const rel of dst.entries.keys()) if (!src.entries.has(rel) && !ignore(rel)) deleted.push(rel)
  return {added: added.sort(), changed: changed.sort(), deleted: deleted.sort()}
}
