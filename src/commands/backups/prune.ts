import {Flags} from '@oclif/core'
import {HotctlCommand} from '../../base-command.js'
import {EXIT} from '../../errors.js'

export default class BackupsPrune extends HotctlCommand {
  static summary = 'Delete backups beyond the newest N (never the newest one holding a release that passed smoke).'
  static examples = ['<%= config.bin %> backups prune --keep 5']
  static flags = {keep: Flags.integer({description: 'Backups to keep (default: config keep).', min: 1})}

  async run(): Promise<void> {
    const {flags} = await this.parse(BackupsPrune)
    const ctx = await this.openContext(flags.config)
    const {pruneBackups} = await import('../../pipeline/prune.js')
    const keep = flags.keep ?? ctx.config.keep
    const r = await pruneBackups(ctx, keep)
    this.finish({exitCode: EXIT.ok, keep, ...r}, () => `Removed ${r.removed.length} backup(s)${r.removed.length ? `: ${r.removed.join(', ')}` : ''}; freed ${r.freedBytes} bytes; kept the newest ${keep}.`)
  }
}
