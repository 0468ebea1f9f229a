import {Flags} from '@oclif/core'
import chalk from 'chalk'
import {HotctlCommand} from '../base-command.js'
import {EXIT} from '../errors.js'

export default class Init extends HotctlCommand {
  static summary = 'Write a commented hotctl.config.yaml for the project in the working directory.'
  static description = 'Detects Python (requirements.txt, pyproject.toml), Node (package.json) or neither, fills in the checks it can find (pytest, ruff/flake8, mypy; npm test, tsc, npm run lint) and validates the written file. Never overwrites an existing config without --force (exit 2). Asks for the target only on an interactive terminal.'
  static examples = ['<%= config.bin %> init', '<%= config.bin %> init --target /srv/app --with-agent', '<%= config.bin %> init --template node --json']
  static flags = {
    template: Flags.string({description: 'Template to use instead of the detected one.', options: ['python', 'node', 'generic']}),
    target: Flags.string({description: 'Live directory of the running service (default: the placeholder /opt/app, to edit).'}),
    'with-agent': Flags.boolean({description: 'Also copy the reference Python hot-reload agent to ./hotreload_agent.', default: false}),
    force: Flags.boolean({description: 'Overwrite an existing config (and ./hotreload_agent with --with-agent).', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Init)
    const {runInit, DEFAULT_TARGET} = await import('../init/init.js')
    let target = flags.target
    if (target === undefined && !flags.json && process.stdin.isTTY && !process.env.CI) {
      const {createInterface} = await import('node:readline/promises')
      const rl = createInterface({input: process.stdin, output: process.stderr})
      try {
        target = (await rl.question(`Live directory of the running service (target) [${DEFAULT_TARGET}]: `)).trim() || undefined
      } finally {
        rl.close()
      }
    }
    const r = await runInit({cwd: process.cwd(), template: flags.template as 'python' | 'node' | 'generic' | undefined, target, withAgent: flags['with-agent'], force: flags.force})
    this.finish({exitCode: EXIT.ok, ...r}, () => {
      const checks = Object.entries(r.checks)
      const lines = [
        chalk.green(`${r.overwrote ? 'Overwrote' : 'Wrote'} ${r.path}`) + ` (template ${r.template}: ${r.reason})`,
        `Target:  ${r.target}${r.targetIsPlaceholder ? chalk.yellow(' (placeholder: edit it)') : ''}`,
        `Checks:  ${checks.length ? checks.map(([n, c]) => `${n}: ${Array.isArray(c) ? c.join(' && ') : c}`).join('; ') : 'none detected (add them under checks:)'}`,
      ]
      if (r.agent) lines.push(`Agent:   copied to ${r.agent} (see templates/python/README.md to wire it in)`)
      if (r.tokenFile) lines.push(`Token:   ${r.tokenCreated ? 'generated into' : 'kept'} ${r.tokenFile} (mode 0600, never printed)${r.gitignore ? `, listed in ${r.gitignore}` : ''}`)
      for (const w of r.warnings) lines.push(chalk.yellow(`Warning: ${w}`))
      lines.push(chalk.bold('Next steps:'), ...r.next.map((n) => `  ${n}`))
      return lines.join('\n')
    })
  }
}
