import {Flags} from '@oclif/core'
import {HotctlCommand} from '../base-command.js'

export default class Log extends HotctlCommand {
  static summary = 'Every operation from the journal: when, who, where, the command, how long, the result and release.'
  static description =
    'Newest first. Each line: start time, operation, result, duration, the release it deployed or restored, files ' +
    'added/changed/deleted (+/~/-; for a rollback, files written count as changed), user@host and the command as typed; ' +
    'the error of a failed operation below it.'
  static examples = [
    '<%= config.bin %> log',
    '<%= config.bin %> log -n 5',
    '<%= config.bin %> log --since 2d --json',
    '<%= config.bin %> log --since 2026-11-22T18:00Z',
  ]
  static flags = {
    number: Flags.integer({char: 'n', description: 'Show the newest N operations.', min: 1}),
    since: Flags.string({
      description: 'Only operations started since a time (2026-11-22, ISO 8601) or 30m/12h/7d/2w ago.',
    }),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Log)
    const {operationLog, parseSince} = await import('../pipeline/log.js')
    const since = flags.since === undefined ? undefined : parseSince(flags.since)
    const ctx = await this.openContext(flags.config)
    const {renderLog} = await import('../ui/log-report.js')
    const r = await operationLog(ctx, {limit: flags.number, since})
    this.finish({...r}, () => renderLog(r))
  }
}
