import {Flags} from '@oclif/core'
import {HotctlCommand, limitFlag} from '../base-command.js'

export default class Deploy extends HotctlCommand {
  static summary = 'Deploy the source tree into the running service, prove it is live, restore on failure.'
  static description =
    'Runs checks, backs up the target, syncs changed files in place (no restart), triggers the hot reload, waits ' +
    'until the service reports the new release id, runs smoke tests. Any failure after the target changed restores ' +
    'the backup and proves the previous release is live (exit 3).'
  static examples = [
    '<%= config.bin %> deploy --no-restart',
    '<%= config.bin %> deploy --dry-run',
    '<%= config.bin %> deploy --skip-checks --json',
    '<%= config.bin %> deploy --limit web1,web2',
  ]
  static flags = {
    'no-restart': Flags.boolean({
      description: 'Refuse changes that need a restart (exit 6) and never run reload.restart.',
      default: false,
    }),
    'dry-run': Flags.boolean({description: 'Print the plan and change set; change nothing.', default: false}),
    force: Flags.boolean({
      description: 'Deploy even when nothing changed (re-writes the marker, reloads, smoke-tests).',
      default: false,
    }),
    'skip-checks': Flags.boolean({description: 'Do not run the configured checks.', default: false}),
    'create-target': Flags.boolean({
      description: 'Create the target directory if it does not exist (otherwise a missing target is an error).',
      default: false,
    }),
    limit: limitFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Deploy)
    const opened = await this.openOperation(flags.config, flags.limit)
    const deployFlags = {
      dryRun: flags['dry-run'],
      force: flags.force,
      noRestart: flags['no-restart'],
      skipChecks: flags['skip-checks'],
      createTarget: flags['create-target'],
    }
    if ('fleet' in opened) {
      const {fleetDeploy} = await import('../pipeline/fleet-deploy.js')
      const {renderFleetDeploy} = await import('../ui/fleet-report.js')
      const r = await fleetDeploy(opened.fleet, deployFlags)
      this.finish({...r}, () => renderFleetDeploy(r))
      return
    }
    const {ctx} = opened
    const {deploy} = await import('../pipeline/deploy.js')
    const {renderDeploy} = await import('../ui/deploy-report.js')
    const r = await deploy(ctx, deployFlags)
    this.finish({...r}, () => renderDeploy(r, ctx.config))
  }
}
