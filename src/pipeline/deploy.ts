import {execa} from 'execa'
import {EXIT, HotctlError, errorMessage} from '../errors.js'
import {type ChangeSet, changeCount} from '../plan/changeset.js'
import {type DeployPlan, planDeploy} from '../plan/deploy-plan.js'
import type {ItemizedChange} from '../rsync/itemize.js'
import type {BackupMeta} from '../state/backups.js'
import {currentUser} from '../target/local.js'
import {runTasks} from '../ui/render.js'
import {type CheckOutcome, checkTasks} from './checks.js'
import type {OpContext} from './context.js'
import {lockTarget, nextId, Operation, recoverInterrupted, type Recovery} from './operation.js'
import {emptyProof, type LiveProof, proveLiveTasks} from './prove-live.js'
import {pinnedBackups, pruneAfter} from './prune.js'
import type {RestoreOutcome} from './restore.js'
import {restoreAndProve} from './restore.js'

export interface DeployFlags {
  skipChecks: boolean
  force: boolean
  dryRun: boolean
  noRestart: boolean
}

export interface DeployResult {
  exitCode: number
  outcome: 'deployed' | 'nothing-to-deploy' | 'dry-run' | 'failed' | 'restored' | 'needs-attention' | 'interrupted'
  release?: string
  previousRelease: string | null
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

/**
 * The deploy checklist: checks → plan → lock → recover → backup → sync → reload → confirm →
 * smoke → prune. Nothing before sync touches the target; any failure from sync on restores the
 * backup and proves the previous release is live again.
 */
export async function deploy(ctx: OpContext, flags: DeployFlags): Promise<DeployResult> {
  const started = Date.now()
  const {config, target} = ctx
  const previousRelease = target.readMarker()?.id ?? null
  const result: DeployResult = {exitCode: EXIT.ok, outcome: 'deployed', previousRelease, checks: [], durationMs: 0}
  const done = (r: DeployResult) => ({...r, durationMs: Date.now() - started})

  // 1. checks: nothing is touched yet, a failure exits 1.
  if (!flags.skipChecks && config.checks.length > 0) {
    await runTasks(ctx.ui, [{title: 'Checks', task: (_c, task) => task.newListr(checkTasks(ctx, result.checks), {concurrent: true, exitOnError: false})}], {})
    if (result.checks.some((c) => !c.ok)) {
      const failed = result.checks.filter((c) => !c.ok)
      throw new HotctlError(`checks failed: ${failed.map((c) => c.name).join(', ')}\n${failed.map((c) => `--- ${c.name}\n${c.detail}`).join('\n')}`, EXIT.checksFailed, 'Fix them (the target was not touched), or pass --skip-checks.', {checks: result.checks})
    }
  }
  throwIfInterrupted(ctx)

  // 2. plan (read-only). A dry run stops here, without taking the lock.
  if (flags.dryRun) {
    const plan = await makePlan(ctx, flags)
    result.preview = await target.previewSync(config.source, plan.changes)
    return done({...result, ...planned(plan), outcome: 'dry-run', release: plan.id})
  }

  // 3. lock; finish any interrupted operation first; plan under the lock.
  const unlock = lockTarget(ctx, `hotctl ${process.argv.slice(2).join(' ')}`)
  try {
    result.recovery = await recoverInterrupted(ctx, {allowRestart: !flags.noRestart})
    const plan = await makePlan(ctx, flags)
    Object.assign(result, planned(plan))
    if (plan.needsRestart.length > 0 && flags.noRestart) {
      throw new HotctlError(`these changes need a restart, refused by --no-restart: ${plan.needsRestart.join(', ')}`, EXIT.needsRestart, 'Deploy them without --no-restart (reload.restart then runs), or leave them out of this deploy.', {needsRestart: plan.needsRestart})
    }
    if (plan.nothingToDeploy) return done({...result, outcome: 'nothing-to-deploy'})
    throwIfInterrupted(ctx)
    return done(await apply(ctx, flags, plan, result))
  } finally {
    unlock()
  }
}

async function apply(ctx: OpContext, flags: DeployFlags, plan: DeployPlan, result: DeployResult): Promise<DeployResult> {
  const {config, target} = ctx
  const id = plan.id
  const op = new Operation(ctx, 'deploy', id, {backup: id, release: id, from: result.previousRelease})
  let targetChanged = false
  const proof = emptyProof()
  result.proof = proof
  result.release = id
  const env = {...ctx.env, HOTCTL_RELEASE_ID: id}
  const live = {...ctx, env}
  try {
    await runTasks(
      ctx.ui,
      [
        {
          title: `Backup ${id}`,
          task: (_c, task) => {
            op.phase('backup')
            const meta = target.snapshot(id, 'deploy')
            result.backup = {id: meta.id, files: meta.files, bytes: meta.bytes, added: meta.added}
            task.title = `Backup ${id}: ${meta.files} files, ${formatBytes(meta.added)} added`
          },
        },
        {
          title: `Sync ${describeChanges(plan.changes)}`,
          task: async () => {
            throwIfInterrupted(ctx)
            op.phase('sync')
            targetChanged = true
            await target.sync(config.source, plan.changes, ctx.signal, op.child)
            const bad = target.verifySynced(config.source, plan.changes)
            if (bad.length > 0) throw new Error(`target does not match the source after sync at: ${bad.slice(0, 10).join(', ')}`)
            op.phase('marker')
            target.writeMarker({id, gitSha: await gitSha(config.source), user: currentUser(), time: new Date().toISOString()})
          },
        },
        ...proveLiveTasks(live, id, proof, {allowRestart: !flags.noRestart, phase: op.phase, label: 'release', phases: {reload: 'reload', confirm: 'confirm', smoke: 'smoke'}}),
      ],
      {},
    )
    throwIfInterrupted(ctx)
  } catch (err) {
    const error = ctx.signal.aborted ? 'interrupted by signal' : errorMessage(err)
    result.error = error
    if (!targetChanged) {
      const exitCode = ctx.signal.aborted ? EXIT.interrupted : err instanceof HotctlError ? err.exitCode : EXIT.checksFailed
      op.end(ctx.signal.aborted ? 'interrupted' : 'failed', exitCode, {error})
      return {...result, exitCode, outcome: ctx.signal.aborted ? 'interrupted' : 'failed'}
    }
    ctx.ui.say(`hotctl: deploy ${id} failed after changing the target (${error}); restoring backup ${id}`)
    const restore = await restoreAndProve(ctx, id, op.phase, {allowRestart: !flags.noRestart})
    result.restore = restore
    // The service said the changes need a restart and --no-restart forbade it: restored, exit 6.
    const restoredCode = err instanceof HotctlError && err.exitCode === EXIT.needsRestart ? EXIT.needsRestart : EXIT.restored
    const exitCode = !restore.ok ? EXIT.needsAttention : ctx.signal.aborted ? EXIT.interrupted : restoredCode
    op.end(restore.ok ? (ctx.signal.aborted ? 'interrupted' : 'restored') : 'attention', exitCode, {error: restore.ok ? error : `${error}; restore: ${restore.error}`, changes: changeCount(plan.changes)})
    return {...result, exitCode, outcome: restore.ok ? (ctx.signal.aborted ? 'interrupted' : 'restored') : 'needs-attention'}
  }
  op.end('ok', EXIT.ok, {changes: changeCount(plan.changes)})
  result.pruned = pruneAfter(ctx, pinnedBackups(target, id))
  return result
}

async function makePlan(ctx: OpContext, flags: DeployFlags): Promise<DeployPlan> {
  return planDeploy(ctx.config, await ctx.target.planChanges(ctx.config.source), nextId(ctx), flags)
}

/** The plan's part of the result: counts in `plan`, the paths in `changes`. */
function planned(plan: DeployPlan): Pick<DeployResult, 'plan' | 'changes'> {
  return {plan: {...plan, changes: {added: plan.changes.added.length, changed: plan.changes.changed.length, deleted: plan.changes.deleted.length}}, changes: plan.changes}
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

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}
