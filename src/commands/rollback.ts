import {Flags} from '@oclif/core'
import {HotctlCommand, limitFlag} from '../base-command.js'

export default class Rollback extends HotctlCommand {
  static summary = 'Go back to the release before the live one, or --to the release you want live.'
  static description = [
    'Snapshots the current tree first (so the rollback can be undone), restores the snapshot holding the release, ' +
      'verifies the content, reloads, confirms the service reports the release and runs smoke tests.',
    'Without --to: one step back, to the release that was live before the live one was deployed; a second rollback goes one further back.',
    '`--to RELEASE` ends with RELEASE live; `hotctl backups` lists the valid targets. A release whose deploy was restored ' +
      'was never live and is refused. `--to initial` puts back the tree from before the first hotctl deploy. `--to` the ' +
      'live release changes nothing: it confirms the release is live and exits 0.',
  ].join('\n\n')
  static examples = [
    {description: 'Back to the release before the live one', command: '<%= config.bin %> rollback'},
    {description: 'End with release 20250115120000 live', command: '<%= config.bin %> rollback --to 20250115120000'},
    {description: 'Back to the tree from before hotctl took over', command: '<%= config.bin %> rollback --to initial'},
  ]
  static flags = {
    force: Flags.boolean({
      description: 'Roll back even when release steps being undone have no `undo` (what they changed stays in place).',
      default: false,
    }),
    junit: Flags.string({
      helpValue: 'FILE',
      description: 'Write the checks and smoke tests as JUnit XML to FILE (GitHub, GitLab and Jenkins test reports).',
    }),
    to: Flags.string({
      helpValue: 'RELEASE',
      description:
        'Release id to end with live (YYYYMMDDHHMMSS, as `hotctl backups` lists them), ' +
        'or `initial` for the tree from before the first hotctl deploy.',
    }),
    limit: limitFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Rollback)
    const opened = await this.openOperation(flags.config, flags.limit)
    const {withJunit} = await import('../report/junit.js')
    if ('fleet' in opened) {
      const {fleetRollback} = await import('../pipeline/fleet-rollback.js')
      const {renderFleetRollback} = await import('../ui/fleet-report.js')
      const {withFleetNotify} = await import('../notify/notify.js')
      const r = await withFleetNotify(opened.fleet, 'rollback', () =>
        withJunit(flags.junit, 'rollback', this.ui, () =>
          fleetRollback(opened.fleet, {to: flags.to, force: flags.force}),
        ),
      )
      this.finish({...r}, () => renderFleetRollback(r))
      return
    }
    const {ctx} = opened
    const {rollback} = await import('../pipeline/rollback.js')
    const {renderRollback} = await import('../ui/rollback-report.js')
    const {withNotify} = await import('../notify/notify.js')
    const r = await withNotify(ctx, 'rollback', () =>
      withJunit(flags.junit, 'rollback', this.ui, () => rollback(ctx, {to: flags.to, force: flags.force})),
    )
    this.finish({...r}, () => renderRollback(r))
  }
}
