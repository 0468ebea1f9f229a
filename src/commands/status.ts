import {HotctlCommand, limitFlag} from '../base-command.js'
import {EXIT} from '../errors.js'

export default class Status extends HotctlCommand {
  static summary = 'Current release, lock holder, interrupted operation, recent deploys and the live service version.'
  static description = 'Exits 4 when the last operation could not restore the target (it needs attention).'
  static examples = ['<%= config.bin %> status', '<%= config.bin %> status --json']
  static flags = {limit: limitFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const opened = await this.openOperation(flags.config, flags.limit)
    if ('fleet' in opened) {
      const {fleetStatus} = await import('../pipeline/fleet-status.js')
      const {renderFleetStatus} = await import('../ui/fleet-report.js')
      const s = await fleetStatus(opened.fleet)
      this.finish({...s}, () => renderFleetStatus(s))
      return
    }
    const {ctx} = opened
    const {collectStatus} = await import('../pipeline/status.js')
    const {renderStatus} = await import('../ui/status-report.js')
    const s = await collectStatus(ctx)
    this.finish({exitCode: s.needsAttention ? EXIT.needsAttention : EXIT.ok, ...s}, () => renderStatus(s))
  }
}
