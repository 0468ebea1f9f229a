import type {ListrTask} from 'listr2'
import {EXIT, HotctlError} from '../errors.js'
import {redact} from '../secrets.js'
import {describeCommand, runCommand} from '../service/run-command.js'
import type {PreflightItem} from '../target/target.js'
import {runTasks} from '../ui/render.js'
import type {OpContext} from './context.js'
import {preflight as runPreflight} from './preflight.js'

/** Checks run on the controller, in the source tree: they need no target (a fleet runs them once). */
type ControllerContext = Pick<OpContext, 'config' | 'env' | 'signal'>

export interface CheckOutcome {
  name: string
  ok: boolean
  detail: string
}

export interface CheckResult {
  exitCode: number
  /** The config file validated. */
  config: string
  preflight: PreflightItem[]
  checks: CheckOutcome[]
}

export interface CheckOptions {
  skipChecks: boolean
  createTarget: boolean
  /** Called with the preflight's items before the checks start (they can take minutes). */
  onPreflight?: (items: PreflightItem[]) => void
}

/**
 * `hotctl check`: the preflight deploy runs, then the configured checks (unless skipped); changes
 * nothing. Every item is reported, failed or not: exit 1 if any failed.
 */
export async function check(ctx: OpContext, opts: CheckOptions): Promise<CheckResult> {
  const preflight = await runPreflight(ctx, {source: true, createTarget: opts.createTarget})
  opts.onPreflight?.(preflight)
  const checks: CheckOutcome[] = []
  if (!opts.skipChecks && ctx.config.checks.length > 0) {
    // A failed check is reported in `checks`, not thrown: the others still run and are listed.
    await runTasks(ctx.ui, [checksGroup(ctx, checks)], {}).catch(() => undefined)
  }
  const ok = preflight.every((p) => p.ok) && checks.every((c) => c.ok)
  const exitCode = ctx.signal.aborted ? EXIT.interrupted : ok ? EXIT.ok : EXIT.failed
  return {exitCode, config: ctx.config.file, preflight, checks}
}

/** The group `check` and `deploy` both run: every check to its end, failed or not (outcomes say which). */
export function checksGroup(ctx: ControllerContext, outcomes: CheckOutcome[]): ListrTask {
  return {
    title: 'Checks',
    task: (_c, task) => task.newListr(checkTasks(ctx, outcomes), {concurrent: true, exitOnError: false}),
  }
}

/** The configured checks, concurrently; each runs its commands in order in the source tree. */
export function checkTasks(ctx: ControllerContext, outcomes: CheckOutcome[]): ListrTask[] {
  return ctx.config.checks.map((check) => ({
    title: redact(`${check.name}: ${check.commands.map(describeCommand).join(' && ')}`),
    task: async (_c, task) => {
      for (const cmd of check.commands) {
        const r = await runCommand(cmd, {cwd: ctx.config.source, env: ctx.env, signal: ctx.signal, tailLines: 20})
        if (!r.ok) {
          if (r.canceled) throw new HotctlError(`check ${check.name} interrupted`, EXIT.interrupted)
          outcomes.push({name: check.name, ok: false, detail: r.tail})
          task.output = r.tail
          throw new HotctlError(
            `check "${check.name}" failed: \`${describeCommand(cmd)}\` exited ${r.exitCode}\n${r.tail}`,
            EXIT.failed,
            'Fix the failure above (the target was not touched), or pass --skip-checks.',
          )
        }
      }
      outcomes.push({name: check.name, ok: true, detail: 'passed'})
    },
    rendererOptions: {persistentOutput: true, bottomBar: 20},
  }))
}
