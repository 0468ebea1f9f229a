import chalk from 'chalk'
import {showPath} from '../file-names.js'
import {type DeployResult, describeChanges} from '../pipeline/deploy.js'
import {formatBytes, formatDuration} from './format.js'

/** `hotctl deploy`: the plan of a dry run, what went live and how to undo it, or what failed and what was restored. */
export function renderDeploy(r: DeployResult, paths: {source: string; target: string}): string {
  if (r.outcome === 'dry-run' && r.plan && r.changes) return dryRun(r.plan, r.changes, r.steps ?? []).join('\n')
  if (r.outcome === 'nothing-to-deploy') {
    return `Nothing to deploy: ${paths.target} already matches ${paths.source} (--force deploys anyway).`
  }
  if (r.outcome === 'deployed') return deployed(r).join('\n')
  return failed(r).join('\n')
}

function dryRun(
  plan: NonNullable<DeployResult['plan']>,
  c: NonNullable<DeployResult['changes']>,
  steps: string[],
): string[] {
  const lines = [chalk.bold(`Plan for release ${plan.id} (dry run, nothing changed):`), ...steps.map((s) => `  - ${s}`)]
  lines.push(`Changes: ${describeChanges(c)}`)
  for (const p of c.added) lines.push(`  ${chalk.green('+')} ${showPath(p)}`)
  for (const p of c.changed) lines.push(`  ${chalk.yellow('~')} ${showPath(p)}`)
  for (const p of c.deleted) lines.push(`  ${chalk.red('-')} ${showPath(p)}`)
  if (plan.needsRestart.length)
    lines.push(chalk.yellow(`Needs a restart: ${plan.needsRestart.map(showPath).join(', ')}`))
  lines.push(`rsync: ${plan.rsyncArgv.join(' ')}`)
  return lines
}

function deployed(r: DeployResult): string[] {
  const changes = r.changes ? describeChanges(r.changes) : ''
  const lines = [chalk.green(`Deployed release ${r.release} (${changes}) in ${formatDuration(r.durationMs)}.`)]
  if (r.proof?.confirmed)
    lines.push(`Live: every service reports ${r.proof.confirmed}${r.proof.restarted ? ' (after restart)' : ''}.`)
  if (r.backup)
    lines.push(
      `Backup ${r.backup.id}: ${r.backup.files} files, ${formatBytes(r.backup.added)} added. Undo: hotctl rollback`,
    )
  return [...lines, ...stepLines(r)]
}

/** Release steps and the canary (issue 9): what ran, what was undone, the canary's figures. */
function stepLines(r: DeployResult): string[] {
  const lines: string[] = []
  const s = r.releaseSteps
  if (s?.ran.length) lines.push(`Release steps run: ${s.ran.join(', ')}.`)
  if (s?.undone.length) lines.push(chalk.yellow(`Release steps undone (newest first): ${s.undone.join(', ')}.`))
  for (const n of s?.notUndone ?? []) lines.push(chalk.red(`Release step ${n.step} NOT undone: ${n.why}`))
  if (r.canary?.steps.length) {
    const figures = r.canary.steps.map((c) => `${c.percent} %: ${c.canaryErrors}/${c.canaryCalls} failed`)
    lines.push(`Canary: ${figures.join('; ')} → ${r.canary.outcome}.`)
  }
  return lines
}

function failed(r: DeployResult): string[] {
  const lines = [chalk.red(`Deploy ${r.release ?? ''} failed: ${r.error}`)]
  const restore = r.restore
  if (!restore) return [...lines, ...stepLines(r)]
  const what = restore.release ? `release ${restore.release}` : 'the previous tree'
  lines.push(
    restore.ok
      ? chalk.yellow(`Restored backup ${restore.backup} and proved ${what} live again.`)
      : chalk.red(`Restore of ${restore.backup} FAILED: ${restore.error}. The target needs attention.`),
  )
  return [...lines, ...stepLines(r)]
}
