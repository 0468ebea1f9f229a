import chalk from 'chalk'
import {HotctlCommand} from '../../base-command.js'
import {EXIT} from '../../errors.js'
import {relativeTime} from '../../ids.js'

export default class Backups extends HotctlCommand {
  static summary = 'List complete backups: id, time, release contained, git sha, files, size added.'
  static examples = ['<%= config.bin %> backups', '<%= config.bin %> backups prune --keep 5']

  async run(): Promise<void> {
    const {flags} = await this.parse(Backups)
    const ctx = await this.openContext(flags.config)
    const {formatBytes} = await import('../../pipeline/deploy.js')
    const live = ctx.target.readMarker()?.id ?? null
    const backups = ctx.target.backups().map(({root: _root, ...b}) => ({...b, current: b.id === live, holdsLiveRelease: b.release !== null && b.release === live}))
    this.finish({exitCode: EXIT.ok, target: ctx.config.target, liveRelease: live, backups}, () => {
      if (backups.length === 0) return 'No backups yet (each deploy takes one before it changes the target).'
      const rows = [['ID', 'TIME', 'REASON', 'RELEASE', 'GIT', 'FILES', 'ADDED', '']]
      for (const b of [...backups].reverse()) {
        rows.push([b.id, `${b.time.slice(0, 19).replace('T', ' ')} (${relativeTime(b.id)})`, b.reason, b.release ?? '(none)', b.gitSha?.slice(0, 10) ?? '', String(b.files), formatBytes(b.added), b.current ? '← before the live release (`hotctl rollback` restores it)' : b.holdsLiveRelease ? 'holds the live release' : ''])
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
      return rows.map((r, n) => (n === 0 ? chalk.bold : (s: string) => s)(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd())).join('\n')
    })
  }
}
