import fs from 'node:fs'
import path from 'node:path'
import {ID_PATTERN} from '../ids.js'
import type {ManifestRoot} from '../store/manifest.js'

/** A complete backup: its metadata file exists (written last). */
export interface BackupMeta {
  id: string
  time: string
  reason: 'deploy' | 'rollback'
  /** Release id found in the snapshot's marker; null for a tree hotctl never deployed. */
  release: string | null
  gitSha: string | null
  files: number
  bytes: number
  /** Bytes this backup added to the store. */
  added: number
  /** `protect` when it was taken: a restore leaves these alone even if the config changed since. */
  protect?: string[]
  root: ManifestRoot
}

export class BackupIndex {
  constructor(readonly dir: string) {}

  metaPath(id: string): string {
    return path.join(this.dir, `${id}.json`)
  }

  /** Complete backups, oldest first. */
  list(): BackupMeta[] {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      return []
    }
    const out: BackupMeta[] = []
    for (const name of names.sort()) {
      const id = name.replace(/\.json$/, '')
      if (!name.endsWith('.json') || !ID_PATTERN.test(id)) continue
      try {
        const meta = JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8')) as BackupMeta | null
        // Metadata of another shape is not a complete backup (`backups verify` names it).
        if (meta && typeof meta === 'object' && meta.id === id && meta.root && typeof meta.root === 'object') out.push(meta)
      } catch {
        // unreadable metadata = not complete
      }
    }
    return out
  }

  get(id: string): BackupMeta | undefined {
    return this.list().find((b) => b.id === id)
  }

  /** The commit point of a backup: metadata is written atomically, after its content. */
  write(meta: BackupMeta): void {
    fs.mkdirSync(this.dir, {recursive: true})
    const tmp = `${this.metaPath(meta.id)}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(meta))
    const fd = fs.openSync(tmp, 'r')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    fs.renameSync(tmp, this.metaPath(meta.id))
  }

  remove(id: string): void {
    fs.rmSync(this.metaPath(id), {force: true})
  }
}
