import {HotctlCommand, limitFlag} from '../../base-command.js'

export default class Backups extends HotctlCommand {
  static summary =
    'List snapshots: which release each holds, when and why it was taken, its size; and the valid `rollback --to` targets.'
  static description =
    'Each deploy snapshots the tree it replaces, each rollback the tree it replaces (its undo). A snapshot is named by ' +
    'the operation that took it; the RELEASE IT HOLDS column says what it holds, and `hotctl rollback --to RELEASE` ' +
    'restores the newest snapshot holding that release. A release whose deploy was restored was never live and is no target.'
  static examples = [
    '<%= config.bin %> backups',
    '<%= config.bin %> backups --json',
    '<%= config.bin %> backups prune --keep 5',
  ]
  static flags = {limit: limitFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(Backups)
    const opened = await this.openOperation(flags.config, flags.limit)
    if ('fleet' in opened) {
      const {fleetBackups} = await import('../../pipeline/fleet-status.js')
      const {renderFleetBackups} = await import('../../ui/fleet-report.js')
      const b = await fleetBackups(opened.fleet)
      this.finish({...b}, () => renderFleetBackups(b))
      return
    }
    const {ctx} = opened
    const {listBackups} = await import('../../pipeline/backups.js')
    const {renderBackups} = await import('../../ui/backups-report.js')
    const r = await listBackups(ctx)
    this.finish({...r}, () => renderBackups(r))
  }
}
