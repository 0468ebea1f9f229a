import type {ItemizedChange} from '../rsync/itemize.js'

/** What a deploy will do to the target, by path. */
export interface ChangeSet {
  added: string[]
  changed: string[]
  deleted: string[]
}

export const changeCount = (c: ChangeSet) => c.added.length + c.changed.length + c.deleted.length

/** Files added, changed and deleted: what the journal and `hotctl log` record. */
export const fileCounts = (c: ChangeSet) => ({
  added: c.added.length,
  changed: c.changed.length,
  deleted: c.deleted.length,
})

/**
 * rsync's dry-run itemization (size/mtime/perms quick check) → the change set. Where only the
 * mtime differs, `sameContent` decides (hashes, cached by stat), so a fresh clone of the live tree —
 * new mtimes everywhere — changes nothing. Directory mtimes are not deployed, so they never count.
 */
export function changeSetFromItemize(
  items: ItemizedChange[],
  sameContent: (rel: string) => boolean,
  ignore: (rel: string, isDir: boolean) => boolean,
): ChangeSet {
  const added: string[] = []
  const changed: string[] = []
  const deleted: string[] = []
  for (const it of items) {
    if (!it.path || it.path === '.' || ignore(it.path, it.fileType === 'dir') || it.fileType === 'other') continue
    const [, , content, size, , perms] = it.code // YXcstpoguax
    if (it.kind === 'deleted') deleted.push(it.path)
    else if (it.kind === 'added') added.push(it.path)
    else if (it.fileType === 'dir') {
      if (perms === 'p') changed.push(it.path) // only permissions matter for a directory
    } else if (it.fileType === 'symlink') {
      if (it.code[0] !== '.') changed.push(it.path) // rsync would re-create it: its target changed (a link's mtime is not deployed)
    } else if (size !== 's' && perms !== 'p' && content !== 'c') {
      if (!sameContent(it.path)) changed.push(it.path) // same size, other mtime: content decides
    } else changed.push(it.path)
  }
  return {added: added.sort(), changed: changed.sort(), deleted: deleted.sort()}
}
