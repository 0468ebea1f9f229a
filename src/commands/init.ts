import {Flags} from '@oclif/core'
import {HotctlCommand} from '../base-command.js'
import {EXIT} from '../errors.js'
import type {TemplateName} from '../init/init.js'

export default class Init extends HotctlCommand {
  static summary = 'Write a commented hotctl.config.yaml for the project in the working directory.'
  static description =
    'Detects Python (requirements.txt, pyproject.toml), Node (package.json) or neither, fills in the checks it can ' +
    'find (pytest, ruff/flake8, mypy; npm test, tsc, npm run lint) and validates the written file. Never overwrites ' +
    'an existing config without --force (exit 2). Asks for the target only on an interactive terminal.'
  static examples = [
    '<%= config.bin %> init',
    '<%= config.bin %> init --target /srv/app --with-agent',
    '<%= config.bin %> init --template node --json',
  ]
  static flags = {
    template: Flags.string({
      description: 'Template to use instead of the detected one.',
      options: ['python', 'node', 'generic'],
    }),
    target: Flags.string({
      description: 'Live directory of the running service (default: the placeholder /opt/app, to edit).',
    }),
    'with-agent': Flags.boolean({
      description: 'Also copy the reference Python hot-reload agent to ./hotreload_agent.',
      default: false,
    }),
    force: Flags.boolean({
      description: 'Overwrite an existing config (and ./hotreload_agent with --with-agent).',
      default: false,
    }),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Init)
    const {runInit, DEFAULT_TARGET} = await import('../init/init.js')
    let target = flags.target
    if (target === undefined && !flags.json && process.stdin.isTTY && !process.env.CI) {
      const {createInterface} = await import('node:readline/promises')
      const rl = createInterface({input: process.stdin, output: process.stderr})
      try {
        target =
          (await rl.question(`Live directory of the running service (target) [${DEFAULT_TARGET}]: `)).trim() ||
          undefined
      } finally {
        rl.close()
      }
    }
    const template = flags.template as TemplateName | undefined
    const r = await runInit({cwd: process.cwd(), template, target, withAgent: flags['with-agent'], force: flags.force})
    const {renderInit} = await import('../ui/init-report.js')
    this.finish({exitCode: EXIT.ok, ...r}, () => renderInit(r))
  }
}
