import type {ListrTask} from 'listr2'
import type {HostSpec, ResolvedConfig} from '../config/resolve.js'
import {errorMessage, EXIT, type ExitCode, HotctlError} from '../errors.js'
import type {ServiceRunner} from '../service/run-command.js'
import {runSmoke} from '../service/smoke.js'
import type {PreflightItem, PreflightOptions} from '../target/target.js'
import {formatDuration} from '../ui/format.js'
import type {Ui} from '../ui/ui.js'
import type {OpContext} from './context.js'
import {lockTarget, recoverInterrupted, type Recovery} from './operation.js'
import {preflight} from './preflight.js'
import type {Step} from './steps.js'

/**
 * A fleet run's context: the config (hosts already limited), the controller's UI and interrupt,
 * and a way to open one host's own context — its config with `${host}` filled in (forHost), its
 * own Target, and messages that name it.
 */
export interface FleetContext {
  config: ResolvedConfig
  ui: Ui
  signal: AbortSignal
  env: Record<string, string>
  host(h: HostSpec): OpContext
}

/** One host in a fleet run: its context, its lock, and what recovery found in its journal. */
export interface HostSlot {
  host: HostSpec
  ctx: OpContext
  unlock?: () => Promise<void>
  recovery?: Recovery
  /** 1-based wave the host was in; unset when no wave reached it. */
  wave?: number
}

export function openHosts(fleet: FleetContext): HostSlot[] {
  return fleet.config.hosts.map((host) => ({host, ctx: fleet.host(host)}))
}

/** Every host's preflight at once; any failed item fails the run before a host is touched (exit 1), naming the hosts. */
export async function preflightHosts(
  slots: HostSlot[],
  opts: PreflightOptions,
): Promise<Record<string, PreflightItem[]>> {
  const items = await Promise.all(
    slots.map((s) =>
      preflight(s.ctx, opts).catch((err): PreflightItem[] => [
        {name: 'reachable', ok: false, detail: errorMessage(err)},
      ]),
    ),
  )
  const byHost = Object.fromEntries(slots.map((s, i) => [s.host.name, items[i]!]))
  const bad = slots.flatMap((s, i) => items[i]!.filter((p) => !p.ok).map((p) => ({host: s.host.name, item: p})))
  if (bad.length === 0) return byHost
  const hosts = [...new Set(bad.map((b) => b.host))]
  const hints = [...new Set(bad.map((b) => b.item.hint).filter(Boolean))]
  throw new HotctlError(
    `preflight failed on ${hosts.length === 1 ? 'host' : 'hosts'} ${hosts.join(', ')}: ` +
      bad.map((b) => `${b.host}: ${b.item.name}: ${b.item.detail}`).join('; '),
    EXIT.failed,
    `${hints.join(' ')}${hints.length ? ' ' : ''}No host was touched. Fix it, or leave the host out: --limit '!${hosts[0]}'.`,
    {preflight: byHost, hosts},
  )
}

/**
 * Tries every host's lock at once. Each try is non-blocking (a held lock fails at once, exit 5), so
 * no run ever waits on another while holding locks: two fleet runs over overlapping hosts cannot
 * deadlock, at worst both give up. On any failure the locks taken are released and the run fails,
 * naming the first failing host in name order and its lock's owner. (One host after another cost
 * a round trip per host: about 0.3–0.5 s at 20 hosts.)
 */
export async function lockHosts(slots: HostSlot[], command: string): Promise<void> {
  const sorted = byName(slots)
  const tries = await Promise.allSettled(
    sorted.map(async (s) => {
      s.unlock = await lockTarget(s.ctx, command)
    }),
  )
  const i = tries.findIndex((t) => t.status === 'rejected')
  if (i < 0) return
  await unlockHosts(slots)
  const s = sorted[i]!
  const err = (tries[i] as PromiseRejectedResult).reason as unknown
  const code = err instanceof HotctlError ? err.exitCode : EXIT.failed
  const hint = err instanceof HotctlError ? err.hint : 'Is the host reachable? Leave it out with --limit.'
  throw new HotctlError(`host ${s.host.name}: ${errorMessage(err)}`, code, hint, {
    host: s.host.name,
    ...(err instanceof HotctlError ? err.details : {}),
  })
}

/**
 * Releases every lock taken, all at once; a host that cannot be reached keeps its lock, with a warning.
 */
export async function unlockHosts(slots: HostSlot[]): Promise<void> {
  await Promise.all(
    slots.map(async (s) => {
      const unlock = s.unlock
      s.unlock = undefined
      await unlock?.().catch((err) =>
        s.ctx.ui.say(`hotctl: warning: could not release the lock: ${errorMessage(err)} (hotctl clears it when stale)`),
      )
    }),
  )
}

/**
 * Every host's journal is checked for an operation a killed run left open, and each found is
 * restored first (in parallel). A host whose restore fails stops the run: exit 4, naming it.
 */
export async function recoverHosts(slots: HostSlot[], opts: {allowRestart: boolean}): Promise<void> {
  const outcomes = await Promise.allSettled(
    slots.map(async (s) => {
      s.recovery = await recoverInterrupted(s.ctx, opts)
    }),
  )
  const failed = slots.flatMap((s, i) => {
    const o = outcomes[i]!
    return o.status === 'rejected' ? [{host: s.host.name, err: o.reason as unknown}] : []
  })
  if (failed.length === 0) return
  const worst = failed.some((f) => f.err instanceof HotctlError && f.err.exitCode === EXIT.needsAttention)
  throw new HotctlError(
    `recovering interrupted operations failed on ${failed.map((f) => `${f.host}: ${errorMessage(f.err)}`).join('; ')}`,
    worst ? EXIT.needsAttention : EXIT.failed,
    'Those hosts need attention: `hotctl status` shows them; fix them, or leave them out with --limit.',
    {hosts: failed.map((f) => f.host)},
  )
}

export const byName = (slots: HostSlot[]) =>
  [...slots].sort((a, b) => (a.host.name < b.host.name ? -1 : a.host.name > b.host.name ? 1 : 0))

/**
 * A listr task per host, run concurrently up to `limit`: the fleet's "host" level of the tree. Its
 * `host` is inherited by the host's steps, so their log lines and --events name it.
 */
export function perHost(slots: HostSlot[], limit: number, task: (s: HostSlot) => ListrTask['task']): ListrTask['task'] {
  return (_c, parent) =>
    parent.newListr(
      slots.map((s): Step => ({title: s.host.name, host: s.host.name, task: task(s)})),
      {concurrent: Math.max(1, Math.min(limit, slots.length)), exitOnError: false},
    )
}

/** What the waves of a fleet operation share: the first failure stops them; each host's own error. */
export interface WaveState {
  failed?: {slot: HostSlot; error: unknown}
  errors: Map<HostSlot, unknown>
}

/**
 * A wave in three parts (a per-wave canary): each host's `before` (up to `parallel` at once), then
 * every host of the wave at once (`together`, made once per wave), then each host's `after`. The
 * hosts of a wave finish one part before any starts the next.
 */
export interface WaveParts {
  before: {title: string; hostSteps: (s: HostSlot) => ListrTask[]}
  together: (wave: HostSlot[]) => {title: string; hostSteps: (s: HostSlot) => ListrTask[]}
  after: {title: string; hostSteps: (s: HostSlot) => ListrTask[]}
}

/**
 * The waves as listr tasks: Wave N → host → that host's steps (in order, stopping at its first
 * failure), hosts concurrent up to `parallel`, a pause between waves. A failure lets the hosts
 * already running finish; hosts not yet started and later waves are skipped. With WaveParts, a
 * failure also stops the wave's later parts, and every host of the wave left between parts (changed,
 * not proven) counts as failed with it: it is put back even under halt.
 */
export function waveTasks(
  fleet: FleetContext,
  waves: HostSlot[][],
  state: WaveState,
  hostSteps: ((s: HostSlot) => ListrTask[]) | WaveParts,
  skipWhy: () => string | false,
  hostEnv: (s: HostSlot) => Record<string, string> = (s) => s.ctx.env,
): ListrTask[] {
  const {pauseMs, parallel} = fleet.config.fleet
  const stop = () =>
    skipWhy() ||
    (state.failed && `skipped: ${state.failed.slot.host.name} failed`) ||
    (fleet.signal.aborted && 'skipped: interrupted')
  // During a pause the hosts already done keep being smoke-tested: a release that breaks after a
  // while stops the waves before they reach more hosts.
  const watched = (i: number) => async () => {
    for (const slot of waves.slice(0, i).flat()) {
      try {
        await smokeNow(slot, hostEnv(slot))
      } catch (err) {
        if (!state.errors.has(slot)) state.errors.set(slot, err)
        state.failed ??= {slot, error: err}
        throw err
      }
    }
  }
  return waves.flatMap((wave, i): ListrTask[] => [
    ...(i > 0 && pauseMs > 0
      ? [
          {
            title: `Pause ${formatDuration(pauseMs)}${fleet.config.smoke.length ? ' (smoke checks keep running)' : ''}`,
            skip: stop,
            task: () => pause(pauseMs, fleet.signal, fleet.config.smoke.length ? watched(i) : undefined),
          },
        ]
      : []),
    {
      title: `Wave ${i + 1}/${waves.length}: ${wave.map((s) => s.host.name).join(', ')}`,
      skip: stop,
      task:
        typeof hostSteps === 'function'
          ? perHost(wave, parallel, hostTask(i, hostSteps))
          : (_c, task) => task.newListr(waveParts(wave, i, hostSteps), {concurrent: false, exitOnError: false}),
    },
  ])

  /** `halfway`: the host is already changed by an earlier part, so not starting this one fails it too. */
  function hostTask(i: number, hostSteps: (s: HostSlot) => ListrTask[], halfway = false) {
    return (slot: HostSlot): ListrTask['task'] =>
      (_c, task) => {
        if (state.failed || fleet.signal.aborted) {
          if (halfway) stoppedWithWave(slot, i)
          task.skip(`not started: ${state.failed ? `${state.failed.slot.host.name} failed` : 'interrupted'}`)
          return
        }
        slot.wave = i + 1
        // In order, stopping at the first failure (subtasks would inherit the wave's concurrency).
        return task.newListr(recording(hostSteps(slot), state, slot), {concurrent: false, exitOnError: true})
      }
  }

  function waveParts(wave: HostSlot[], i: number, parts: WaveParts): ListrTask[] {
    // A later part does not start after a failure; the hosts the wave reached are left half-way.
    const stopped = () => {
      const why =
        (state.failed && `skipped: ${state.failed.slot.host.name} failed`) ||
        (fleet.signal.aborted && 'skipped: interrupted')
      if (why) for (const s of wave) if (s.wave) stoppedWithWave(s, i)
      return why
    }
    const together = parts.together(wave)
    return [
      {title: parts.before.title, task: perHost(wave, parallel, hostTask(i, parts.before.hostSteps))},
      {
        title: together.title,
        skip: stopped,
        task: (_c, task) =>
          task.newListr(
            wave.map((s): Step => ({
              title: s.host.name,
              host: s.host.name,
              task: (_c2, t) =>
                t.newListr(recording(together.hostSteps(s), state, s), {concurrent: false, exitOnError: true}),
            })),
            {concurrent: true, exitOnError: false},
          ),
      },
      {
        title: parts.after.title,
        skip: stopped,
        task: perHost(wave, parallel, hostTask(i, parts.after.hostSteps, true)),
      },
    ]
  }

  function stoppedWithWave(slot: HostSlot, i: number): void {
    if (state.failed && !state.errors.has(slot))
      state.errors.set(slot, new Error(`stopped with wave ${i + 1}: ${state.failed.slot.host.name} failed`))
  }
}

/** Records a host's first failure (and the fleet's), then lets listr2 report it. */
function recording(tasks: ListrTask[], state: WaveState, slot: HostSlot): ListrTask[] {
  return tasks.map((t) => ({
    ...t,
    task: async (c, task) => {
      try {
        return await t.task(c, task)
      } catch (err) {
        if (!state.errors.has(slot)) state.errors.set(slot, err)
        state.failed ??= {slot, error: err}
        throw err
      }
    },
  }))
}

/**
 * A fleet operation's exit code from its hosts' settlements: 4 when any host needs attention,
 * 130 after an interrupt, the failing host's own reason (6 needs a restart, 5 locked) where it has
 * one, 3 when hosts were changed and put back, 1 when nothing was touched.
 */
export function fleetExit(f: {codes: number[]; interrupted: boolean; failing?: number; touched: boolean}): ExitCode {
  if (f.codes.includes(EXIT.needsAttention)) return EXIT.needsAttention
  if (f.interrupted) return EXIT.interrupted
  if (f.failing === EXIT.needsRestart || f.failing === EXIT.locked || f.failing === EXIT.usage) return f.failing
  return f.touched ? EXIT.restored : EXIT.failed
}

/** What a settled fleet run ended as (deploy and rollback alike). */
export type FleetFailureOutcome = 'needs-attention' | 'interrupted' | 'halted' | 'failed' | 'restored'

/**
 * The fleet's exit code, outcome and error once every host settled after a failure: the failing
 * host's own reason where it has one, and the hosts that need attention named after `failure`.
 */
export function settledFleet(f: {
  slots: HostSlot[]
  resultOf: (s: HostSlot) => {exitCode: number} | undefined
  /** The hosts whose operation started, and whether it changed them. */
  settled: {exitCode: number; touched: boolean}[]
  failed: {slot: HostSlot; error: unknown}
  interrupted: boolean
  /** Every touched host was put back (rollback-all or an interrupt), not only the failing one. */
  all: boolean
  failure: string
}): {exitCode: ExitCode; outcome: FleetFailureOutcome; error: string} {
  const failing = f.failed.error instanceof HotctlError ? f.failed.error.exitCode : f.resultOf(f.failed.slot)?.exitCode
  const exitCode = fleetExit({
    codes: f.settled.map((r) => r.exitCode),
    interrupted: f.interrupted,
    failing,
    touched: f.settled.some((r) => r.touched),
  })
  const attention = f.slots.filter((s) => f.resultOf(s)?.exitCode === EXIT.needsAttention)
  const outcome: FleetFailureOutcome =
    exitCode === EXIT.needsAttention
      ? 'needs-attention'
      : exitCode === EXIT.interrupted
        ? 'interrupted'
        : !f.all
          ? 'halted'
          : exitCode === EXIT.failed
            ? 'failed'
            : 'restored'
  const error =
    (f.interrupted ? 'interrupted' : f.failure) +
    (attention.length ? `; NEEDS ATTENTION on ${attention.map((s) => s.host.name).join(', ')}` : '')
  return {exitCode, outcome, error}
}

/**
 * Ends or settles one host's operation. A host that cannot be written to any more (cut, frozen,
 * gone) cannot record its end: it needs attention (exit 4), and its journal keeps the operation
 * open, so the next run from any machine restores its backup first.
 */
export async function onHost(
  result: {exitCode: number; outcome: string; error?: string},
  end: () => Promise<unknown>,
): Promise<void> {
  try {
    await end()
  } catch (err) {
    result.exitCode = EXIT.needsAttention
    result.outcome = 'needs-attention'
    const before = result.error ? `${result.error}; ` : ''
    result.error = `${before}could not record the outcome on the host: ${errorMessage(err)} (the next deploy or rollback restores its backup first)`
  }
}

/**
 * Waits `ms`, or less when interrupted. With `check`, runs it at the start and then every few
 * seconds (a tenth of the pause, 1–10 s) until the time is up; its failure ends the pause.
 */
export async function pause(ms: number, signal: AbortSignal, check?: () => Promise<void>): Promise<void> {
  const end = Date.now() + ms
  const every = Math.min(10_000, Math.max(1000, ms / 10))
  while (!signal.aborted) {
    if (check) await check()
    const left = end - Date.now()
    if (left <= 0) return
    await sleep(check ? Math.min(every, left) : left, signal)
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, {once: true})
  })
}

/** The host's smoke checks, once, now; any failure throws, naming the checks. */
async function smokeNow(slot: HostSlot, env: Record<string, string>): Promise<void> {
  const {ctx} = slot
  const run: ServiceRunner = (cmd, o) => ctx.target.runServiceCommand(cmd, o)
  const results = await Promise.all(ctx.config.smoke.map((s) => runSmoke(s, {run, env, signal: ctx.signal})))
  const failed = results.filter((r) => !r.ok && !r.skipped)
  if (failed.length > 0 && !ctx.signal.aborted)
    throw new Error(`smoke failed during the pause: ${failed.map((f) => `${f.name}: ${f.detail}`).join('; ')}`)
}
