import {Args} from '@oclif/core'
import chalk from 'chalk'
import {HotctlCommand} from '../../base-command.js'

export default class BackupsVerify extends HotctlCommand {
  static summary = 'Check backups against their hashes (metadata, directory listings, file contents), like git fsck.'
  static description = 'Without ID: every backup and the store (unused objects and temp files are reported as info). Exits 0 when clean, 1 when anything is damaged, listing what: backup, path inside the tree, object hash.'
  static examples = ['<%= config.bin %> backups verify', '<%= config.bin %> backups verify 20250115120000 --json']
  static args = {id: Args.string({description: 'Backup id (see `hotctl backups`); default: all of them.'})}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(BackupsVerify)
    const ctx = await this.openContext(flags.config)
    const {verifyBackups} = await import('../../pipeline/verify-backups.js')
    const {formatBytes} = await import('../../pipeline/deploy.js')
    const r = verifyBackups(ctx, args.id)
    this.finish({...r}, () => {
      const {checked, info} = r
      const lines = [`Checked ${checked.backups} backup(s): ${checked.chunks} directory listings and ${checked.objects} objects, ${formatBytes(checked.bytes)} hashed.`]
      for (const b of r.backups) {
        if (b.ok) continue
        lines.push(chalk.red(`DAMAGED backup ${b.id}:`))
        for (const d of r.damage.filter((x) => x.backup === b.id)) lines.push(`  ${d.message}`)
      }
      for (const d of r.damage.filter((x) => !x.backup)) lines.push(chalk.red(`DAMAGED store: ${d.message}`))
      const ok = r.backups.filter((b) => b.ok).map((b) => b.id)
      if (ok.length) lines.push(chalk.green(`OK: ${ok.join(', ')}`))
      if (info.orphanObjects) lines.push(`Info: ${info.orphanObjects} object(s) no backup uses (${formatBytes(info.orphanBytes)}).`)
      if (info.tempFiles.length) lines.push(`Info: ${info.tempFiles.length} temp file(s) left by interrupted writes in objects/ (removed by the next prune that drops a backup).`)
      if (info.incompleteBackups.length) lines.push(`Info: incomplete backup metadata (never restorable): ${info.incompleteBackups.join(', ')}.`)
      if (info.strayFiles.length) lines.push(`Info: files in objects/ that are not objects: ${info.strayFiles.slice(0, 10).join(', ')}.`)
      lines.push(r.damage.length ? chalk.red(`${r.damage.length} problem(s): restores of the damaged backups are refused; \`hotctl rollback --to ID\` one that is OK.`) : chalk.green('No damage found.'))
      return lines.join('\n')
    })
  }
}
