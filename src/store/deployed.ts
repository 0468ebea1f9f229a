import fs from 'node:fs'
import path from 'node:path'
import {ID_PATTERN} from '../ids.js'
import type {ChangeSet} from '../plan/changeset.js'
import type {ManifestRoot} from './manifest.js'
import {carrySignatures, type DirSignatures} from './snapshot.js'
import {TreeEntries} from './tree-entries.js'
import {statEntry, type Tree} from './walk.js'

/** The tree a release had when its deploy was verified: what `hotctl diff` compares live against. */
export interface DeployedRecord {
  release: string
  time: string
  root: ManifestRoot
  /** Each directory's signature when recorded (snapshot.ts dirSignatures): the next backup reuses the chunks of unchanged ones. */
  dirs?: DirSignatures
}

/**
 * `deployed/<release>.json` in the state dir: one manifest root per deployed release, sharing the
 * object store with the backups (the next deploy's backup of an unedited tree then adds nothing).
 */
export class DeployedIndex {
  constructor(readonly dir: string) {}

  private file(release: string): string {
    return path.join(this.dir, `${release}.json`)
  }

  write(record: DeployedRecord): void {
    fs.mkdirSync(this.dir, {recursive: true})
    const tmp = `${this.file(record.release)}.${process.pid}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(record))
    fs.renameSync(tmp, this.file(record.release))
  }

  get(release: string): DeployedRecord | undefined {
    try {
      const r = JSON.parse(fs.readFileSync(this.file(release), 'utf8')) as DeployedRecord | null
      return r && r.release === release && r.root && typeof r.root === 'object' ? r : undefined
    } catch {
      return undefined
    }
  }

  /** Releases with a record, oldest first. */
  releases(): string[] {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      return []
    }
    return names
      .filter((n) => n.endsWith('.json') && ID_PATTERN.test(n.slice(0, -5)))
      .map((n) => n.slice(0, -5))
      .sort()
  }

  remove(release: string): void {
    fs.rmSync(this.file(release), {force: true})
  }
}

/**
 * The target tree after a verified sync, from the walk planning took before it: only the paths the
 * plan wrote or deleted (and the release marker) are looked at again, so recording the tree as
 * deployed costs O(changed), not a second walk. A path that stopped being a directory loses what
 * was under it.
 */
export function treeAfterSync(before: Tree, changes: ChangeSet, marker: string): Tree {
  const entries = before.entries instanceof TreeEntries ? before.entries.clone() : new Map(before.entries)
  const wasDir = (rel: string) => before.entries.get(rel)?.type === 'dir'
  // Directories that went, or became a file or symlink: everything under them went too.
  const gone = new Set<string>()
  for (const rel of changes.deleted) {
    entries.delete(rel)
    if (wasDir(rel)) gone.add(rel)
  }
  for (const rel of [...changes.added, ...changes.changed, marker]) {
    const e = statEntry(path.join(before.root, rel))
    if (!e) entries.delete(rel)
    else entries.set(rel, e)
    if (wasDir(rel) && e?.type !== 'dir') gone.add(rel)
  }
  if (gone.size > 0) {
    for (const p of [...entries.keys()]) {
      const parts = p.split('/')
      for (let i = 1; i < parts.length; i++) {
        if (gone.has(parts.slice(0, i).join('/'))) {
          entries.delete(p)
          break
        }
      }
    }
  }
  const after = {...before, entries}
  carrySignatures(before, after, [...changes.deleted, ...changes.added, ...changes.changed, marker], gone)
  return after
}
