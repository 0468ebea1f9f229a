/**
 * The entry bin/run.js uses to run one of hotctl's own commands (not help, not a typo): bundled
 * with every command and its dependencies into one CommonJS file, dist/own/hotctl.cjs
 * (esbuild.config.mjs), which bin/run.js compiles through the V8 code cache (src/code-cache.ts).
 * oclif runs the command as usual — the same Config, hooks, flag parsing, errors and exit codes —
 * except that the command class comes from this bundle, not from an import of dist/commands/….
 */
import type {Command, Interfaces} from '@oclif/core'
import {applyColorPolicy} from './ui/color.js'

type CommandModule = {default: Command.Class}

/** Every command, by oclif id (a test checks this against the manifest). */
export const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  backups: () => import('./commands/backups/index.js'),
  'backups:prune': () => import('./commands/backups/prune.js'),
  'backups:show': () => import('./commands/backups/show.js'),
  'backups:verify': () => import('./commands/backups/verify.js'),
  check: () => import('./commands/check.js'),
  deploy: () => import('./commands/deploy.js'),
  diff: () => import('./commands/diff.js'),
  init: () => import('./commands/init.js'),
  log: () => import('./commands/log.js'),
  rollback: () => import('./commands/rollback.js'),
  status: () => import('./commands/status.js'),
}

export async function runOwnCommand(argv: string[], loadOptions: Interfaces.LoadOptions): Promise<unknown> {
  // Colour is decided before chalk, listr2 (colorette) and oclif (ansis) load (src/ui/color.ts).
  applyColorPolicy()
  const {execute, Plugin} = await import('@oclif/core')
  // oclif's plugin finds a command in the manifest and imports its file; this bundle has it already.
  const find = Plugin.prototype.findCommand
  Plugin.prototype.findCommand = async function (this: InstanceType<typeof Plugin>, id, opts) {
    const load = this.isRoot ? COMMANDS[id] : undefined
    if (!load) return find.call(this, id, opts)
    const cmd = (await load()).default
    cmd.id = id
    cmd.plugin = this
    return cmd
  } as typeof find
  return execute({args: argv, loadOptions})
}
