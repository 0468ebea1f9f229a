import chalk from 'chalk'
import {HotctlCommand} from '../../base-command.js'
import {EXIT, errorMessage} from '../../errors.js'
import {relativeTime} from '../../ids.js'

export default class Backups extends HotctlCommand {
  static summary = 'List snapshots: which release each holds, when and why it was taken, its size; and the valid `rollback --to` targets.'
  static description =
    'Each deploy snapshots the tree it replaces, each rollback the tree it replaces (its undo). A snapshot is named by the operation that took it; the RELEASE IT HOLDS column says what it holds, and `hotctl rollback --to RELEASE` restores the newest snapshot holding that release. A release whose deploy was restored was never live and is no target.'
  static examples = ['<%= config.bin %> backups', '<%= config.bin %> backups --json', '<%= config.bin %> backups prune --keep 5']

  async run(): Promise<void> {
    const {flags} = await this.parse(Backups)
    const ctx = await this.openContext(flags.config)
    const {formatBytes} = await import('../../pipeline/deploy.js')
    const {catalogOf, describe, neverLiveReason, resolvePrevious} = await import('../../pipeline/releases.js')
    const c = await catalogOf(ctx.target)
    let previous: {to: string; release: string | null; snapshot: string} | {error: string}
    try {
      const p = resolvePrevious(c)
      previous = {to: p.to, release: p.release, snapshot: p.snapshot!}
    } catch (err) {
      previous = {error: errorMessage(err)}
    }
    const result = {exitCode: EXIT.ok, target: ctx.config.target, liveRelease: c.live, previous, targets: c.targets, neverLive: c.neverLive, backups: c.snapshots}
    this.finish(result, () => {
      if (c.snapshots.length === 0) return 'No backups yet (each deploy takes one before it changes the target).'
      const rows = [['SNAPSHOT', 'TAKEN', 'BY', 'RELEASE IT HOLDS', 'GIT', 'FILES', 'SIZE', 'ADDED', 'ROLLBACK']]
      for (const s of [...c.snapshots].reverse()) {
        const how = s.to ? `--to ${s.to}${s.next ? ' (or plain `hotctl rollback`)' : ''}` : (s.note ?? '')
        const taken = `${s.time.slice(0, 19).replace('T', ' ')} (${relativeTime(s.id)})`
        rows.push([s.id, taken, s.reason, s.release ?? 'before hotctl', s.gitSha?.slice(0, 10) ?? '', String(s.files), formatBytes(s.bytes), formatBytes(s.added), how])
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
      const table = rows.map((r, n) => (n === 0 ? chalk.bold : (s: string) => s)(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()))
      const lines = [...table, '', `${chalk.bold('Live')}       ${describe(c.live)}`]
      lines.push(`${chalk.bold('rollback')}   ${'error' in previous ? `refused: ${previous.error}` : `goes to ${describe(previous.release)} (snapshot ${previous.snapshot})`}`)
      lines.push(`${chalk.bold('--to')}       ${c.targets.length ? c.targets.map((t) => t.to).join(', ') : 'no targets'}`)
      const never = c.neverLive.slice(-5).reverse()
      for (const n of never) lines.push(chalk.dim(`not a target: ${neverLiveReason(n)}`))
      if (c.neverLive.length > never.length) lines.push(chalk.dim(`(${c.neverLive.length - never.length} older releases that were never live: see --json)`))
      return lines.join('\n')
    })
  }
}
