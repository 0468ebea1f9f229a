import {Flags} from '@oclif/core'
import {HotctlCommand, limitFlag} from '../../base-command.js'

export default class BackupsPrune extends HotctlCommand {
  static summary = 'Delete backups beyond the newest N (never the newest one holding a release that passed smoke).'
  static examples = ['<%= config.bin %> backups prune --keep 5', '<%= config.bin %> backups prune --keep 3 --dry-run']
  static flags = {
    keep: Flags.integer({description: 'Backups to keep (default: config keep).', min: 1}),
    'dry-run': Flags.boolean({
      description: 'List what would go and the bytes it would free; remove nothing.',
      default: false,
    }),
    limit: limitFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(BackupsPrune)
    const ctx = await this.openContext(flags.config, flags.limit)
    const {pruneBackups} = await import('../../pipeline/prune.js')
    const {renderPrune} = await import('../../ui/prune-report.js')
    const r = await pruneBackups(ctx, flags.keep ?? ctx.config.keep, {dryRun: flags['dry-run']})
    this.finish({...r}, () => renderPrune(r))
  }
}
