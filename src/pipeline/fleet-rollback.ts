import type {ListrTask} from 'listr2'
import {planWaves} from '../config/hosts.js'
import {errorMessage, EXIT, HotctlError} from '../errors.js'
import {runTasks} from '../ui/render.js'
import {
  type FleetContext,
  settledFleet,
  type HostSlot,
  lockHosts,
  onHost,
  openHosts,
  preflightHosts,
  recoverHosts,
  unlockHosts,
  waveTasks,
  type WaveState,
} from './fleet-hosts.js'
import {nextId, type Recovery} from './operation.js'
import {describe} from './releases.js'
import {
  chooseRollback,
  finishRollback,
  newRollbackRun,
  restoreSteps,
  type RollbackResult,
  type RollbackRun,
  settleRollback,
} from './rollback.js'
import {beforeTheOperation} from './settle.js'
import {steps} from './steps.js'

export interface FleetHostRollback {
  name: string
  address: string
  wave?: number
  outcome: RollbackResult['outcome'] | 'untouched' | 'failed'
  exitCode: number
  /** The release the host holds now, as far as this run knows. */
  live: string | null
  /** The release live before this rollback. */
  from: string | null
  attention?: boolean
  recovery?: Recovery
  error?: string
  result?: RollbackResult
}

export interface FleetRollbackResult {
  exitCode: number
  outcome: 'rolled-back' | 'already-live' | 'failed' | 'restored' | 'halted' | 'needs-attention' | 'interrupted'
  /** The release every host ends with (null: the tree from before hotctl). */
  release: string | null
  onFailure: 'rollback-all' | 'halt'
  waves: string[][]
  failedHost?: string
  hosts: FleetHostRollback[]
  error?: string
  durationMs: number
}

interface FleetRollbackRun extends WaveState {
  slots: HostSlot[]
  runs: Map<HostSlot, RollbackRun>
  release?: string | null
}

/**
 * `rollback` / `rollback --to R` over a fleet, with the deploy's waves and its all-or-nothing
 * rule: every host must resolve to the same release (so `--to R` is one tree everywhere), each
 * host runs the local rollback's steps (undo snapshot → restore → verify → reload → confirm →
 * smoke), and when one fails, the hosts already rolled back are put back from the snapshot their
 * rollback took (under `halt`, only the failing host is).
 */
export async function fleetRollback(
  fleet: FleetContext,
  opts: {to?: string; force?: boolean},
): Promise<FleetRollbackResult> {
  const started = Date.now()
  const slots = openHosts(fleet)
  const waves = planWaves(slots, fleet.config.fleet.waves)
  const run: FleetRollbackRun = {slots, runs: new Map(), errors: new Map()}
  const result: FleetRollbackResult = {
    exitCode: EXIT.ok,
    outcome: 'rolled-back',
    release: null,
    onFailure: fleet.config.fleet.onFailure,
    waves: waves.map((w) => w.map((s) => s.host.name)),
    hosts: [],
    durationMs: 0,
  }
  const tree: ListrTask[] = [
    {
      title: `Preflight ${slots.length} host${slots.length === 1 ? '' : 's'}`,
      task: () => preflightHosts(slots, {source: false, createTarget: false}),
    },
    {
      title: 'Lock every host',
      task: () => lockHosts(slots, `hotctl ${process.argv.slice(2).join(' ')}`),
    },
    {
      title: 'Finish interrupted operations',
      task: async (_c, task) => {
        await recoverHosts(slots, {allowRestart: true})
        const found = slots.filter((s) => s.recovery).map((s) => s.host.name)
        task.title = found.length
          ? `Recovered interrupted operations on ${found.join(', ')}`
          : 'No interrupted operation'
      },
    },
    {
      title: 'Choose the snapshot on every host',
      task: async (_c, task) => {
        await chooseEverywhere(run, opts.to, opts.force)
        task.title = `Roll back to ${describe(run.release ?? null)} on ${slots.length} hosts`
      },
    },
    ...waveTasks(
      fleet,
      waves,
      run,
      (slot) => steps(restoreSteps(slot.ctx, run.runs.get(slot)!)),
      () => false,
    ),
  ]
  try {
    try {
      await runTasks(fleet.ui, tree, {})
    } catch (err) {
      if (![...run.runs.values()].some((r) => r.op)) throw beforeTheOperation(fleet, err)
      run.failed ??= {slot: slots.find((s) => run.runs.get(s)?.op)!, error: err}
    }
    if (fleet.signal.aborted && ![...run.runs.values()].some((r) => r.op))
      throw new HotctlError('interrupted', EXIT.interrupted)
    if (!run.failed && fleet.signal.aborted) run.failed = {slot: slots[0]!, error: new Error('interrupted by signal')}
    if (run.failed) await settleFleetRollback(fleet, run, result)
    else {
      // The fleet is proven: each host's lock goes as soon as its own end is recorded.
      await Promise.all(
        slots.map(async (s) => {
          await onHost(run.runs.get(s)!.result, () => finishRollback(s.ctx, run.runs.get(s)!))
          await unlockHosts([s])
        }),
      )
      const lost = slots.filter((s) => run.runs.get(s)!.result.exitCode === EXIT.needsAttention)
      if (lost.length > 0) {
        result.exitCode = EXIT.needsAttention
        result.outcome = 'needs-attention'
        result.error = `NEEDS ATTENTION on ${lost.map((s) => s.host.name).join(', ')}: proven, but the end could not be recorded`
      }
      if (slots.every((s) => run.runs.get(s)!.result.outcome === 'already-live')) result.outcome = 'already-live'
    }
  } finally {
    await unlockHosts(slots)
  }
  result.release = run.release ?? null
  result.hosts = slots.map((s) => hostReport(s, run))
  return {...result, durationMs: Date.now() - started}
}

/** Each host's snapshot for the release asked for; they must all name one release. One undo id for all. */
async function chooseEverywhere(run: FleetRollbackRun, to: string | undefined, force = false): Promise<void> {
  await Promise.all(
    run.slots.map(async (s) => {
      const r = newRollbackRun(s.ctx, force)
      run.runs.set(s, r)
      try {
        await chooseRollback(s.ctx, r, to)
      } catch (err) {
        const code = err instanceof HotctlError ? err.exitCode : EXIT.failed
        throw new HotctlError(`host ${s.host.name}: ${errorMessage(err)}`, code, (err as HotctlError).hint, {
          host: s.host.name,
        })
      }
    }),
  )
  const releases = new Map(run.slots.map((s) => [s.host.name, run.runs.get(s)!.choice!.release]))
  const distinct = [...new Set(releases.values())]
  if (distinct.length > 1) {
    const which = [...releases].map(([h, rel]) => `${h} → ${describe(rel)}`).join(', ')
    throw new HotctlError(
      `the hosts' previous releases differ (${which}): a fleet rollback ends with one release everywhere`,
      EXIT.failed,
      'Name the release: `hotctl rollback --to RELEASE` (`hotctl backups` shows which exist on every host). Nothing was touched.',
      {releases: Object.fromEntries(releases)},
    )
  }
  run.release = distinct[0] ?? null
  const ids = await Promise.all(run.slots.map((s) => nextId(s.ctx)))
  const undo = ids.reduce((a, b) => (a > b ? a : b))
  for (const r of run.runs.values()) if (r.choice?.snapshot) r.undo = undo
}

/** Puts back the hosts that must go back (settleRollback: from the snapshot each rollback took). */
async function settleFleetRollback(
  fleet: FleetContext,
  run: FleetRollbackRun,
  result: FleetRollbackResult,
): Promise<void> {
  const interrupted = fleet.signal.aborted
  const all = interrupted || fleet.config.fleet.onFailure === 'rollback-all'
  const failedName = run.failed!.slot.host.name
  const why = interrupted ? 'interrupted by signal' : errorMessage(run.failed!.error)
  result.failedHost = interrupted ? undefined : failedName
  await Promise.all(
    run.slots.map(async (s) => {
      const r = run.runs.get(s)
      if (!r?.op) return
      const own = run.errors.get(s)
      if (own === undefined && !all) return onHost(r.result, () => finishRollback(s.ctx, r))
      const err = own ?? new Error(`put back with the fleet: ${failedName} failed: ${why}`)
      try {
        r.result = {...r.result, ...(await settleRollback(s.ctx, r, err))}
      } catch (e) {
        if (r.changed) {
          // Put back (or not), but the end could not be recorded: the host is out of reach.
          await onHost(r.result, () => Promise.reject(e))
          return
        }
        // Failed before it changed this host: nothing to put back.
        r.result = {
          ...r.result,
          outcome: 'restored',
          exitCode: e instanceof HotctlError ? e.exitCode : EXIT.failed,
          error: errorMessage(e),
        }
      }
    }),
  )
  const settled = run.slots.map((s) => run.runs.get(s)).filter((r): r is RollbackRun => !!r?.op)
  Object.assign(
    result,
    settledFleet({
      slots: run.slots,
      resultOf: (s) => run.runs.get(s)?.result,
      settled: settled.map((r) => ({exitCode: r.result.exitCode, touched: r.changed})),
      failed: run.failed!,
      interrupted,
      all,
      failure: `rollback to ${describe(run.release ?? null)} failed on ${failedName}: ${why}`,
    }),
  )
}

function hostReport(s: HostSlot, run: FleetRollbackRun): FleetHostRollback {
  const r = run.runs.get(s)
  const base = {
    name: s.host.name,
    address: s.host.address,
    ...(s.wave ? {wave: s.wave} : {}),
    ...(s.recovery ? {recovery: s.recovery} : {}),
  }
  if (!r) return {...base, outcome: 'untouched', exitCode: EXIT.ok, live: null, from: null}
  const {result} = r
  const own = run.errors.get(s)
  if (!r.op) {
    const ok = result.outcome === 'already-live' && own === undefined
    return {
      ...base,
      outcome: ok ? 'already-live' : own !== undefined ? 'failed' : 'untouched',
      exitCode: own !== undefined ? EXIT.failed : EXIT.ok,
      live: result.from,
      from: result.from,
      ...(own !== undefined ? {error: errorMessage(own)} : {}),
      result,
    }
  }
  const attention = result.exitCode === EXIT.needsAttention
  const live = result.outcome === 'rolled-back' ? result.release : attention ? null : result.from
  return {
    ...base,
    outcome: result.outcome,
    exitCode: result.exitCode,
    live,
    from: result.from,
    ...(attention ? {attention} : {}),
    ...(result.error ? {error: result.error} : {}),
    result,
  }
}
