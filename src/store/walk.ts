import fs from 'node:fs'
import path from 'node:path'
import {decodeName, fsPath} from '../file-names.js'
import type {PathMatcher} from '../plan/patterns.js'

/** One entry of a tree, keyed by its path relative to the root ('/'-separated). */
export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink'
  mode: number
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
  link?: string
}

export interface Tree {
  root: string
  entries: Map<string, TreeEntry>
  /** Directories directly holding skipped (excluded or protected) entries. */
  dirsWithSkipped: Set<string>
  /** Directories directly holding protected entries: never removed. */
  dirsWithProtected: Set<string>
}

/**
 * Walks a tree with lstat, skipping what `skip` matches (excluded and protected paths) and never
 * following symlinks. Synchronous on purpose: for tens of thousands of small stats the sync calls
 * are several times faster than the thread-pool round trips of fs.promises. Names keep their
 * bytes (file-names.ts), so a name that is not UTF-8 is walked, backed up and restored as it is.
 */
export function walkTree(root: string, skip: PathMatcher, protect?: PathMatcher): Tree {
  const entries = new Map<string, TreeEntry>()
  const dirsWithSkipped = new Set<string>()
  const dirsWithProtected = new Set<string>()
  if (!fs.existsSync(root)) return {root, entries, dirsWithSkipped, dirsWithProtected}
  root = path.resolve(root)
  const visit = (relDir: string) => {
    const abs = relDir ? `${root}/${relDir}` : root
    for (const d of readDir(abs)) {
      const rel = relDir ? `${relDir}/${d.name}` : d.name
      const isDir = d.isDirectory()
      if (skip(rel, isDir)) {
        dirsWithSkipped.add(relDir)
        if (protect?.(rel, isDir)) dirsWithProtected.add(relDir)
        continue
      }
      const entry = statEntry(`${abs}/${d.name}`)
      if (!entry) continue
      entries.set(rel, entry)
      if (entry.type === 'dir') visit(rel)
    }
  }
  visit('')
  return {root, entries, dirsWithSkipped, dirsWithProtected}
}

/**
 * A directory's entries with names as decodeName gives them. Read as strings first (the fast
 * path); only a directory where a name came out lossy (U+FFFD) is read again as bytes.
 */
function readDir(abs: string): {name: string; isDirectory(): boolean}[] {
  const dir = fsPath(abs)
  const entries = fs.readdirSync(dir, {withFileTypes: true})
  if (!entries.some((d) => d.name.includes('\ufffd'))) return entries
  return fs
    .readdirSync(dir, {withFileTypes: true, encoding: 'buffer'})
    .map((d) => ({name: decodeName(d.name), isDirectory: () => d.isDirectory()}))
}

/** One path as a tree entry (lstat, never following links); undefined when absent or not deployable (sockets, fifos, devices). */
export function statEntry(abs: string): TreeEntry | undefined {
  let st: fs.Stats
  try {
    st = fs.lstatSync(fsPath(abs))
  } catch {
    return undefined
  }
  const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined
  if (!type) return undefined
  const entry: TreeEntry = {
    type,
    mode: st.mode & 0o7777,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    ino: st.ino,
  }
  if (type === 'symlink') entry.link = decodeName(fs.readlinkSync(fsPath(abs), {encoding: 'buffer'}))
  return entry
}
