import type {ListrTask} from 'listr2'
import {planWaves} from '../config/hosts.js'
import {errorMessage, EXIT, HotctlError} from '../errors.js'
import {changeCount} from '../plan/changeset.js'
import {runTasks} from '../ui/render.js'
import {type CheckOutcome, checksGroup} from './checks.js'
import {type CanaryPlan, CanaryRun, canaryHostSteps, canaryTitle} from './canary.js'
import {
  applyPhases,
  applySteps,
  canaryHost,
  type DeployFlags,
  type DeployResult,
  type DeployRun,
  finishDeploy,
  newDeployRun,
  planRelease,
  planTarget,
  settleDeploy,
} from './deploy.js'
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
  type WaveParts,
  waveTasks,
  type WaveState,
} from './fleet-hosts.js'
import {nextId, type Recovery} from './operation.js'
import {beforeTheOperation} from './settle.js'
import {steps} from './steps.js'

export interface FleetHostDeploy {
  name: string
  address: string
  /** 1-based; absent when no wave reached the host. */
  wave?: number
  outcome: DeployResult['outcome'] | 'untouched'
  exitCode: number
  /** The release the host holds now, as far as this run knows (null: no marker; see `attention`). */
  live: string | null
  previousRelease: string | null
  /** The host's restore could not be proven: what it holds is unknown until someone looks. */
  attention?: boolean
  /** An interrupted operation found in the host's journal and restored before this deploy. */
  recovery?: Recovery
  error?: string
  result?: DeployResult
}

export interface FleetDeployResult {
  exitCode: number
  outcome:
    'deployed' | 'nothing-to-deploy' | 'dry-run' | 'failed' | 'restored' | 'halted' | 'needs-attention' | 'interrupted'
  /** The one release id of this deploy on every host. */
  release?: string
  onFailure: 'rollback-all' | 'halt'
  waves: string[][]
  /** The host whose failure ended the waves. */
  failedHost?: string
  checks: CheckOutcome[]
  hosts: FleetHostDeploy[]
  error?: string
  durationMs: number
}

/** What the fleet deploy's tasks share. */
interface FleetRun extends WaveState {
  slots: HostSlot[]
  runs: Map<HostSlot, DeployRun>
  release?: string
  nothing: boolean
}

/**
 * A fleet deploy, all or nothing: preflight every host in parallel → checks once, here → every
 * host's lock, tried at once → recover what killed runs left open → plan every host, one release id
 * → waves (per host the local protocol: backup → sync → verify/marker → reload → confirm → smoke,
 * at most `parallel` at a time) with a pause between waves. Every host's operation stays open until
 * the whole fleet is proven, so a controller killed mid-wave leaves each touched host with an
 * interrupted operation that the next run restores. On a failure: `rollback-all` restores every
 * touched host in parallel and proves its previous release live; `halt` restores the failing host
 * and leaves the others on the new release. An interrupt restores every touched host.
 */
export async function fleetDeploy(fleet: FleetContext, flags: DeployFlags): Promise<FleetDeployResult> {
  const started = Date.now()
  const {config} = fleet
  const slots = openHosts(fleet)
  const waves = planWaves(slots, config.fleet.waves)
  const run: FleetRun = {slots, runs: new Map(), errors: new Map(), nothing: false}
  const checks: CheckOutcome[] = []
  const result: FleetDeployResult = {
    exitCode: EXIT.ok,
    outcome: flags.dryRun ? 'dry-run' : 'deployed',
    onFailure: config.fleet.onFailure,
    waves: waves.map((w) => w.map((s) => s.host.name)),
    checks,
    hosts: [],
    durationMs: 0,
  }
  const dry = flags.dryRun
  const tree: ListrTask[] = [
    {
      title: `Preflight ${slots.length} host${slots.length === 1 ? '' : 's'}`,
      task: () => preflightHosts(slots, {source: true, createTarget: flags.createTarget}),
    },
    {
      ...checksGroup(fleet, checks, {readOnly: dry}),
      enabled: () => !flags.skipChecks && config.checks.length > 0,
    },
    {
      title: 'Lock every host',
      skip: () => dry && 'dry run: no lock taken',
      task: () => {
        if (fleet.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
        return lockHosts(slots, `hotctl ${process.argv.slice(2).join(' ')}`)
      },
    },
    {
      title: 'Finish interrupted operations',
      skip: () => dry && "dry run: an interrupted operation's backup would be restored first",
      task: async (_c, task) => {
        await recoverHosts(slots, {allowRestart: !flags.noRestart})
        const found = slots.filter((s) => s.recovery).map((s) => s.host.name)
        task.title = found.length
          ? `Recovered interrupted operations on ${found.join(', ')}`
          : 'No interrupted operation'
      },
    },
    {
      title: 'Plan every host',
      task: async (_c, task) => {
        await planFleet(run, flags)
        const changed = slots.filter((s) => changeCount(run.runs.get(s)!.targetPlan!.changes) > 0).length
        task.title = run.nothing
          ? `Plan: nothing to deploy on any of ${slots.length} hosts`
          : `Plan release ${run.release}: changes on ${changed} of ${slots.length} hosts`
      },
    },
    ...waveTasks(
      fleet,
      waves,
      run,
      flags.canary ? canaryWaves(fleet, run, flags.canary) : (slot) => steps(applySteps(slot.ctx, run.runs.get(slot)!)),
      () => (dry && 'dry run: no host is changed') || (run.nothing && 'nothing to deploy'),
      (slot) => ({...slot.ctx.env, HOTCTL_RELEASE_ID: run.release!}),
    ),
  ]
  try {
    try {
      await runTasks(fleet.ui, tree, {})
    } catch (err) {
      // Before any host's operation started, nothing was touched: the error says why.
      if (![...run.runs.values()].some((r) => r.op)) throw beforeTheOperation(fleet, err)
      run.failed ??= {slot: slots.find((s) => run.runs.get(s)?.op)!, error: err}
    }
    if (fleet.signal.aborted && ![...run.runs.values()].some((r) => r.op))
      throw new HotctlError('interrupted', EXIT.interrupted)
    if (!run.failed && fleet.signal.aborted) run.failed = {slot: slots[0]!, error: new Error('interrupted by signal')}
    if (run.failed) await settleFleet(fleet, run, result)
    else {
      // The fleet is proven: each host's lock goes as soon as its own end is recorded.
      await Promise.all(
        slots.map(async (s) => {
          await onHost(run.runs.get(s)!.result, () => finishDeploy(s.ctx, run.runs.get(s)!))
          await unlockHosts([s])
        }),
      )
      if (run.nothing) result.outcome = 'nothing-to-deploy'
      const lost = slots.filter((s) => run.runs.get(s)!.result.exitCode === EXIT.needsAttention)
      if (lost.length > 0) {
        result.exitCode = EXIT.needsAttention
        result.outcome = 'needs-attention'
        result.error = `NEEDS ATTENTION on ${lost.map((s) => s.host.name).join(', ')}: proven, but the end could not be recorded`
      }
    }
  } finally {
    await unlockHosts(slots)
  }
  result.release = run.release
  result.hosts = slots.map((s) => hostReport(s, run, result))
  return {...result, durationMs: Date.now() - started}
}

/**
 * `deploy --canary` on a fleet: each wave's hosts are backed up, synced and marked as usual, then
 * one canary runs on all of them at once (a breach on any host aborts it on every host, and that
 * host is the one that failed), then each is confirmed and smoke-tested.
 */
function canaryWaves(fleet: FleetContext, run: FleetRun, plan: CanaryPlan): WaveParts {
  const phases = new Map<HostSlot, ReturnType<typeof applyPhases>>()
  const phasesOf = (s: HostSlot) => {
    if (!phases.has(s)) phases.set(s, applyPhases(s.ctx, run.runs.get(s)!))
    return phases.get(s)!
  }
  return {
    before: {title: 'Back up, sync, verify', hostSteps: (s) => steps(phasesOf(s).apply)},
    together: (wave) => {
      const hosts = new Map(wave.map((s) => [s, canaryHost(s.ctx, run.runs.get(s)!, s.host.name)]))
      const canary = new CanaryRun([...hosts.values()], plan, fleet.signal)
      return {
        title: `${canaryTitle(plan)} on ${wave.map((s) => s.host.name).join(', ')}`,
        hostSteps: (s) =>
          steps(canaryHostSteps(canary, hosts.get(s)!)).map((t) => ({
            ...t,
            task: async (c, task) => {
              try {
                return await t.task(c, task)
              } catch (err) {
                // The host that broke the rule is the one that failed, whichever host's task ends first.
                const broke = wave.find((w) => hosts.get(w) === canary.failure?.host)
                if (broke) run.failed ??= {slot: broke, error: canary.failure!.error}
                throw err
              }
            },
          })),
      }
    },
    after: {title: 'Confirm and smoke-test', hostSteps: (s) => steps(phasesOf(s).prove)},
  }
}

/** Plans every host, then one release id later than every host's ids: `--to ID` is one tree everywhere. */
async function planFleet(run: FleetRun, flags: DeployFlags): Promise<void> {
  // Each host reads its ids as soon as its own plan is done (no wait for the slowest host's plan).
  const ids = await Promise.all(
    run.slots.map(async (s) => {
      const r = await newDeployRun(s.ctx, flags)
      run.runs.set(s, r)
      await planTarget(s.ctx, r)
      return nextId(s.ctx)
    }),
  )
  run.release = ids.reduce((a, b) => (a > b ? a : b))
  // One release everywhere: a host whose files already match still takes the marker and proves it.
  const changed = run.slots.some((s) => changeCount(run.runs.get(s)!.targetPlan!.changes) > 0)
  run.nothing = !changed && !flags.force
  for (const s of run.slots) {
    try {
      await planRelease(s.ctx, run.runs.get(s)!, run.release, flags.force || changed)
    } catch (err) {
      const code = err instanceof HotctlError ? err.exitCode : EXIT.failed
      throw new HotctlError(`host ${s.host.name}: ${errorMessage(err)}`, code, (err as HotctlError).hint, {
        host: s.host.name,
      })
    }
  }
}

/**
 * After a failure or an interrupt: the failing hosts are restored (settleDeploy, as a local
 * deploy's failure), and so is every other touched host under rollback-all or an interrupt; under
 * halt, hosts that were proven keep the new release (their operation ends ok).
 */
async function settleFleet(fleet: FleetContext, run: FleetRun, result: FleetDeployResult): Promise<void> {
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
      if (own !== undefined || all) {
        const err = own ?? new Error(`put back with the fleet: ${failedName} failed: ${why}`)
        await onHost(r.result, async () => {
          r.result = {
            ...r.result,
            ...(await settleDeploy(s.ctx, r, interrupted && own === undefined ? new Error(why) : err)),
          }
        })
      } else {
        await onHost(r.result, () => finishDeploy(s.ctx, r))
      }
    }),
  )
  const settled = run.slots.map((s) => run.runs.get(s)).filter((r): r is DeployRun => !!r?.op)
  Object.assign(
    result,
    settledFleet({
      slots: run.slots,
      resultOf: (s) => run.runs.get(s)?.result,
      settled: settled.map((r) => ({exitCode: r.result.exitCode, touched: r.targetChanged})),
      failed: run.failed!,
      interrupted,
      all,
      failure: `deploy ${run.release} failed on ${failedName}: ${why}`,
    }),
  )
}

function hostReport(s: HostSlot, run: FleetRun, fleetResult: FleetDeployResult): FleetHostDeploy {
  const r = run.runs.get(s)
  const base = {
    name: s.host.name,
    address: s.host.address,
    ...(s.wave ? {wave: s.wave} : {}),
    ...(s.recovery ? {recovery: s.recovery} : {}),
  }
  if (!r) return {...base, outcome: 'untouched', exitCode: EXIT.ok, live: null, previousRelease: null}
  const {result} = r
  const previous = result.previousRelease
  if (!r.op) {
    const nothing = result.outcome === 'nothing-to-deploy'
    return {
      ...base,
      outcome: nothing ? 'nothing-to-deploy' : 'untouched',
      exitCode: EXIT.ok,
      live: previous,
      previousRelease: previous,
      ...(fleetResult.outcome === 'dry-run' ? {result} : {}),
    }
  }
  const outcome = result.outcome
  const attention = result.exitCode === EXIT.needsAttention
  const live = outcome === 'deployed' ? (result.release ?? null) : attention ? null : previous
  return {
    ...base,
    outcome,
    exitCode: result.exitCode,
    live,
    previousRelease: previous,
    ...(attention ? {attention} : {}),
    ...(result.error ? {error: result.error} : {}),
    result,
  }
}
