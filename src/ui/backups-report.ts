import chalk from 'chalk'
import {relativeTime} from '../ids.js'
import type {BackupsListing} from '../pipeline/backups.js'
import {describe, neverLiveReason} from '../pipeline/releases.js'
import {formatBytes} from './format.js'

/** How many never-live releases are listed under the table (all of them are in --json). */
const NEVER_LIVE_SHOWN = 5

/**
 * `hotctl backups`: a table of snapshots, newest first (what each holds and the `--to` that
 * restores it), then what is live, where plain `rollback` goes and the valid `--to` values.
 */
export function renderBackups(b: BackupsListing, now = Date.now()): string {
  if (b.backups.length === 0) return 'No backups yet (each deploy takes one before it changes the target).'
  const rows = [['SNAPSHOT', 'TAKEN', 'BY', 'RELEASE IT HOLDS', 'GIT', 'FILES', 'SIZE', 'ADDED', 'ROLLBACK']]
  for (const s of [...b.backups].reverse()) {
    const how = s.to ? `--to ${s.to}${s.next ? ' (or plain `hotctl rollback`)' : ''}` : (s.note ?? '')
    const taken = `${s.time.slice(0, 19).replace('T', ' ')} (${relativeTime(s.id, now)})`
    const [holds, git] = [s.release ?? 'before hotctl', s.gitSha?.slice(0, 10) ?? '']
    rows.push([s.id, taken, s.reason, holds, git, String(s.files), formatBytes(s.bytes), formatBytes(s.added), how])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  const table = rows.map((r, n) => {
    const line = r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()
    return n === 0 ? chalk.bold(line) : line
  })
  const {previous} = b
  const rollback =
    'error' in previous
      ? `refused: ${previous.error}`
      : `goes to ${describe(previous.release)} (snapshot ${previous.snapshot})`
  const lines = [
    ...table,
    '',
    `${chalk.bold('Live')}       ${describe(b.liveRelease)}`,
    `${chalk.bold('rollback')}   ${rollback}`,
  ]
  lines.push(`${chalk.bold('--to')}       ${b.targets.length ? b.targets.map((t) => t.to).join(', ') : 'no targets'}`)
  const never = b.neverLive.slice(-NEVER_LIVE_SHOWN).reverse()
  for (const n of never) lines.push(chalk.dim(`not a target: ${neverLiveReason(n)}`))
  const older = b.neverLive.length - never.length
  if (older > 0) lines.push(chalk.dim(`(${older} older releases that were never live: see --json)`))
  return lines.join('\n')
}
