import {Flags} from '@oclif/core'
import {HotctlCommand, limitFlag} from '../../base-command.js'

export default class BackupsPrune extends HotctlCommand {
  static summary = 'Delete backups beyond the newest N (never the newest one holding a release that passed smoke).'
  static examples = ['<%= config.bin %> backups prune --keep 5']
  static flags = {
    keep: Flags.integer({description: 'Backups to keep (default: config keep).', min: 1}),
    limit: limitFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(BackupsPrune)
    const ctx = await this.openContext(flags.config, flags.limit)
    const {pruneBackups} = await import('../../pipeline/prune.js')
    const {renderPrune} = await import('../../ui/prune-report.js')
    const r = await pruneBackups(ctx, flags.keep ?? ctx.config.keep)
    this.finish({...r}, () => renderPrune(r))
  }
}
