import {execa} from 'execa'
import {errorMessage, EXIT, HotctlError} from '../errors.js'
import {showPath} from '../file-names.js'
import {type ChangeSet, changeCount} from '../plan/changeset.js'
import {type DeployPlan, planDeploy} from '../plan/deploy-plan.js'
import type {TargetPlan} from '../target/target.js'
import type {ItemizedChange} from '../rsync/itemize.js'
import type {BackupMeta} from '../state/backups.js'
import {formatBytes} from '../ui/format.js'
import {runTasks} from '../ui/render.js'
import {type CheckOutcome, checksGroup} from './checks.js'
import type {OpContext} from './context.js'
import {lockTarget, nextId, Operation, recoverInterrupted, type Recovery} from './operation.js'
import {emptyProof, type LiveProof, proveLiveTasks} from './prove-live.js'
import {preflight, requirePreflight} from './preflight.js'
import {pinnedBackups, pruneAfter} from './prune.js'
import type {RestoreOutcome} from './restore.js'
import {restoreAndProve} from './restore.js'
import {beforeTheOperation, settle} from './settle.js'
import {described, type Step, steps, wouldDo} from './steps.js'

export {formatBytes} from '../ui/format.js'

export interface DeployFlags {
  skipChecks: boolean
  force: boolean
  dryRun: boolean
  noRestart: boolean
  /** A missing target is created instead of refused. */
  createTarget: boolean
}

export interface DeployResult {
  exitCode: number
  outcome: 'deployed' | 'nothing-to-deploy' | 'dry-run' | 'failed' | 'restored' | 'needs-attention' | 'interrupted'
  release?: string
  previousRelease: string | null
  /** What the deploy does (or, under --dry-run, would do): the titles of its task tree. */
  steps?: string[]
  plan?: Omit<DeployPlan, 'changes'> & {changes: {added: number; changed: number; deleted: number}}
  changes?: ChangeSet
  preview?: ItemizedChange[]
  checks: CheckOutcome[]
  backup?: Pick<BackupMeta, 'id' | 'files' | 'bytes' | 'added'>
  proof?: LiveProof
  restore?: RestoreOutcome
  recovery?: Recovery
  pruned?: string[]
  error?: string
  durationMs: number
}

/** What the deploy's steps share as they run (one task tree, built once); a fleet keeps one per host. */
export interface DeployRun {
  flags: DeployFlags
  result: DeployResult
  proof: LiveProof
  unlock?: () => Promise<void>
  targetPlan?: TargetPlan
  plan?: DeployPlan
  op?: Operation
  targetChanged: boolean
}

/**
 * The deploy checklist, one task tree: preflight → checks → lock → recover → plan → backup → sync
 * → verify → reload → confirm → smoke → prune. Nothing before sync touches the target; any failure
 * from sync on restores the backup and proves the previous release is live again. `--dry-run`
 * renders the same tree: planning runs (read-only), every later step is skipped, titled with what
 * it would do.
 */
export async function deploy(ctx: OpContext, flags: DeployFlags): Promise<DeployResult> {
  const started = Date.now()
  const run = await newDeployRun(ctx, flags)
  const {result} = run
  const tree = deploySteps(ctx, run)
  if (flags.dryRun) result.steps = described(tree)
  try {
    await runTasks(ctx.ui, steps(tree), {})
    throwIfInterrupted(ctx)
    await finishDeploy(ctx, run)
  } catch (err) {
    // Before the operation started (preflight, checks, lock, recovery, plan), nothing was touched:
    // the error says why, with its own exit code.
    if (!run.op) throw beforeTheOperation(ctx, err)
    return {...(await settleDeploy(ctx, run, err)), durationMs: Date.now() - started}
  } finally {
    await run.unlock?.()
  }
  return {...result, durationMs: Date.now() - started}
}

/** A deploy's shared state, before anything ran: the live release is the one it replaces. */
export async function newDeployRun(ctx: OpContext, flags: DeployFlags): Promise<DeployRun> {
  const previousRelease = (await ctx.target.readMarker())?.id ?? null
  const result: DeployResult = {
    exitCode: EXIT.ok,
    outcome: flags.dryRun ? 'dry-run' : 'deployed',
    previousRelease,
    checks: [],
    durationMs: 0,
  }
  return {flags, result, proof: emptyProof(), targetChanged: false}
}

/** The proven deploy's end: journaled ok, then old backups pruned (still under the lock). */
export async function finishDeploy(ctx: OpContext, run: DeployRun): Promise<void> {
  await run.op?.end('ok', EXIT.ok, {changes: changeCount(run.plan!.changes)})
  // Under the lock: a concurrent rollback must not lose the snapshot it is restoring.
  if (run.result.outcome === 'deployed' && run.op)
    run.result.pruned = await pruneAfter(ctx, await pinnedBackups(ctx.target, run.op.opId))
}

/**
 * Planning, part one: the target's change set, by content (read-only under dryRun). A fleet plans
 * every host this way before it picks the one release id.
 */
export async function planTarget(ctx: OpContext, run: DeployRun): Promise<void> {
  throwIfInterrupted(ctx)
  run.targetPlan = await ctx.target.planChanges(ctx.config.source, {dryRun: run.flags.dryRun})
}

/** Planning, part two (pure but for the dry run's preview): the plan for release `id`. */
export async function planRelease(ctx: OpContext, run: DeployRun, id: string, force = run.flags.force): Promise<void> {
  const {config, target} = ctx
  const {flags, result} = run
  run.plan = planDeploy(config, run.targetPlan!.changes, id, {force}, target.describeSync(config.source))
  Object.assign(result, planned(run.plan))
  result.release = run.plan.id
  if (run.plan.needsRestart.length > 0 && flags.noRestart) {
    const paths = run.plan.needsRestart.map(showPath).join(', ')
    const hint = 'Deploy them without --no-restart (reload.restart then runs), or leave them out of this deploy.'
    throw new HotctlError(`these changes need a restart, refused by --no-restart: ${paths}`, EXIT.needsRestart, hint, {
      needsRestart: run.plan.needsRestart,
    })
  }
  if (run.plan.nothingToDeploy) result.outcome = flags.dryRun ? 'dry-run' : 'nothing-to-deploy'
  if (flags.dryRun) result.preview = await target.previewSync(config.source, run.targetPlan!)
}

function deploySteps(ctx: OpContext, run: DeployRun): Step[] {
  const {config} = ctx
  const {flags, result} = run
  const dry = flags.dryRun
  return [
    {
      title: 'Preflight',
      does: 'preflight: rsync, source, target, state dir, status URLs',
      task: async () => requirePreflight(await preflight(ctx, {source: true, createTarget: flags.createTarget})),
    },
    {
      ...checksGroup(ctx, result.checks),
      does: `checks: ${config.checks.map((c) => c.name).join(', ')}`,
      enabled: () => !flags.skipChecks && config.checks.length > 0,
    },
    {task: () => requireChecks(result)}, // after all of them ran: every failure is reported
    {
      title: 'Lock the target',
      does: 'lock the target',
      skip: () => dry && 'dry run: no lock taken',
      task: async () => {
        throwIfInterrupted(ctx)
        run.unlock = await lockTarget(ctx, `hotctl ${process.argv.slice(2).join(' ')}`)
      },
    },
    {
      title: 'Finish an interrupted operation',
      does: "restore an interrupted operation's backup first, if the journal holds one",
      skip: () => dry && "dry run: an interrupted operation's backup would be restored first",
      task: async (_c, task) => {
        result.recovery = await recoverInterrupted(ctx, {allowRestart: !flags.noRestart})
        if (!result.recovery) task.title = 'No interrupted operation'
      },
    },
    {
      title: 'Plan',
      does: 'plan: the changes, by content',
      task: async (_c, task) => {
        await planTarget(ctx, run)
        const id = await nextId(ctx)
        task.title = `Plan release ${id}: ${describeChanges(run.targetPlan!.changes)}`
        await planRelease(ctx, run, id)
      },
    },
    ...applySteps(ctx, run),
    {
      title: 'Prune old backups',
      does: `prune backups beyond ${config.keep}`,
      skip: () =>
        (run.plan?.nothingToDeploy && 'nothing to deploy') ||
        (dry && `dry run: would prune backups beyond ${config.keep}`),
      task: () => undefined, // after the operation ends (deploy()): a failing prune never fails a proven deploy
    },
  ]
}

/**
 * One target's part of a deploy, once it is planned (and locked): backup → sync → verify and
 * marker → reload → confirm → smoke. The operation stays open: the caller ends it (finishDeploy),
 * or settles it (settleDeploy) — a fleet only once every host is done.
 */
export function applySteps(ctx: OpContext, run: DeployRun): Step[] {
  const {config, target} = ctx
  const {flags, result} = run
  const dry = flags.dryRun
  const nothing = () => (run.plan?.nothingToDeploy ? 'nothing to deploy' : false)
  const id = () => run.plan!.id
  const env = () => ({...ctx.env, ...(run.plan ? {HOTCTL_RELEASE_ID: run.plan.id} : {})})
  const live = {
    ...ctx,
    get env() {
      return env()
    },
  }
  const prove = proveLiveTasks(live, () => run.plan?.id ?? null, run.proof, {
    allowRestart: !flags.noRestart,
    phase: (p) => run.op!.phase(p),
    label: 'release',
    phases: {reload: 'reload', confirm: 'confirm', smoke: 'smoke'},
  })
  return [
    {
      title: 'Backup',
      does: 'back up the target',
      skip: () => nothing() || (dry && 'dry run: would back up the target'),
      task: async (_c, task) => {
        throwIfInterrupted(ctx)
        run.op = await Operation.start(ctx, 'deploy', id(), {backup: id(), release: id(), from: result.previousRelease})
        result.proof = run.proof
        await run.op.phase('backup')
        const meta = await target.backups.snapshot(id(), 'deploy', run.targetPlan)
        result.backup = {id: meta.id, files: meta.files, bytes: meta.bytes, added: meta.added}
        task.title = `Backup ${id()}: ${meta.files} files, ${formatBytes(meta.added)} added`
      },
    },
    {
      title: 'Sync',
      does: 'sync the changed paths into the target (rsync, in place, no restart)',
      skip: () => nothing() || (dry && `dry run: would sync ${describeChanges(run.plan!.changes)}`),
      task: async (_c, task) => {
        task.title = `Sync ${describeChanges(run.plan!.changes)}`
        throwIfInterrupted(ctx)
        await run.op!.phase('sync')
        run.targetChanged = true
        await target.sync(config.source, run.targetPlan!, ctx.signal, run.op!.child)
      },
    },
    {
      title: 'Verify the target equals the source; write the release marker',
      does: 'verify the synced content and write the release marker',
      skip: () => nothing() || (dry && 'dry run: would verify the content and write the release marker'),
      task: async () => {
        const bad = await target.verifySynced(config.source, run.targetPlan!)
        if (bad.length > 0)
          throw new Error(
            `target does not match the source after sync at: ${bad.slice(0, 10).map(showPath).join(', ')}`,
          )
        await run.op!.phase('marker')
        const {user} = await target.identity()
        await target.writeMarker({id: id(), gitSha: await gitSha(config.source), user, time: new Date().toISOString()})
      },
    },
    ...wouldDo(prove, {dryRun: dry, skipWhy: nothing}),
  ]
}

/** A failure after the operation started: restore when the target had changed, then one settlement. */
export async function settleDeploy(ctx: OpContext, run: DeployRun, err: unknown): Promise<DeployResult> {
  const {result, plan} = run
  const interrupted = ctx.signal.aborted
  const error = interrupted ? 'interrupted by signal' : errorMessage(err)
  let restore: RestoreOutcome | undefined
  if (run.targetChanged) {
    ctx.ui.say(`hotctl: deploy ${plan!.id} failed after changing the target (${error}); restoring backup ${plan!.id}`)
    restore = await restoreAndProve(ctx, plan!.id, run.op!.phase, {allowRestart: !run.flags.noRestart})
    result.restore = restore
  }
  const s = settle({targetChanged: run.targetChanged, error: err, interrupted, restore})
  await run.op!.end(s.result, s.exitCode, {error: s.error, changes: plan ? changeCount(plan.changes) : undefined})
  return {
    ...result,
    exitCode: s.exitCode,
    outcome: s.outcome === 'recovered' ? 'restored' : s.outcome,
    error,
  }
}

export function requireChecks(result: Pick<DeployResult, 'checks'>): void {
  const failed = result.checks.filter((c) => !c.ok)
  if (failed.length === 0) return
  const details = failed.map((c) => `--- ${c.name}\n${c.detail}`).join('\n')
  const hint = 'Fix them (the target was not touched), or pass --skip-checks.'
  throw new HotctlError(`checks failed: ${failed.map((c) => c.name).join(', ')}\n${details}`, EXIT.failed, hint, {
    checks: result.checks,
  })
}

/** The plan's part of the result: counts in `plan`, the paths in `changes`. */
function planned(plan: DeployPlan): Pick<DeployResult, 'plan' | 'changes'> {
  return {
    plan: {
      ...plan,
      changes: {
        added: plan.changes.added.length,
        changed: plan.changes.changed.length,
        deleted: plan.changes.deleted.length,
      },
    },
    changes: plan.changes,
  }
}

export function describeChanges(c: ChangeSet): string {
  return `${c.added.length} added, ${c.changed.length} changed, ${c.deleted.length} deleted`
}

function throwIfInterrupted(ctx: OpContext): void {
  if (ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
}

async function gitSha(dir: string): Promise<string | null> {
  const r = await execa('git', ['-C', dir, 'rev-parse', 'HEAD'], {reject: false})
  return r.exitCode === 0 ? String(r.stdout).trim() : null
}
