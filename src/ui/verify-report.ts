import chalk from 'chalk'
import type {VerifyBackupsResult} from '../pipeline/verify-backups.js'
import {formatBytes} from './format.js'

/** `hotctl backups verify`: what was hashed, each damaged backup with what is wrong, the store's info, the verdict. */
export function renderVerify(r: VerifyBackupsResult): string {
  const {checked, info} = r
  const what = `${checked.chunks} directory listings and ${checked.objects} objects, ${formatBytes(checked.bytes)} hashed`
  const lines = [`Checked ${checked.backups} backup(s): ${what}.`]
  for (const b of r.backups) {
    if (b.ok) continue
    lines.push(chalk.red(`DAMAGED backup ${b.id}:`))
    for (const d of r.damage.filter((x) => x.backup === b.id)) lines.push(`  ${d.message}`)
  }
  for (const d of r.damage.filter((x) => !x.backup)) lines.push(chalk.red(`DAMAGED store: ${d.message}`))
  const ok = r.backups.filter((b) => b.ok).map((b) => b.id)
  if (ok.length) lines.push(chalk.green(`OK: ${ok.join(', ')}`))
  if (info.orphanObjects)
    lines.push(`Info: ${info.orphanObjects} object(s) no backup uses (${formatBytes(info.orphanBytes)}).`)
  const temp = info.tempFiles.length
  if (temp)
    lines.push(
      `Info: ${temp} temp file(s) in objects/ left by interrupted writes (a prune that drops a backup removes them).`,
    )
  const incomplete = info.incompleteBackups.join(', ')
  if (incomplete) lines.push(`Info: incomplete backup metadata (never restorable): ${incomplete}.`)
  if (info.strayFiles.length)
    lines.push(`Info: files in objects/ that are not objects: ${info.strayFiles.slice(0, 10).join(', ')}.`)
  const verdict = `${r.damage.length} problem(s): a restore of a damaged backup is refused; roll back --to one that is OK.`
  lines.push(r.damage.length ? chalk.red(verdict) : chalk.green('No damage found.'))
  return lines.join('\n')
}
