import type {ListrTask} from 'listr2'
import {EXIT, HotctlError} from '../errors.js'
import {redact} from '../secrets.js'
import type {Phase} from '../state/journal.js'
import {confirmLive, type ConfirmFailure, triggerReload} from '../service/reload.js'
import {describeCommand, runCommand} from '../service/run-command.js'
import {runSmoke, type SmokeResult} from '../service/smoke.js'
import type {OpContext} from './context.js'

export interface LiveProof {
  reloaded: string[]
  /** The release id every service reported; null when there was none to wait for. */
  confirmed: string | null
  restarted: boolean
  smoke: SmokeResult[]
}

export const emptyProof = (): LiveProof => ({reloaded: [], confirmed: null, restarted: false, smoke: []})

/**
 * reload → confirm the expected release is live → smoke: the proof shared by deploy (new release),
 * restore (previous release) and rollback. `phase` journals each step before it starts.
 * `expected` null means the tree has no release marker (installed by hand): then only content and
 * smoke can prove it.
 */
export function proveLiveTasks(ctx: OpContext, expected: string | null, proof: LiveProof, opts: {allowRestart: boolean; phase: (p: Phase) => void; label: string; phases: {reload: Phase; confirm: Phase; smoke: Phase}}): ListrTask[] {
  const {services, reloadTimeoutMs, restart, smoke} = ctx.config
  return [
    {
      title: `Trigger hot reload${services.length > 1 ? ` of ${services.length} services` : ''}`,
      enabled: () => services.length > 0,
      task: async (_c, task) => {
        opts.phase(opts.phases.reload)
        const said = await Promise.all(services.map(async (s) => `${s.name}: ${await triggerReload(s, {cwd: ctx.config.target, env: ctx.env, signal: ctx.signal})}`))
        proof.reloaded = services.map((s) => s.name)
        task.output = redact(said.join('\n'))
      },
    },
    {
      title: expected ? `Confirm ${opts.label} ${expected} is live` : `Confirm ${opts.label} is live`,
      enabled: () => services.some((s) => s.status),
      task: async (_c, task) => {
        opts.phase(opts.phases.confirm)
        if (!expected) {
          task.skip(`${opts.label} has no release marker: proven by content and smoke only`)
          return
        }
        const confirm = () => confirmLive(services, expected, {timeoutMs: reloadTimeoutMs, signal: ctx.signal})
        let failures = await confirm()
        const restartAsked = failures.find((f) => f.kind === 'restart')
        if (restartAsked && !opts.allowRestart) {
          throw new HotctlError(`${opts.label} ${expected}: ${restartAsked.name}: ${restartAsked.message}`, EXIT.needsRestart, 'Deploy without --no-restart (reload.restart then runs), or leave those changes out of this deploy.')
        }
        // A restart cures "not live yet" and "needs a restart", never a rejected or crashing release.
        if (failures.length > 0 && failures.every((f) => f.kind === 'timeout' || f.kind === 'restart') && restart && opts.allowRestart && !ctx.signal.aborted) {
          task.output = redact(`${restartAsked ? restartAsked.message : `not live after ${reloadTimeoutMs} ms`}; restarting: ${describeCommand(restart)}`)
          const r = await runCommand(restart, {cwd: ctx.config.target, env: ctx.env, signal: ctx.signal})
          if (!r.ok) throw new Error(`restart command failed (exit ${r.exitCode}):\n${r.tail}`)
          proof.restarted = true
          failures = await confirm()
        }
        if (failures.length > 0) throw new Error(describeFailures(`${opts.label} ${expected}`, failures, reloadTimeoutMs, !!restart))
        proof.confirmed = expected
      },
    },
    {
      title: `Smoke tests (${smoke.length})`,
      enabled: () => smoke.length > 0,
      task: async (_c, task) => {
        opts.phase(opts.phases.smoke)
        proof.smoke = await Promise.all(smoke.map((s) => runSmoke(s, {cwd: ctx.config.target, env: ctx.env, signal: ctx.signal})))
        const failed = proof.smoke.filter((r) => !r.ok)
        task.output = redact(proof.smoke.map((r) => `${r.ok ? '✔' : '✖'} ${r.name}: ${r.detail.split('\n')[0]}`).join('\n'))
        if (failed.length > 0) throw new Error(`smoke failed: ${failed.map((f) => `${f.name}: ${f.detail}`).join('; ')}`)
      },
      rendererOptions: {persistentOutput: true},
    },
  ]
}

/** Why the confirm step failed, one clause per service. */
function describeFailures(what: string, failures: ConfirmFailure[], timeoutMs: number, canRestart: boolean): string {
  const f = failures[0]!
  if (f.kind === 'interrupted') return 'interrupted'
  if (f.kind === 'timeout') return `${what} is not live after ${timeoutMs} ms: ${failures.map((p) => `${p.name} ${p.message}`).join('; ')}`
  if (f.kind === 'failed') return `${what} failed to load: ${f.name}: ${f.message}`
  if (f.kind === 'down') return `${what} is not live: ${f.name}: ${f.message}`
  return `${what}: ${f.name}: ${f.message}${canRestart ? '' : ' (reload.restart is not configured)'}`
}
