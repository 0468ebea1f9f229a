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
   * Each metadata file as last parsed, by what the file was (inode, size, mtime, ctime): a rollback
   * lists the backups ~5 times (choosing, the undo snapshot, pruning, the undo command), and at
   * 200k files each metadata file is hundreds of KiB of JSON. A file rewritten in any way is read again.
   */
  private readonly parsed = new Map<string, {stat: string; meta: BackupMeta | undefined}>()

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
      const file = path.join(this.dir, name)
      let stat: string
      try {
        const st = fs.statSync(file)
        stat = `${st.ino} ${st.size} ${st.mtimeMs} ${st.ctimeMs}`
      } catch {
        continue // gone since the listing
      }
      let known = this.parsed.get(name)
      if (known?.stat !== stat) this.parsed.set(name, (known = {stat, meta: parseMeta(file, id)}))
      if (known.meta) out.push(known.meta)
    }
    return out
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
    this.parsed.delete(`${id}.json`)
  }
}

/** A complete backup's metadata, or undefined: unreadable, or of another shape (`backups verify` names it). */
function parseMeta(file: string, id: string): BackupMeta | undefined {
  try {
    const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as BackupMeta | null
    return meta && typeof meta === 'object' && meta.id === id && meta.root && typeof meta.root === 'object'
      ? meta
      : undefined
  } catch {
    return undefined
  }
}
