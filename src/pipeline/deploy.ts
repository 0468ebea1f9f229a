import {execFile} from 'node:child_process'
import {errorMessage, EXIT, HotctlError} from '../errors.js'
import {showPath} from '../file-names.js'
import {type ChangeSet, changeCount, fileCounts} from '../plan/changeset.js'
import {type DeployPlan, planDeploy} from '../plan/deploy-plan.js'
import type {TargetPlan} from '../target/target.js'
import type {ItemizedChange} from '../rsync/itemize.js'
import type {BackupMeta} from '../state/backups.js'
import {formatBytes} from '../ui/format.js'
import {isInteractive, runTasks} from '../ui/render.js'
import {backupProgress} from '../ui/backup-progress.js'
import {syncProgress} from '../ui/sync-progress.js'
import {verbose} from '../ui/verbose.js'
import {type CheckOutcome, checksGroup} from './checks.js'
import type {OpContext} from './context.js'
import {recordDeployedTree} from './diff.js'
import {lockTarget, nextId, Operation, recoverInterrupted, type Recovery} from './operation.js'
import {emptyProof, type LiveProof, proveLiveTasks} from './prove-live.js'
import {preflight, requirePreflight} from './preflight.js'
import {pinnedBackups, pruneAfter} from './prune.js'
import type {RestoreOutcome} from './restore.js'
import {beforeLast, restoreAndProve} from './restore.js'
import {DeploySteps, type StepsReport} from './release-steps.js'
import {type CanaryHost, type CanaryPlan, type CanaryReport, canaryTasks} from './canary.js'
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
  /** The service is in maintenance mode from the first change until the release (or the restored one) is confirmed live. */
  maintenance?: boolean
  /** --canary: the new release takes a growing share of calls inside the agent before it is promoted. */
  canary?: CanaryPlan
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
  /** Release steps (config `steps:`): which ran, were skipped, undone. */
  releaseSteps?: StepsReport
  /** --canary: each step's figures, and whether it was promoted or aborted. */
  canary?: CanaryReport
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
  releaseSteps: DeploySteps
  /** When deploy() began: the operation's duration (journal and output) counts from here. */
  started: number
  sync?: ReturnType<typeof syncProgress>
  backup?: ReturnType<typeof backupProgress>
}

/**
 * The deploy checklist, one task tree: preflight → checks → lock → recover → plan → backup → sync
 * → verify → reload → confirm → smoke → prune. Nothing before sync touches the target; any failure
 * from sync on restores the backup and proves the previous release is live again. `--dry-run`
 * renders the same tree: planning runs (read-only), every later step is skipped, titled with what
 * it would do.
 */
export async function deploy(ctx: OpContext, flags: DeployFlags): Promise<DeployResult> {
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
    return await settleDeploy(ctx, run, err)
  } finally {
    await run.unlock?.()
  }
  return {...result, durationMs: result.durationMs || Date.now() - run.started}
}

/** A deploy's shared state, before anything ran: the live release is the one it replaces. */
export async function newDeployRun(ctx: OpContext, flags: DeployFlags): Promise<DeployRun> {
  // Checks run in the source and may write there: then planning reads it after them (see the lock).
  if (flags.skipChecks || ctx.config.checks.length === 0) ctx.target.prepare?.(ctx.config.source)
  const previousRelease = (await ctx.target.readMarker())?.id ?? null
  const result: DeployResult = {
    exitCode: EXIT.ok,
    outcome: flags.dryRun ? 'dry-run' : 'deployed',
    previousRelease,
    checks: [],
    durationMs: 0,
  }
  const run = {flags, result, proof: emptyProof(), targetChanged: false, started: Date.now()} as DeployRun
  run.releaseSteps = new DeploySteps(ctx, {
    release: () => run.plan!.id,
    changes: () => run.plan?.changes,
    opId: () => run.op!.opId,
    dryRun: flags.dryRun,
    skipWhy: () => (run.plan?.nothingToDeploy ? 'nothing to deploy' : false),
    maintenance: !!flags.maintenance,
    onTouch: () => (run.targetChanged = true),
    proofMs: ctx.config.reloadTimeoutMs,
  })
  if (ctx.config.steps.length > 0) result.releaseSteps = run.releaseSteps.report
  return run
}

/** The proven deploy's end: journaled ok, then old backups pruned (still under the lock). */
export async function finishDeploy(ctx: OpContext, run: DeployRun): Promise<void> {
  const {result} = run
  const stillInMaintenance = await run.releaseSteps.close() // proven live: the service opens again
  if (stillInMaintenance) ctx.ui.say(`hotctl: warning: ${stillInMaintenance}`)
  const changes = run.plan!.changes
  const journaled = await run.op?.end('ok', EXIT.ok, {changes: changeCount(changes), files: fileCounts(changes)})
  if (journaled !== undefined) result.durationMs = journaled
  if (result.outcome === 'deployed' && run.op) await recordDeployedTree(ctx, run.op.opId, run.targetPlan) // for `hotctl diff`
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
      task: async () =>
        requirePreflight(await preflight(ctx, {source: true, createTarget: flags.createTarget, record: !flags.dryRun})),
    },
    {
      ...checksGroup(ctx, result.checks, {readOnly: dry}),
      does: `checks: ${config.checks.map((c) => c.name).join(', ')}`,
      enabled: () => !flags.skipChecks && config.checks.length > 0,
    },
    {
      title: 'Lock the target',
      does: 'lock the target',
      skip: () => dry && 'dry run: no lock taken',
      task: async () => {
        throwIfInterrupted(ctx)
        ctx.target.prepare?.(config.source) // after the checks (a no-op when newDeployRun did it)
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
        // The marker's commit, asked now: git runs while the backup and the sync do.
        if (!dry && !run.plan!.nothingToDeploy) void gitSha(config.source)
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
 * marker → reload (or the canary) → confirm → smoke. The operation stays open: the caller ends it
 * (finishDeploy), or settles it (settleDeploy) — a fleet only once every host is done.
 */
export function applySteps(ctx: OpContext, run: DeployRun): Step[] {
  const {apply, prove} = applyPhases(ctx, run)
  if (!run.flags.canary) return [...apply, ...prove]
  const canary = canaryTasks(canaryHost(ctx, run), run.flags.canary)
  return [...apply, ...wouldDo(canary, {dryRun: run.flags.dryRun, skipWhy: nothingToDo(run)}), ...prove]
}

/** The target as its canary sees it: its figures go to the deploy's result; the reload phase is journaled first. */
export function canaryHost(ctx: OpContext, run: DeployRun, name?: string): CanaryHost {
  return {
    name,
    ctx,
    report: (run.result.canary ??= {steps: [], outcome: 'running'}),
    expected: () => run.plan!.id,
    begin: () => run.op!.phase('reload'),
  }
}

const nothingToDo = (run: DeployRun) => () => (run.plan?.nothingToDeploy ? 'nothing to deploy' : false)

/**
 * applySteps in two parts, where a canary goes between them (a fleet runs one per wave): `apply`
 * backs up, syncs, verifies and marks; `prove` reloads (unless a canary loads the release),
 * confirms and smoke-tests.
 */
export function applyPhases(ctx: OpContext, run: DeployRun): {apply: Step[]; prove: Step[]} {
  const {config, target} = ctx
  const {flags, result} = run
  const dry = flags.dryRun
  const nothing = nothingToDo(run)
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
    reload: !flags.canary, // the canary loads the release itself
  })
  if (flags.canary) result.canary ??= {steps: [], outcome: 'running'}
  const apply: Step[] = [
    {
      title: 'Backup',
      does: 'back up the target',
      skip: () => nothing() || (dry && 'dry run: would back up the target'),
      progress: () => run.backup?.progress(),
      task: async (_c, task) => {
        throwIfInterrupted(ctx)
        const start = {backup: id(), release: id(), from: result.previousRelease}
        run.op = await Operation.start(ctx, 'deploy', id(), start, run.started)
        result.proof = run.proof
        await run.op.phase('backup')
        const live = isInteractive(ctx.ui) ? (line: string) => void (task.output = line) : undefined
        run.backup = backupProgress(live)
        const meta = await target.backups.snapshot(id(), 'deploy', run.targetPlan, run.backup.onProgress)
        result.backup = {id: meta.id, files: meta.files, bytes: meta.bytes, added: meta.added}
        task.title = `Backup ${id()}: ${meta.files} files, ${formatBytes(meta.added)} added`
      },
    },
    ...run.releaseSteps.backupTasks(),
    ...run.releaseSteps.tasks('before-sync'),
    {
      title: 'Sync',
      does: 'sync the changed paths into the target (rsync, in place, no restart)',
      skip: () => nothing() || (dry && `dry run: would sync ${describeChanges(run.plan!.changes)}`),
      progress: () => run.sync?.progress(),
      task: async (_c, task) => {
        task.title = `Sync ${describeChanges(run.plan!.changes)}`
        throwIfInterrupted(ctx)
        await run.op!.phase('sync')
        run.targetChanged = true
        const live = isInteractive(ctx.ui) ? (line: string) => void (task.output = line) : undefined
        run.sync = syncProgress(config.source, run.plan!.changes, live)
        await target.sync(config.source, run.targetPlan!, ctx.signal, run.op!.child, run.sync.onProgress)
        task.title = `Sync ${describeChanges(run.plan!.changes)}: ${run.sync.summary()}`
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
    ...run.releaseSteps.tasks('after-sync'),
  ]
  return {apply, prove: wouldDo(beforeLast(prove, run.releaseSteps.leaveTask()), {dryRun: dry, skipWhy: nothing})}
}

/** A failure after the operation started: restore when the target had changed, then one settlement. */
export async function settleDeploy(ctx: OpContext, run: DeployRun, err: unknown): Promise<DeployResult> {
  const {result, plan} = run
  const interrupted = ctx.signal.aborted
  const error = interrupted ? 'interrupted by signal' : errorMessage(err)
  let restore: RestoreOutcome | undefined
  if (run.targetChanged) {
    // The step that failed was just reported with its error: not repeated here.
    ctx.ui.say(`hotctl: deploy ${plan!.id} failed after changing the target; restoring backup ${plan!.id}`)
    const undo = await run.releaseSteps.undo() // the steps first, newest first: one atomic unit with the files
    restore = await restoreAndProve(ctx, plan!.id, run.op!.phase, {
      allowRestart: !run.flags.noRestart,
      beforeSmoke: run.releaseSteps.leaveTask(),
    })
    if (!undo.ok) restore = {...restore, ok: false, error: [undo.error, restore.error].filter(Boolean).join('; ')}
    result.restore = restore
  }
  await run.releaseSteps.close()
  const s = settle({targetChanged: run.targetChanged, error: err, interrupted, restore})
  const changes = plan ? changeCount(plan.changes) : undefined
  const files = plan ? fileCounts(plan.changes) : undefined
  const durationMs = await run.op!.end(s.result, s.exitCode, {error: s.error, changes, files})
  return {
    ...result,
    durationMs,
    exitCode: s.exitCode,
    outcome: s.outcome === 'recovered' ? 'restored' : s.outcome,
    error,
  }
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

/** The source's commit, asked once per process: every host of a fleet deploy gets the same (and no git process each). */
function gitSha(dir: string): Promise<string | null> {
  let sha = gitShas.get(dir)
  if (!sha) {
    verbose(`run: git -C ${dir} rev-parse HEAD`)
    // node's execFile, not execa: loading execa cost a deploy ~15 ms.
    sha = new Promise((resolve) =>
      execFile('git', ['-C', dir, 'rev-parse', 'HEAD'], (err, stdout) => resolve(err ? null : stdout.trim())),
    )
    gitShas.set(dir, sha)
  }
  return sha
}
const gitShas = new Map<string, Promise<string | null>>()
