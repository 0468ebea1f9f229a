import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type {ListrTask} from 'listr2'
import {EXIT, HotctlError} from '../errors.js'
import {redact} from '../secrets.js'
import {describeCommand, describeEnd, runCommand} from '../service/run-command.js'
import type {PreflightItem} from '../target/target.js'
import {runTasks} from '../ui/render.js'
import {OUTPUT_LINES_SHOWN} from '../ui/step-renderer.js'
import type {OpContext} from './context.js'
import {preflight as runPreflight} from './preflight.js'

/** Checks run on the controller, in the source tree: they need no target (a fleet runs them once). */
type ControllerContext = Pick<OpContext, 'config' | 'env' | 'signal'>

export interface CheckOutcome {
  name: string
  ok: boolean
  /** "passed", or how it failed and the last lines of its output (bounded). */
  detail: string
  /** The file holding its full output. */
  log?: string
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
    await runTasks(ctx.ui, [checksGroup(ctx, checks, {readOnly: true})], {}).catch(() => undefined)
  }
  const ok = preflight.every((p) => p.ok) && checks.every((c) => c.ok)
  const exitCode = ctx.signal.aborted ? EXIT.interrupted : ok ? EXIT.ok : EXIT.failed
  return {exitCode, config: ctx.config.file, preflight, checks}
}

/**
 * The group `check` and `deploy` both run: every check to its end, failed or not (outcomes say
 * which); then the group itself fails (✖ Checks) when any did, naming them. Their output was shown
 * once, under each failed check: the error does not repeat it.
 */
export function checksGroup(ctx: ControllerContext, outcomes: CheckOutcome[], opts: {readOnly: boolean}): ListrTask {
  return {
    title: 'Checks',
    task: (_c, task) =>
      task.newListr([
        {task: (_c2, all) => all.newListr(checkTasks(ctx, outcomes, opts), {concurrent: true, exitOnError: false})},
        {task: () => requireChecks(outcomes)},
      ]),
  }
}

function requireChecks(outcomes: CheckOutcome[]): void {
  const failed = outcomes.filter((c) => !c.ok)
  if (failed.length === 0) return
  const logs = failed.flatMap((c) => (c.log ? [`${c.name}: ${c.log}`] : []))
  const hint = `Fix them (the target was not touched), or pass --skip-checks.${logs.length ? ` Full output: ${logs.join(', ')}` : ''}`
  throw new HotctlError(`checks failed: ${failed.map((c) => c.name).join(', ')}`, EXIT.failed, hint, {
    checks: outcomes,
  })
}

/** Check logs kept per directory: the newest ones (older ones are removed when a check starts). */
const LOGS_KEPT = 50

/**
 * Where a check's full output goes: the state dir's logs/. Not for `check` and `deploy --dry-run`,
 * which write nothing there, nor for a remote target (its state dir is on the host): the temp dir's.
 * Named by time and pid (concurrent runs never share a file), so the names sort oldest first.
 */
function checkLog(ctx: ControllerContext, name: string, readOnly: boolean): string {
  const dir =
    readOnly || ctx.config.hosts.length > 0
      ? path.join(os.tmpdir(), 'hotctl-logs')
      : path.join(ctx.config.stateDir, 'logs')
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
  return path.join(dir, `${stamp}-${process.pid}-check-${name.replace(/[^\w.-]+/g, '_')}.log`)
}

/** Removes all but the newest LOGS_KEPT logs in `dir` (best effort: a log is never worth a failure). */
function pruneLogs(dir: string): void {
  try {
    const logs = fs
      .readdirSync(dir)
      .filter((n) => /^\d{8}-\d{6}-.*\.log$/.test(n))
      .sort()
    for (const n of logs.slice(0, Math.max(0, logs.length - LOGS_KEPT))) fs.rmSync(path.join(dir, n), {force: true})
  } catch {
    // no logs yet
  }
}

/** The configured checks, concurrently; each runs its commands in order in the source tree. */
export function checkTasks(ctx: ControllerContext, outcomes: CheckOutcome[], opts: {readOnly: boolean}): ListrTask[] {
  return ctx.config.checks.map((check) => ({
    title: redact(`${check.name}: ${check.commands.map(describeCommand).join(' && ')}`),
    task: async (_c, task) => {
      const log = checkLog(ctx, check.name, opts.readOnly)
      pruneLogs(path.dirname(log))
      for (const cmd of check.commands) {
        const r = await runCommand(cmd, {
          cwd: ctx.config.source,
          env: ctx.env,
          signal: ctx.signal,
          tailLines: OUTPUT_LINES_SHOWN,
          logFile: log,
        })
        if (!r.ok) {
          if (r.canceled) throw new HotctlError(`check ${check.name} interrupted`, EXIT.interrupted)
          // The title shows a one-command check's command: name it only when there are several.
          const how = `${check.commands.length > 1 ? `\`${describeCommand(cmd)}\` ` : ''}${describeEnd(r)}`
          // The tail is shown once (the step's output); the message only says how it ended and where the rest is.
          const detail = r.tail ? `${how}\n${r.tail}` : how
          outcomes.push({name: check.name, ok: false, detail, ...(r.log ? {log: r.log} : {})})
          if (r.tail) task.output = r.tail
          const where = r.log ? ` (full output: ${r.log})` : ''
          throw new HotctlError(`${how}${where}`, EXIT.failed)
        }
      }
      outcomes.push({name: check.name, ok: true, detail: 'passed'})
    },
    rendererOptions: {persistentOutput: true, bottomBar: 20},
  }))
}
