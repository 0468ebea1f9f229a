import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {cacheFileWriter} from './cache-file.js'

/** Temp files of `writer` in this process. */
let pieces = 0

/** How many manifests the cache keeps (the newest by write time): a few hosts' latest backups. */
const KEEP = 8

/**
 * Backup manifests this controller wrote or read from a host, by the sha256 of their JSON, in
 * `~/.cache/hotctl/ssh-manifests/` (`$XDG_CACHE_HOME`): the next backup, which reuses the previous
 * backup's copies, reads that backup's manifest here instead of over ssh. A manifest is used only
 * when its sha256 is the one the host's metadata records; anything else is a miss. Only a cache:
 * failures to read or write it cost a round trip, nothing else.
 */
export class ManifestCache {
  constructor(
    private readonly dir = path.join(
      process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'),
      'hotctl',
      'ssh-manifests',
    ),
  ) {}

  get(sha: string): string | undefined {
    if (!/^[0-9a-f]{64}$/.test(sha)) return undefined
    try {
      const file = path.join(this.dir, `${sha}.json`)
      // Hashed as read (the bytes are the JSON's UTF-8): no second encoding of megabytes of text.
      const bytes = fs.readFileSync(file)
      if (crypto.createHash('sha256').update(bytes).digest('hex') !== sha) return undefined
      const text = bytes.toString('utf8')
      // Used: kept among the newest (a full manifest that later backups' deltas change stays cached).
      const now = new Date()
      fs.utimesSync(file, now, now)
      return text
    } catch {
      return undefined
    }
  }

  /**
   * The full manifest the newest backup of `where` (a host's state dir) is, or is a delta from, as
   * this controller last wrote or used it: a backup's id and the manifest's sha256 (`remember`).
   * Only a hint of what to parse ahead: what the host's metadata names decides.
   */
  last(where: string): {id: string; sha: string} | undefined {
    try {
      const [id, sha] = fs.readFileSync(this.lastFile(where), 'utf8').split(' ')
      return id && sha && /^[0-9a-f]{64}$/.test(sha) ? {id, sha} : undefined
    } catch {
      return undefined
    }
  }

  remember(where: string, id: string, sha: string): void {
    try {
      fs.mkdirSync(this.dir, {recursive: true, mode: 0o700})
      const file = this.lastFile(where)
      fs.writeFileSync(`${file}.${process.pid}.tmp`, `${id} ${sha}`, {mode: 0o600})
      fs.renameSync(`${file}.${process.pid}.tmp`, file)
    } catch {
      // only a cache
    }
  }

  private lastFile(where: string): string {
    return path.join(this.dir, `last-${crypto.createHash('sha256').update(where).digest('hex').slice(0, 32)}`)
  }

  put(sha: string, text: string): void {
    const w = this.writer()
    w.write(text)
    w.done(sha)
  }

  /**
   * `put` in pieces, for a manifest never held whole (ssh-backups' ManifestOut): `write` each
   * piece, then `done(sha)` once the manifest is committed, or `drop` it.
   */
  writer(): {write: (piece: string) => void; done: (sha: string) => void; drop: () => void} {
    const out = cacheFileWriter(path.join(this.dir, `.${process.pid}.${++pieces}.tmp`))
    return {
      write: out.write,
      done: (sha) => {
        if (!/^[0-9a-f]{64}$/.test(sha)) return out.drop()
        if (out.finish(path.join(this.dir, `${sha}.json`))) this.trim()
      },
      drop: out.drop,
    }
  }

  /** Keeps the newest KEEP manifests. */
  private trim(): void {
    try {
      const old = fs
        .readdirSync(this.dir)
        .filter((n) => /^[0-9a-f]{64}\.json$/.test(n))
        .map((n) => ({n, t: fs.statSync(path.join(this.dir, n)).mtimeMs}))
        .sort((a, b) => b.t - a.t)
        .slice(KEEP)
      for (const {n} of old) fs.rmSync(path.join(this.dir, n), {force: true})
    } catch {
      // only a cache
    }
  }
}
