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
    canary: Flags.string({
      helpValue: 'PERCENTS',
      description:
        'In-process canary through the reference agent: e.g. 10,50,100 — that share of calls goes to the new release, ' +
        'step by step, then it is promoted; a breach of --max-error-rate aborts and restores. On a fleet it runs per ' +
        'wave, on every host of the wave at once.',
    }),
    'canary-interval': Flags.string({
      helpValue: 'DURATION',
      description: 'How long each canary step is watched (default 30s).',
    }),
    'max-error-rate': Flags.string({
      helpValue: 'PERCENT',
      description: "The new release's highest error rate over a canary step (default 1%).",
    }),
    'max-p95-ratio': Flags.string({
      helpValue: 'RATIO',
      description:
        "With --canary: abort when the new release's p95 latency exceeds the old one's times RATIO (default: not judged).",
    }),
    'canary-min-calls': Flags.string({
      helpValue: 'N',
      description:
        'With --canary: the fewest calls the new release must serve in each step for it to be judged (default 1); fewer is a breach.',
    }),
    maintenance: Flags.boolean({
      description:
        'Maintenance mode (the service answers 503) from the first change until the release (or, after a failure, the restored one) is confirmed live.',
      default: false,
    }),
    'dry-run': Flags.boolean({description: 'Print the plan and change set; change nothing.', default: false}),
    force: Flags.boolean({
      description: 'Deploy even when nothing changed (re-writes the marker, reloads, smoke-tests).',
      default: false,
    }),
    junit: Flags.string({
      helpValue: 'FILE',
      description: 'Write the checks and smoke tests as JUnit XML to FILE (GitHub, GitLab and Jenkins test reports).',
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
    const {agentEndpoints, parseCanaryFlags} = await import('../pipeline/canary.js')
    const canary = parseCanaryFlags({
      canary: flags.canary,
      interval: flags['canary-interval'],
      maxErrorRate: flags['max-error-rate'],
      maxP95Ratio: flags['max-p95-ratio'],
      minCalls: flags['canary-min-calls'],
    })
    const deployFlags = {
      dryRun: flags['dry-run'],
      force: flags.force,
      noRestart: flags['no-restart'],
      skipChecks: flags['skip-checks'],
      createTarget: flags['create-target'],
      maintenance: flags.maintenance,
      canary,
    }
    const {withJunit} = await import('../report/junit.js')
    if ('fleet' in opened) {
      if (canary) {
        // Each host's agent, from its own reload trigger URL: a usage error before anything is touched.
        const {forHost} = await import('../config/hosts.js')
        for (const h of opened.fleet.config.hosts) agentEndpoints(forHost(opened.fleet.config, h))
      }
      const {fleetDeploy} = await import('../pipeline/fleet-deploy.js')
      const {renderFleetDeploy} = await import('../ui/fleet-report.js')
      const {withFleetNotify} = await import('../notify/notify.js')
      const r = await withFleetNotify(opened.fleet, 'deploy', () =>
        withJunit(flags.junit, 'deploy', this.ui, () => fleetDeploy(opened.fleet, deployFlags)),
      )
      this.finish({...r}, () => renderFleetDeploy(r))
      return
    }
    const {ctx} = opened
    if (canary) agentEndpoints(ctx.config) // a usage error before anything is touched
    const {deploy} = await import('../pipeline/deploy.js')
    const {renderDeploy} = await import('../ui/deploy-report.js')
    const {withNotify} = await import('../notify/notify.js')
    const r = await withNotify(ctx, 'deploy', () =>
      withJunit(flags.junit, 'deploy', this.ui, () => deploy(ctx, deployFlags)),
    )
    this.finish({...r}, () => renderDeploy(r, ctx.config))
  }
}
