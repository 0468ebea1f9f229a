import {TreeEntries} from '../store/tree-entries.js'
import type {Tree, TreeEntry} from '../store/walk.js'
import type {ChangeSet} from './changeset.js'

/**
 * The change set from two walks (source and target, protected and excluded paths already left
 * out), with the rules rsync's `--dry-run --delete -rlpt` itemization gave, which the unit tests
 * check against rsync itself:
 * - a path the target lacks, or holds as another type, is added (a directory turning into a file
 *   or symlink: the file is added and the directory's contents are deleted);
 * - a file is changed when its size or mode differs; when only its mtime differs, or when
 *   `sameContent` says so for an equal size and mtime, content decides;
 * - a directory is changed only by its mode, a symlink only by its target;
 * - a target path the source lacks is deleted, except a directory holding protected content
 *   (never deleted) and whatever `ignore` says is not hotctl's (the release marker).
 * `sameContent(rel, s, d, mtimeEqual, at)` decides files of equal size and mode; `at` is where
 * the two local walks hold them (their slots), when both are.
 */
export type SameContent = (
  rel: string,
  s: TreeEntry,
  d: TreeEntry,
  mtimeEqual: boolean,
  at?: {src: number; dst: number},
) => boolean

/** sameContent for two local walks, by their slots (`src`'s, `dst`'s): no entry or path made. */
export type SameContentAt = (src: number, dst: number, mtimeEqual: boolean) => boolean

export function diffTrees(
  src: Tree,
  dst: Tree,
  sameContent: SameContent,
  ignore: (rel: string) => boolean,
  sameAt?: SameContentAt,
  /** The paths `ignore` says are not hotctl's, when they are known: a local walk's paths are then never made to ask. */
  ignored?: readonly string[],
): ChangeSet {
  if (src.entries instanceof TreeEntries && dst.entries instanceof TreeEntries) {
    const {entries} = src
    const at =
      sameAt ??
      ((s, d, mtimeEqual) =>
        sameContent(entries.nameAt(s), entries.entryAt(s), (dst.entries as TreeEntries).entryAt(d), mtimeEqual, {
          src: s,
          dst: d,
        }))
    return diffPacked(entries, dst, at, ignore, ignored)
  }
  const added: string[] = []
  const changed: string[] = []
  const deleted: string[] = []
  for (const [rel, s] of src.entries) {
    if (ignore(rel)) continue
    const d = dst.entries.get(rel)
    if (!d || d.type !== s.type) added.push(rel)
    else if (s.type === 'symlink') {
      if (s.link !== d.link) changed.push(rel)
    } else if (s.mode !== d.mode) changed.push(rel)
    else if (s.type === 'file' && (s.size !== d.size || !sameContent(rel, s, d, s.mtimeMs === d.mtimeMs)))
      changed.push(rel)
  }
  const keep = protectedHolders(dst)
  for (const rel of dst.entries.keys()) {
    if (src.entries.has(rel) || ignore(rel)) continue
    if (keep.has(rel) && dst.entries.get(rel)!.type === 'dir') continue
    deleted.push(rel)
  }
  return {added: added.sort(), changed: changed.sort(), deleted: deleted.sort()}
}

/**
 * diffTrees over two local walks, the same rules read from their packed fields: no entry is made
 * but those sameContent is given, and no path string for a target path the source also has (issue
 * 10: these loops run over every path of both trees, mostly before the JIT has warmed up).
 */
function diffPacked(
  a: TreeEntries,
  dstTree: Tree,
  sameAt: SameContentAt,
  ignore: (rel: string) => boolean,
  ignored: readonly string[] | undefined,
): ChangeSet {
  const b = dstTree.entries as TreeEntries
  const added: string[] = []
  const changed: string[] = []
  const deleted: string[] = []
  // With the ignored paths known, a path is made only for what goes into the change set.
  const skipA = ignored && new Set(ignored.map((p) => a.slotOf(p)))
  const skipB = ignored && new Set(ignored.map((p) => b.slotOf(p)))
  for (let s = a.nextSlot(0); s >= 0; s = a.nextSlot(s + 1)) {
    if (skipA ? skipA.has(s) : ignore(a.nameAt(s))) continue
    const d = b.slotOfPathOf(a, s)
    const type = a.typeAt(s)
    if (d < 0 || b.typeAt(d) !== type) added.push(a.nameAt(s))
    else if (type === 'symlink') {
      if (a.linkAt(s) !== b.linkAt(d)) changed.push(a.nameAt(s))
    } else if (a.modeAt(s) !== b.modeAt(d)) changed.push(a.nameAt(s))
    else if (type === 'file' && (a.sizeAt(s) !== b.sizeAt(d) || !sameAt(s, d, a.mtimeAt(s) === b.mtimeAt(d))))
      changed.push(a.nameAt(s))
  }
  const keep = protectedHolders(dstTree)
  for (let d = b.nextSlot(0); d >= 0; d = b.nextSlot(d + 1)) {
    if (a.hasPathOf(b, d) || skipB?.has(d)) continue
    const rel = b.nameAt(d)
    if ((!skipB && ignore(rel)) || (b.typeAt(d) === 'dir' && keep.has(rel))) continue
    deleted.push(rel)
  }
  return {added: added.sort(), changed: changed.sort(), deleted: deleted.sort()}
}

/** Directories holding protected content at any depth: never deleted. */
function protectedHolders(tree: Tree): Set<string> {
  const holders = new Set<string>()
  for (const d of tree.dirsWithProtected)
    for (let p = d; p && !holders.has(p); p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') holders.add(p)
  return holders
}
