import chalk from 'chalk'
import {EXIT} from '../errors.js'
import type {CheckResult} from '../pipeline/checks.js'
import type {PreflightItem} from '../target/target.js'

/** The preflight, one line per item: ✔/✖, what, the detail, and for a failure what to do. */
export function renderPreflight(items: PreflightItem[]): string {
  return items
    .map(
      (p) =>
        `${p.ok ? chalk.green('✔') : chalk.red('✖')} ${p.name}: ${p.detail}${!p.ok && p.hint ? ` → ${p.hint}` : ''}`,
    )
    .join('\n')
}

/** `hotctl check`'s verdict: all good with the counts, every failed item, or that it was interrupted. */
export function renderCheck(r: CheckResult): string {
  const failed = [
    ...r.preflight.filter((p) => !p.ok).map((p) => `${p.name} (${p.detail})`),
    ...r.checks.filter((c) => !c.ok).map((c) => `check ${c.name}`),
  ]
  if (failed.length > 0) return chalk.red(`Check failed: ${failed.join('; ')}`)
  if (r.exitCode === EXIT.interrupted) {
    return chalk.red(`Check interrupted: ${r.checks.length} check(s) finished before the signal, none failed.`)
  }
  return chalk.green(
    `All good: config ${r.config}, ${r.preflight.length} preflight item(s), ${r.checks.length} check(s).`,
  )
}
