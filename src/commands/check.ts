import {Flags} from '@oclif/core'
import {HotctlCommand, limitFlag} from '../base-command.js'

export default class Check extends HotctlCommand {
  static summary = 'Validate the config, preflight the target and tools, and run the checks; change nothing.'
  static description =
    'Preflight (the same one deploy and rollback run first): rsync 3.1+ present, source readable, target and state ' +
    'dir writable and on the same filesystem, each status URL answering JSON with the version field. Exits 1 if ' +
    'anything fails, 2 on a config error.'
  static examples = ['<%= config.bin %> check', '<%= config.bin %> check --skip-checks --json']
  static flags = {
    junit: Flags.string({
      helpValue: 'FILE',
      description: 'Write the checks and smoke tests as JUnit XML to FILE (GitHub, GitLab and Jenkins test reports).',
    }),
    'skip-checks': Flags.boolean({description: 'Only validate the config and preflight.', default: false}),
    'create-target': Flags.boolean({
      description: 'A missing target is fine: `deploy --create-target` will create it.',
      default: false,
    }),
    limit: limitFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Check)
    const ctx = await this.openContext(flags.config, flags.limit)
    const {check} = await import('../pipeline/checks.js')
    const {renderCheck, renderPreflight} = await import('../ui/check-report.js')
    const {withJunit} = await import('../report/junit.js')
    const r = await withJunit(flags.junit, 'check', this.ui, () =>
      check(ctx, {
        skipChecks: flags['skip-checks'],
        createTarget: flags['create-target'],
        onPreflight: (items) => {
          if (items.length > 0) this.ui.say(renderPreflight(items))
        },
      }),
    )
    this.finish({...r}, () => renderCheck(r))
  }
}
