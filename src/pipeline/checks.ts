import type {ListrTask} from 'listr2'
import {EXIT, HotctlError} from '../errors.js'
import {redact} from '../secrets.js'
import {describeCommand, runCommand} from '../service/run-command.js'
import type {OpContext} from './context.js'

export interface CheckOutcome {
  name: string
  ok: boolean
  detail: string
}

/** The configured checks, concurrently; each runs its commands in order in the source tree. */
export function checkTasks(ctx: OpContext, outcomes: CheckOutcome[]): ListrTask[] {
  return ctx.config.checks.map((check) => ({
    title: redact(`${check.name}: ${check.commands.map(describeCommand).join(' && ')}`),
    task: async (_c, task) => {
      for (const cmd of check.commands) {
        const r = await runCommand(cmd, {cwd: ctx.config.source, env: ctx.env, signal: ctx.signal, tailLines: 20})
        if (!r.ok) {
          if (r.canceled) throw new HotctlError(`check ${check.name} interrupted`, EXIT.interrupted)
          outcomes.push({name: check.name, ok: false, detail: r.tail})
          task.output = r.tail
          throw new HotctlError(`check "${check.name}" failed: \`${describeCommand(cmd)}\` exited ${r.exitCode}\n${r.tail}`, EXIT.failed, 'Fix the failure above (the target was not touched), or pass --skip-checks.')
        }
      }
      outcomes.push({name: check.name, ok: true, detail: 'passed'})
    },
    rendererOptions: {persistentOutput: true, bottomBar: 20},
  }))
}
