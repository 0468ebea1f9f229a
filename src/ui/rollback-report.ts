import chalk from 'chalk'
import {describe} from '../pipeline/releases.js'
import type {RollbackResult} from '../pipeline/rollback.js'

/** `hotctl rollback`: what is live now and how to undo it, or what failed and what was put back. */
export function renderRollback(r: RollbackResult): string {
  const what = describe(r.release)
  if (r.outcome === 'already-live') {
    return chalk.green(`${what[0]!.toUpperCase()}${what.slice(1)} is already live (confirmed); nothing changed.`)
  }
  if (r.outcome === 'rolled-back') {
    const undo = r.undoWith ? `Undo: ${r.undoWith}` : `The tree from before the rollback is kept as snapshot ${r.undo}.`
    return chalk.green(`Rolled back to ${what} (snapshot ${r.snapshot}). ${undo}`) + stepsLine(r)
  }
  const after = r.restore?.ok
    ? `Put back the tree from before the rollback (${r.undo}).`
    : 'The target needs attention.'
  return chalk.red(`Rollback to ${what} failed: ${r.error}\n`) + after + stepsLine(r)
}

/** Release steps (issue 9) the rollback undid, re-applied or redid, and those --force passed over. */
function stepsLine(r: RollbackResult): string {
  const s = r.releaseSteps
  if (!s) return ''
  const undone = s.undone.length ? `\nRelease steps undone: ${s.undone.join(', ')}.` : ''
  const reapplied = s.reapplied?.length ? `\nRelease steps re-applied: ${s.reapplied.join(', ')}.` : ''
  const redone = s.redone?.length ? `\nRelease steps redone after the failure: ${s.redone.join(', ')}.` : ''
  const skipped = s.skipped.length ? chalk.yellow(`\nLeft in place (no undo, --force): ${s.skipped.join(', ')}.`) : ''
  return undone + reapplied + redone + skipped
}
