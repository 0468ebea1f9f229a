import path from 'node:path'
import type {ItemizedChange} from '../rsync/itemize.js'
import {statEntry} from '../store/walk.js'
import type {ChangeSet} from './changeset.js'

/**
 * One sync, deletions around the writer. hotctl deletes exactly the planned paths: those in the
 * way of a write (a path changing type, or under one) go first, with every directory the source
 * turns into a file or symlink (whole, with excluded leftovers such as __pycache__ the plan does
 * not list: rsync would refuse to replace a non-empty directory); the rest after the writer, so
 * modules that moved are not missing while the new tree lands. Local and SSH targets share it.
 */
export async function syncAroundDeletions(
  source: string,
  changes: ChangeSet,
  io: {
    /** Whether `rel` is a directory in the target as planned. */
    isTargetDir: (rel: string) => boolean
    remove: (paths: string[], afterWrite: boolean) => Promise<void> | void
    write: () => Promise<ItemizedChange[]>
  },
): Promise<ItemizedChange[]> {
  const written = new Set([...changes.added, ...changes.changed])
  const inTheWay = (rel: string) => rel.split('/').some((_, i, parts) => written.has(parts.slice(0, i + 1).join('/')))
  const replacedDirs = [...written].filter(
    (rel) => io.isTargetDir(rel) && statEntry(path.join(source, rel))?.type !== 'dir',
  )
  await io.remove([...changes.deleted.filter(inTheWay), ...replacedDirs], false)
  const items = await io.write()
  await io.remove(
    changes.deleted.filter((rel) => !inTheWay(rel)),
    true,
  )
  return [
    ...changes.deleted.map((p) => ({path: p, kind: 'deleted' as const, fileType: 'file' as const, code: '*deleting'})),
    ...items,
  ]
}
