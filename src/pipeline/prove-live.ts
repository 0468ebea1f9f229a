import type {ListrTask} from 'listr2'
import {redact} from '../secrets.js'
import type {Phase} from '../state/journal.js'
import {waitForVersion, triggerReload} from '../service/reload.js'
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
export function proveLiveTasks(ctx: OpContext, expected: string | null, proof: LiveProof, opts: {allowRestart: boolean; phase: (p: Phase) => void; label: string; phases: {reload: Phase; confirm: Phase; smoke: Phase}; reload?: boolean}): ListrTask[] {
  const {services, reloadTimeoutMs, restart, smoke} = ctx.config
  return [
    {
      title: `Trigger hot reload${services.length > 1 ? ` of ${services.length} services` : ''}`,
      enabled: () => services.length > 0 && opts.reload !== false, // false: confirm what is already live
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
        let pending = await waitForVersion(services, expected, reloadTimeoutMs, ctx.signal)
        if (pending.length > 0 && restart && opts.allowRestart && !ctx.signal.aborted) {
          task.output = redact(`not live after ${reloadTimeoutMs} ms; restarting: ${describeCommand(restart)}`)
          const r = await runCommand(restart, {cwd: ctx.config.target, env: ctx.env, signal: ctx.signal})
          if (!r.ok) throw new Error(`restart command failed (exit ${r.exitCode}):\n${r.tail}`)
          proof.restarted = true
          pending = await waitForVersion(services, expected, reloadTimeoutMs, ctx.signal)
        }
        if (pending.length > 0) {
          throw new Error(`${opts.label} ${expected} is not live after ${reloadTimeoutMs} ms: ${pending.map((p) => `${p.name} ${p.last}`).join('; ')}`)
        }
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
