import {Flags} from '@oclif/core'
import chalk from 'chalk'
import {HotctlCommand} from '../base-command.js'
import {EXIT} from '../errors.js'

export default class Check extends HotctlCommand {
  static summary = 'Validate the config, preflight the target and tools, and run the checks; change nothing.'
  static description = 'Preflight (the same one deploy and rollback run first): rsync 3.1+ present, source readable, target and state dir writable and on the same filesystem, each status URL answering JSON with the version field. Exits 1 if anything fails, 2 on a config error.'
  static examples = ['<%= config.bin %> check', '<%= config.bin %> check --skip-checks --json']
  static flags = {
    'skip-checks': Flags.boolean({description: 'Only validate the config and preflight.', default: false}),
    'create-target': Flags.boolean({description: 'A missing target is fine: `deploy --create-target` will create it.', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Check)
    const ctx = await this.openContext(flags.config)
    const {runTasks} = await import('../ui/render.js')
    const {checkTasks} = await import('../pipeline/checks.js')
    const {preflight: runPreflight} = await import('../pipeline/preflight.js')
    const preflight = await runPreflight(ctx, {source: true, createTarget: flags['create-target']})
    for (const p of preflight) this.ui.say(`${p.ok ? chalk.green('✔') : chalk.red('✖')} ${p.name}: ${p.detail}${!p.ok && p.hint ? ` → ${p.hint}` : ''}`)
    const checks: {name: string; ok: boolean; detail: string}[] = []
    if (!flags['skip-checks'] && ctx.config.checks.length > 0) {
      await runTasks(ctx.ui, [{title: 'Checks', task: (_c, task) => task.newListr(checkTasks(ctx, checks), {concurrent: true, exitOnError: false})}], {}).catch(() => undefined)
    }
    const ok = preflight.every((p) => p.ok) && checks.every((c) => c.ok)
    const exitCode = ctx.signal.aborted ? EXIT.interrupted : ok ? EXIT.ok : EXIT.failed
    this.finish({exitCode, config: ctx.config.file, preflight, checks}, () => (ok ? chalk.green(`All good: config ${ctx.config.file}, ${preflight.length} preflight item(s), ${checks.length} check(s).`) : chalk.red(`Check failed: ${[...preflight.filter((p) => !p.ok).map((p) => `${p.name} (${p.detail})`), ...checks.filter((c) => !c.ok).map((c) => `check ${c.name}`)].join('; ')}`)))
  }
}
