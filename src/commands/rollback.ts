import {Flags} from '@oclif/core'
import chalk from 'chalk'
import {HotctlCommand} from '../base-command.js'

export default class Rollback extends HotctlCommand {
  static summary = 'Put back the release deployed before the current one (or --to a backup id).'
  static description = 'Snapshots the current tree first (so the rollback can be undone), restores the backup, verifies the content, reloads, confirms the release is live and runs smoke tests. A second rollback goes one further back.'
  static examples = ['<%= config.bin %> rollback', '<%= config.bin %> rollback --to 20250115120000']
  static flags = {
    to: Flags.string({description: 'Backup id (YYYYMMDDHHMMSS, see `hotctl backups`): restore the tree as it was before that deploy.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Rollback)
    const ctx = await this.openContext(flags.config)
    const {rollback} = await import('../pipeline/rollback.js')
    const r = await rollback(ctx, {to: flags.to})
    this.finish({...r}, () => {
      const what = r.release ? `release ${r.release}` : 'the tree from before the first hotctl deploy'
      if (r.outcome === 'rolled-back') return chalk.green(`Rolled back to ${what} (backup ${r.to}). Undo: hotctl rollback --to ${r.undo}`)
      return chalk.red(`Rollback to ${r.to} failed: ${r.error}\n`) + (r.restore?.ok ? `Put back the tree from before the rollback (${r.undo}).` : 'The target needs attention.')
    })
  }
}
