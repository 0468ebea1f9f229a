import chalk from 'chalk'
import {showPath} from '../file-names.js'
import type {BackupShowResult} from '../pipeline/backup-show.js'
import {describe} from '../pipeline/releases.js'
import {formatBytes} from './format.js'

/** `hotctl backups show ID`: the snapshot's facts, then one line per path (mode, size, hash). */
export function renderBackupShow(r: BackupShowResult): string {
  const b = r.backup
  const fact = (name: string, value: string) => `${chalk.bold(name.padEnd(10))}${value}`
  const lines = [
    fact('Snapshot', b.id),
    fact('Taken', `${b.time} by a ${b.reason}`),
    fact('Holds', describe(b.release)),
    ...(b.gitSha ? [fact('Git', b.gitSha)] : []),
    fact('Size', `${b.files} files, ${formatBytes(b.bytes)} (${formatBytes(b.added)} added to the store)`),
    fact('Restore', b.to ? `hotctl rollback --to ${b.to}` : (b.note ?? 'no `--to` restores it')),
    ...(b.protect?.length ? [fact('Protected', b.protect.join(', '))] : []),
    '',
  ]
  const name = (f: (typeof r.files)[number]) => (f.type === 'dir' ? `${showPath(f.path)}/` : showPath(f.path))
  const width = Math.max(0, ...r.files.map((f) => name(f).length))
  for (const f of r.files) {
    const what =
      f.type === 'dir'
        ? 'dir'.padEnd(10)
        : f.type === 'symlink'
          ? `-> ${f.link}`
          : `${formatBytes(f.size ?? 0).padEnd(10)} ${f.hash?.slice(0, 12)}`
    lines.push(`${f.mode.padStart(4, '0')}  ${name(f).padEnd(width)}  ${chalk.dim(what)}`.trimEnd())
  }
  return lines.join('\n')
}
