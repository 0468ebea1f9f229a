import type {ServiceSpec} from '../config/resolve.js'
import type {SmokeSpec} from '../config/schema.js'
import {errorMessage, EXIT, HotctlError} from '../errors.js'
import type {Interrupt} from '../interrupt.js'
import {redact} from '../secrets.js'
import type {Phase} from '../state/journal.js'
import {confirmLive, type ConfirmFailure, triggerReload} from '../service/reload.js'
import {describeCommand, type ServiceRunner} from '../service/run-command.js'
import {runSmoke, type SmokeResult} from '../service/smoke.js'
import type {OpContext} from './context.js'
import type {Step} from './steps.js'
import {formatDuration} from '../ui/format.js'

export interface LiveProof {
  /** Services whose reload trigger succeeded. */
  reloaded: string[]
  /** The release id every service reported; null when there was none to wait for. */
  confirmed: string | null
  restarted: boolean
  smoke: SmokeResult[]
  /** What did not stop the proof but an operator should know (a restore's failed trigger). */
  warnings: string[]
}

export const emptyProof = (): LiveProof => ({reloaded: [], confirmed: null, restarted: false, smoke: [], warnings: []})

export interface ProveLiveOpts {
  allowRestart: boolean
  phase: (p: Phase) => Promise<void>
  label: string
  phases: {reload: Phase; confirm: Phase; smoke: Phase}
  /**
   * Set by restores (restore.ts), whose ctx.signal never aborts. `interrupt` is the operator's:
   * once it has fired, before or during a step, that step takes its short form and aims at
   * `interrupt.deadline` (src/interrupt.ts): trigger and HTTP smoke with short limits, command smoke
   * skipped; the confirm should likewise wait at most until the deadline and not restart.
   * A restore also takes a failed trigger as a warning where a status will confirm the release id.
   */
  restore?: {interrupt: Interrupt}
  /** false: no trigger; confirm what is already live (rollback --to the live release). */
  reload?: boolean | (() => boolean)
}

/**
 * reload → confirm the expected release is live → smoke: the proof shared by deploy (new release),
 * restore (previous release) and rollback. `phase` journals each step before it starts.
 * `expected` null means the tree has no release marker (installed by hand): then only content and
 * smoke can prove it.
 */
export function proveLiveTasks(
  ctx: OpContext,
  expectedRelease: string | null | (() => string | null),
  proof: LiveProof,
  opts: ProveLiveOpts,
): Step[] {
  // A deploy knows its release id only once it has planned: the tasks read it when they run.
  const want = () => (typeof expectedRelease === 'function' ? expectedRelease() : expectedRelease)
  const {services, reloadTimeoutMs, restart, smoke} = ctx.config
  const interrupt = opts.restore?.interrupt
  const run: ServiceRunner = (cmd, o) => ctx.target.runServiceCommand(cmd, o)
  // In a restore the interrupt cuts a trigger short instead of cancelling it (as in runSmoke).
  const trigger = async (s: ServiceSpec): Promise<string> => {
    const go = (signal?: AbortSignal, short?: Interrupt) => triggerReload(s, {run, env: ctx.env, signal, short})
    if (!interrupt) return go(ctx.signal)
    if (interrupt.fired) return go(undefined, interrupt)
    try {
      return await go(interrupt.signal)
    } catch (err) {
      if (!interrupt.fired) throw err
      return go(undefined, interrupt)
    }
  }
  const waiting = waitingFor()
  const reloads = () => (typeof opts.reload === 'function' ? opts.reload() : opts.reload !== false)
  // Only after this operation fired the trigger: a rollback --to the live release confirms as is.
  const again = async (s: ServiceSpec): Promise<string> => {
    ctx.ui.say(
      redact(`hotctl: ${s.name} still answers another release: no sign of the reload, firing its trigger again`),
    )
    return trigger(s)
  }
  return [
    {
      title: `Trigger hot reload${services.length > 1 ? ` of ${services.length} services` : ''}`,
      enabled: () => services.length > 0 && reloads(), // false: confirm what is already live
      task: async (_c, task) => {
        await opts.phase(opts.phases.reload)
        const expected = want()
        const results = await Promise.all(
          services.map(async (s) => {
            try {
              return {s, said: await trigger(s)}
            } catch (err) {
              return {s, error: errorMessage(err)}
            }
          }),
        )
        proof.reloaded = results.filter((r) => r.error === undefined).map((r) => r.s.name)
        const failed = results.filter((r) => r.error !== undefined)
        // Forward, a failed trigger fails the deploy. Restoring, the service reporting the backup's
        // release id proves the old code is live whether or not the trigger got through (often it
        // never loaded the new one: the same dead trigger failed the deploy). Only where no status
        // can confirm an id does a failed trigger leave the restore unproven.
        const fatal = failed.filter((r) => !opts.restore || !r.s.status || !expected)
        if (fatal.length > 0)
          throw new Error(fatal.map((r) => `${r.error}${opts.restore ? unconfirmable(r.s) : ''}`).join('\n'))
        for (const r of failed) {
          const why = r.error?.split('\n')[0]
          const warning = `${r.s.name}: reload trigger failed (${why}); its status decides whether ${opts.label} ${expected} is live`
          proof.warnings.push(warning)
          ctx.ui.say(redact(`hotctl: warning: ${warning}`))
        }
        task.output = redact(results.map((r) => `${r.s.name}: ${r.said ?? `trigger failed: ${r.error}`}`).join('\n'))
      },
    },
    {
      title:
        typeof expectedRelease === 'string'
          ? `Confirm ${opts.label} ${expectedRelease} is live`
          : `Confirm ${opts.label} is live`,
      enabled: () => services.some((s) => s.status),
      // What a log's progress line says while the wait goes on (StepRenderer asks every 10 s).
      progress: () => waiting.progress(),
      task: async (_c, task) => {
        await opts.phase(opts.phases.confirm)
        const expected = want()
        waiting.start(`${opts.label} ${expected}`, reloadTimeoutMs)
        if (expected) task.title = `Confirm ${opts.label} ${expected} is live`
        if (!expected) {
          task.skip(`${opts.label} has no release marker: proven by content and smoke only`)
          return
        }
        const retrigger = reloads() ? again : undefined
        const confirm = async (): Promise<ConfirmFailure[]> => {
          if (!interrupt)
            return confirmLive(services, expected, {
              timeoutMs: reloadTimeoutMs,
              signal: ctx.signal,
              onPoll: waiting.poll,
              retrigger,
            })
          // A restore: the operator's interrupt cuts the wait to what is left of its time budget.
          if (!interrupt.fired) {
            const failures = await confirmLive(services, expected, {
              timeoutMs: reloadTimeoutMs,
              signal: interrupt.signal,
              retrigger,
            })
            if (!interrupt.fired || !failures.some((f) => f.kind === 'interrupted')) return failures
          }
          return confirmLive(services, expected, {timeoutMs: Math.max(500, interrupt.remaining())})
        }
        let failures = await confirm()
        const restartAsked = failures.find((f) => f.kind === 'restart')
        if (restartAsked && !opts.allowRestart) {
          throw new HotctlError(
            `${opts.label} ${expected}: ${restartAsked.name}: ${restartAsked.message}`,
            EXIT.needsRestart,
            'Deploy without --no-restart (reload.restart then runs), or leave those changes out of this deploy.',
          )
        }
        // A restart cures "not live yet" and "needs a restart", never a rejected or crashing release.
        if (
          failures.length > 0 &&
          failures.every((f) => f.kind === 'timeout' || f.kind === 'restart') &&
          restart &&
          opts.allowRestart &&
          !ctx.signal.aborted &&
          !interrupt?.fired
        ) {
          task.output = redact(
            `${restartAsked ? restartAsked.message : `not live after ${formatDuration(reloadTimeoutMs)}`}; restarting: ${describeCommand(restart)}`,
          )
          const r = await run(restart, {env: ctx.env, on: ctx.config.restartOn, signal: ctx.signal})
          if (!r.ok) throw new Error(`restart command failed (exit ${r.exitCode}):\n${r.tail}`)
          proof.restarted = true
          failures = await confirm()
        }
        if (failures.length > 0)
          throw new Error(describeFailures(`${opts.label} ${expected}`, failures, reloadTimeoutMs, !!restart))
        proof.confirmed = expected
      },
    },
    {
      title: smokeTitle(smoke, interrupt?.fired ? smoke.filter((s) => 'command' in s).length : 0),
      enabled: () => smoke.length > 0,
      task: async (_c, task) => {
        await opts.phase(opts.phases.smoke)
        const where = {run, env: ctx.env, signal: ctx.signal, interrupt}
        proof.smoke = await Promise.all(smoke.map((s) => runSmoke(s, where)))
        const skipped = proof.smoke.filter((r) => r.skipped)
        if (skipped.length > 0) {
          const names = skipped.map((r) => r.name).join(', ')
          task.title = smokeTitle(smoke, skipped.length)
          const why = 'they may take longer than the CI runner allows; HTTP checks ran with short timeouts'
          ctx.ui.say(redact(`hotctl: interrupted: command smoke checks skipped (${names}), ${why}`))
        }
        const failed = proof.smoke.filter((r) => !r.ok && !r.skipped)
        const mark = (r: SmokeResult) => (r.skipped ? '-' : r.ok ? '✔' : '✖')
        task.output = redact(proof.smoke.map((r) => `${mark(r)} ${r.name}: ${r.detail.split('\n')[0]}`).join('\n'))
        if (failed.length > 0)
          throw new Error(`smoke failed: ${failed.map((f) => `${f.name}: ${f.detail}`).join('; ')}`)
      },
      rendererOptions: {persistentOutput: true},
    },
  ]
}

/** "waiting for release X: web reports version "Y" (12s of 1m 0s)": what the confirm step is waiting on. */
function waitingFor() {
  let what = ''
  let since = 0
  let timeoutMs = 0
  const said = new Map<string, string>()
  return {
    start(release: string, timeout: number) {
      ;[what, since, timeoutMs] = [release, Date.now(), timeout]
      said.clear()
    },
    poll: (service: string, last: string) => void said.set(service, last),
    progress(): string | undefined {
      if (!what) return undefined
      const reports = [...said].map(([name, last]) => `${name} ${last}`).join('; ') || 'no answer yet'
      return `waiting for ${what}: ${reports} (${formatDuration(Date.now() - since)} of ${formatDuration(timeoutMs)})`
    },
  }
}

function smokeTitle(smoke: SmokeSpec[], skipped: number): string {
  if (skipped === 0) return `Smoke tests (${smoke.length})`
  const checks = skipped === 1 ? 'check' : 'checks'
  return `Smoke tests (${smoke.length - skipped} HTTP, short timeouts; ${skipped} command ${checks} skipped after the interrupt)`
}

/** Why a restore's failed trigger leaves it unproven for this service. */
function unconfirmable(s: ServiceSpec): string {
  return !s.status
    ? ` (${s.name} has no reload.status, so nothing else shows it runs the restored tree)`
    : ` (the restored tree has no release id for ${s.name}'s status to confirm)`
}

/** Why the confirm step failed, one clause per service. */
function describeFailures(what: string, failures: ConfirmFailure[], timeoutMs: number, canRestart: boolean): string {
  const f = failures[0]!
  if (f.kind === 'interrupted') return 'interrupted'
  if (f.kind === 'timeout')
    return `${what} is not live after ${formatDuration(timeoutMs)}: ${failures.map((p) => `${p.name} ${p.message}`).join('; ')}`
  if (f.kind === 'failed') return `${what} failed to load: ${f.name}: ${f.message}`
  if (f.kind === 'down') return `${what} is not live: ${f.name}: ${f.message}`
  return `${what}: ${f.name}: ${f.message}${canRestart ? '' : ' (reload.restart is not configured)'}`
}
