import {Args} from '@oclif/core'
import chalk from 'chalk'
import {HotctlCommand} from '../../base-command.js'

export default class BackupsVerify extends HotctlCommand {
  static summary = 'Check backups against their hashes (metadata, directory listings, file contents), like git fsck.'
  static description =
    'Without ID: every backup and the store (unused objects and temp files are reported as info). Exits 0 when clean, ' +
    '1 when anything is damaged, listing what: backup, path inside the tree, object hash.'
  static examples = ['<%= config.bin %> backups verify', '<%= config.bin %> backups verify 20250115120000 --json']
  static args = {id: Args.string({description: 'Snapshot id (the id column of `hotctl backups`); default: all of them.'})}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(BackupsVerify)
    const ctx = await this.openContext(flags.config)
    const {verifyBackups} = await import('../../pipeline/verify-backups.js')
    const {formatBytes} = await import('../../pipeline/deploy.js')
    const r = await verifyBackups(ctx, args.id)
    this.finish({...r}, () => {
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
      if (info.orphanObjects) lines.push(`Info: ${info.orphanObjects} object(s) no backup uses (${formatBytes(info.orphanBytes)}).`)
      const temp = info.tempFiles.length
      if (temp) lines.push(`Info: ${temp} temp file(s) in objects/ left by interrupted writes (a prune that drops a backup removes them).`)
      const incomplete = info.incompleteBackups.join(', ')
      if (incomplete) lines.push(`Info: incomplete backup metadata (never restorable): ${incomplete}.`)
      if (info.strayFiles.length) lines.push(`Info: files in objects/ that are not objects: ${info.strayFiles.slice(0, 10).join(', ')}.`)
      const verdict = `${r.damage.length} problem(s): a restore of a damaged backup is refused; roll back --to one that is OK.`
      lines.push(r.damage.length ? chalk.red(verdict) : chalk.green('No damage found.'))
      return lines.join('\n')
    })
  }
}
