import chalk from 'chalk'
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
    const s = await collectStatus(ctx)
    this.finish({exitCode: s.needsAttention ? EXIT.needsAttention : EXIT.ok, ...s}, () => {
      const lines = [`${chalk.bold('Target')}   ${s.target}`]
      lines.push(`${chalk.bold('Release')}  ${s.release ? `${s.release.id}${s.release.gitSha ? ` (git ${s.release.gitSha.slice(0, 10)})` : ''} by ${s.release.user} at ${s.release.time}` : 'none (no release marker: not deployed by hotctl yet)'}`)
      for (const svc of s.services) lines.push(`${chalk.bold('Service')}  ${svc.name}: ${svc.error ? chalk.red(`unreachable: ${svc.error}`) : `reports ${svc.version ?? '(no version)'}${svc.state ? `, state ${String(svc.state)}` : ''} ${svc.live ? chalk.green('(live)') : svc.live === false ? chalk.yellow('(not the deployed release)') : ''}`}`)
      lines.push(`${chalk.bold('Lock')}     ${s.lock ? `${s.lock.stale ? 'stale ' : ''}held by pid ${s.lock.pid} on ${s.lock.host} (${s.lock.user}, "${s.lock.command}", since ${s.lock.started})` : 'free'}`)
      if (s.interrupted) lines.push(chalk.yellow(`Interrupted: ${s.interrupted.op} ${s.interrupted.id} stopped at phase ${s.interrupted.lastPhase ?? 'start'}; the next deploy or rollback restores its backup first.`))
      if (s.needsAttention) lines.push(chalk.red(`NEEDS ATTENTION: ${s.attention}`))
      const rate = s.stats.successRate === null ? 'n/a' : `${(s.stats.successRate * 100).toFixed(0)}%`
      lines.push(`${chalk.bold('Deploys')}  ${s.stats.deploys} (success rate ${rate}), rollbacks ${s.stats.rollbacks} (${s.stats.rollbacksLastHour} in the last hour), automatic restores ${s.stats.restores}, backups ${s.backups}`)
      if (s.recent.length) {
        lines.push(chalk.bold('Recent'))
        for (const o of s.recent) lines.push(`  ${o.id}  ${o.op.padEnd(8)} ${o.result.padEnd(11)} ${o.durationMs === null ? '' : `${(o.durationMs / 1000).toFixed(1)}s`}${o.error ? `  ${o.error.split('\n')[0]}` : ''}`)
      }
      return lines.join('\n')
    })
  }
}
