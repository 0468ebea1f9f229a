import {Args} from '@oclif/core'
import {HotctlCommand, limitFlag} from '../../base-command.js'

export default class BackupsVerify extends HotctlCommand {
  static summary = 'Check backups against their hashes (metadata, directory listings, file contents), like git fsck.'
  static description =
    'Without ID: every backup and the store (unused objects and temp files are reported as info). Exits 0 when clean, ' +
    '1 when anything is damaged, listing what: backup, path inside the tree, object hash.'
  static examples = ['<%= config.bin %> backups verify', '<%= config.bin %> backups verify 20250115120000 --json']
  static flags = {limit: limitFlag}
  static args = {
    id: Args.string({description: 'Snapshot id (the id column of `hotctl backups`); default: all of them.'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(BackupsVerify)
    const ctx = await this.openContext(flags.config, flags.limit)
    const {verifyBackups} = await import('../../pipeline/verify-backups.js')
    const {renderVerify} = await import('../../ui/verify-report.js')
    const r = await verifyBackups(ctx, args.id)
    this.finish({...r}, () => renderVerify(r))
  }
}
