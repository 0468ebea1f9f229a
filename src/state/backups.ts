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

/** One metadata file as found: parsed (`raw`, not yet checked), or why it could not be read. */
export interface MetaRead {
  id: string
  raw?: unknown
  error?: string
}

export class BackupIndex {
  /**
   * The last list, by what each file was (name, inode, size, mtime): a rollback lists the backups
   * several times (choosing, the undo snapshot, pruning, the undo command), and at 200k files each
   * metadata file is hundreds of KiB of JSON. A file rewritten in any way is read again.
   */
  private listed?: {key: string; metas: BackupMeta[]}

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
    const files = names.sort().filter((name) => name.endsWith('.json') && ID_PATTERN.test(name.slice(0, -5)))
    const key = files
      .map((name) => {
        try {
          const st = fs.statSync(path.join(this.dir, name))
          return `${name} ${st.ino} ${st.size} ${st.mtimeMs} ${st.ctimeMs}`
        } catch {
          return `${name} -`
        }
      })
      .join('\n')
    if (this.listed?.key === key) return [...this.listed.metas]
    const out: BackupMeta[] = []
    for (const name of files) {
      const id = name.slice(0, -5)
      try {
        const meta = JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8')) as BackupMeta | null
        // Metadata of another shape is not a complete backup (`backups verify` names it).
        if (meta && typeof meta === 'object' && meta.id === id && meta.root && typeof meta.root === 'object')
          out.push(meta)
      } catch {
        // unreadable metadata = not complete
      }
    }
    this.listed = {key, metas: out}
    return [...out]
  }

  get(id: string): BackupMeta | undefined {
    return this.list().find((b) => b.id === id)
  }

  /** Every `<id>.json`, oldest first, parsed or with why not: damaged metadata is not a missing backup. */
  readAll(): MetaRead[] {
    const ids = this.names().flatMap((name) => (name.endsWith('.json') ? [name.slice(0, -5)] : []))
    return ids.filter((id) => ID_PATTERN.test(id)).map((id) => this.readFile(id))
  }

  /** One backup's metadata file as found; undefined when there is none. */
  read(id: string): MetaRead | undefined {
    return fs.existsSync(this.metaPath(id)) ? this.readFile(id) : undefined
  }

  /** Ids whose metadata was being written when a run stopped (`<id>.json.tmp`): never complete. */
  incomplete(): string[] {
    return this.names().flatMap((n) => (n.endsWith('.json.tmp') ? [n.slice(0, -9)] : []))
  }

  private names(): string[] {
    try {
      return fs.readdirSync(this.dir).sort()
    } catch {
      return []
    }
  }

  private readFile(id: string): MetaRead {
    try {
      return {id, raw: JSON.parse(fs.readFileSync(this.metaPath(id), 'utf8'))}
    } catch (err) {
      const why =
        err instanceof SyntaxError
          ? `not valid JSON (${err.message})`
          : ((err as NodeJS.ErrnoException).code ?? String(err))
      return {id, error: why}
    }
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
