import {Flags} from '@oclif/core'
import chalk from 'chalk'
import {HotctlCommand} from '../base-command.js'
import {showPath} from '../file-names.js'

export default class Deploy extends HotctlCommand {
  static summary = 'Deploy the source tree into the running service, prove it is live, restore on failure.'
  static description = 'Runs checks, backs up the target, syncs changed files in place (no restart), triggers the hot reload, waits until the service reports the new release id, runs smoke tests. Any failure after the target changed restores the backup and proves the previous release is live (exit 3).'
  static examples = ['<%= config.bin %> deploy --no-restart', '<%= config.bin %> deploy --dry-run', '<%= config.bin %> deploy --skip-checks --json']
  static flags = {
    'no-restart': Flags.boolean({description: 'Refuse changes that need a restart (exit 6) and never run reload.restart.', default: false}),
    'dry-run': Flags.boolean({description: 'Print the plan and change set; change nothing.', default: false}),
    force: Flags.boolean({description: 'Deploy even when nothing changed (re-writes the marker, reloads, smoke-tests).', default: false}),
    'skip-checks': Flags.boolean({description: 'Do not run the configured checks.', default: false}),
    'create-target': Flags.boolean({description: 'Create the target directory if it does not exist (otherwise a missing target is an error).', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Deploy)
    const ctx = await this.openContext(flags.config)
    const {deploy, describeChanges, formatBytes} = await import('../pipeline/deploy.js')
    const r = await deploy(ctx, {dryRun: flags['dry-run'], force: flags.force, noRestart: flags['no-restart'], skipChecks: flags['skip-checks'], createTarget: flags['create-target']})
    this.finish({...r}, () => {
      const c = r.changes
      const lines: string[] = []
      if (r.outcome === 'dry-run' && r.plan && c) {
        lines.push(chalk.bold(`Plan for release ${r.plan.id} (dry run, nothing changed):`), ...(r.steps ?? []).map((s) => `  - ${s}`), `Changes: ${describeChanges(c)}`)
        for (const p of c.added) lines.push(`  ${chalk.green('+')} ${showPath(p)}`)
        for (const p of c.changed) lines.push(`  ${chalk.yellow('~')} ${showPath(p)}`)
        for (const p of c.deleted) lines.push(`  ${chalk.red('-')} ${showPath(p)}`)
        if (r.plan.needsRestart.length) lines.push(chalk.yellow(`Needs a restart: ${r.plan.needsRestart.map(showPath).join(', ')}`))
        lines.push(`rsync: ${r.plan.rsyncArgv.join(' ')}`)
      } else if (r.outcome === 'nothing-to-deploy') lines.push(`Nothing to deploy: ${ctx.config.target} already matches ${ctx.config.source} (--force deploys anyway).`)
      else if (r.outcome === 'deployed') {
        lines.push(chalk.green(`Deployed release ${r.release} (${c ? describeChanges(c) : ''}) in ${(r.durationMs / 1000).toFixed(1)}s.`))
        if (r.proof?.confirmed) lines.push(`Live: every service reports ${r.proof.confirmed}${r.proof.restarted ? ' (after restart)' : ''}.`)
        if (r.backup) lines.push(`Backup ${r.backup.id}: ${r.backup.files} files, ${formatBytes(r.backup.added)} added. Undo: hotctl rollback`)
      } else {
        lines.push(chalk.red(`Deploy ${r.release ?? ''} failed: ${r.error}`))
        if (r.restore) lines.push(r.restore.ok ? chalk.yellow(`Restored backup ${r.restore.backup} and proved ${r.restore.release ? `release ${r.restore.release}` : 'the previous tree'} live again.`) : chalk.red(`Restore of ${r.restore.backup} FAILED: ${r.restore.error}. The target needs attention.`))
      }
      return lines.join('\n')
    })
  }
}
