import {Args} from '@oclif/core'
import {HotctlCommand} from '../../base-command.js'

export default class BackupsShow extends HotctlCommand {
  static summary =
    "A snapshot's metadata (what it holds, when and why taken, size, the --to that restores it) and its files."
  static examples = [
    '<%= config.bin %> backups show 20250115120000',
    '<%= config.bin %> backups show 20250115120000 --json',
  ]
  static args = {
    id: Args.string({description: 'Snapshot id (the SNAPSHOT column of `hotctl backups`).', required: true}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(BackupsShow)
    const ctx = await this.openContext(flags.config)
    const {showBackup} = await import('../../pipeline/backup-show.js')
    const {renderBackupShow} = await import('../../ui/backup-show-report.js')
    const r = await showBackup(ctx, args.id)
    this.finish({...r}, () => renderBackupShow(r))
  }
}
