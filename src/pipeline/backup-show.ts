import {usageError} from '../errors.js'
import type {BackupMeta} from '../state/backups.js'
import type {OpContext} from './context.js'
import {catalogOf} from './releases.js'

export interface BackupFile {
  path: string
  type: 'file' | 'dir' | 'symlink'
  mode: string
  size?: number
  hash?: string
  link?: string
}

export interface BackupShowResult {
  exitCode: number
  backup: Omit<BackupMeta, 'root'> & {
    /** The `rollback --to` that restores it, or null (with `note` saying why). */
    to: string | null
    note?: string
  }
  files: BackupFile[]
}

/** `hotctl backups show ID`: one snapshot's metadata, what restores it, and every path it holds. */
export async function showBackup(ctx: OpContext, id: string): Promise<BackupShowResult> {
  const catalog = await catalogOf(ctx.target)
  const info = catalog.snapshots.find((s) => s.id === id)
  if (!info) {
    const ids = catalog.snapshots.map((s) => s.id)
    throw usageError(
      `no complete snapshot ${id}`,
      ids.length ? `Snapshots: ${ids.join(', ')} (\`hotctl backups\` describes them).` : 'There are no snapshots yet.',
    )
  }
  const manifest = await ctx.target.backups.files(id)
  const files = [...manifest]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([p, e]): BackupFile => ({
      path: p,
      type: e.type,
      mode: e.mode.toString(8),
      size: e.size,
      hash: e.hash,
      link: e.link,
    }))
  const {time, reason, release, gitSha, files: n, bytes, added, protect, to, note} = info
  const backup = {id, time, reason, release, gitSha, files: n, bytes, added, protect, to, note}
  return {exitCode: 0, backup, files}
}
