import {HotctlCommand} from '../base-command.js'
import {EXIT} from '../errors.js'

export default class Status extends HotctlCommand {
  static summary = 'Current release, lock holder, interrupted operation, recent deploys and the live service version.'
  static description = 'Exits 4 when the last operation could not restore the target (it needs attention).'
  static examples = ['<%= config.bin %> status', '<%= config.bin %> status --json']

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const ctx = await this.openContext(flags.config)
    const {collectStatus} = await import('../pipeline/status.js')
    const {renderStatus} = await import('../ui/status-report.js')
    const s = await collectStatus(ctx)
    this.finish({exitCode: s.needsAttention ? EXIT.needsAttention : EXIT.ok, ...s}, () => renderStatus(s))
  }
}
