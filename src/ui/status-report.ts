import chalk from 'chalk'
import {describe} from '../pipeline/releases.js'
import type {StatusReport} from '../pipeline/status.js'
import {formatDuration} from './format.js'

/** A bold name, its value starting in column 10. */
const label = (name: string) => `${chalk.bold(name)}${' '.repeat(9 - name.length)}`

/** `hotctl status`: one line per fact, then the recent operations, newest first. */
export function renderStatus(s: StatusReport): string {
  const lines = [`${label('Target')}${s.target}`, `${label('Release')}${release(s.release)}`]
  for (const svc of s.services) lines.push(`${label('Service')}${svc.name}: ${service(svc)}`)
  lines.push(`${label('Lock')}${lock(s.lock)}`)
  if (s.interrupted) {
    const {op, id, lastPhase} = s.interrupted
    const phase = lastPhase ?? 'start'
    lines.push(
      chalk.yellow(
        `Interrupted: ${op} ${id} stopped at phase ${phase}; the next deploy or rollback restores its backup first.`,
      ),
    )
  }
  if (s.needsAttention) lines.push(chalk.red(`NEEDS ATTENTION: ${s.attention}`))
  const {stats} = s
  const rate = stats.successRate === null ? 'n/a' : `${(stats.successRate * 100).toFixed(0)}%`
  const rollbacks = `rollbacks ${stats.rollbacks} (${stats.rollbacksLastHour} in the last hour)`
  const restores = `automatic restores ${stats.restores}`
  lines.push(
    `${label('Deploys')}${stats.deploys} (success rate ${rate}), ${rollbacks}, ${restores}, backups ${s.backups}`,
  )
  if (s.recent.length) {
    lines.push(chalk.bold('Recent'))
    for (const o of s.recent) {
      const duration = o.durationMs === null ? '' : formatDuration(o.durationMs)
      const what =
        o.op === 'rollback' && o.release !== undefined
          ? `to ${describe(o.release)}${o.restores ? ` (snapshot ${o.restores})` : ''}`
          : ''
      lines.push(
        `  ${o.id}  ${o.op.padEnd(8)} ${o.result.padEnd(11)} ${duration}${what ? `  ${what}` : ''}${o.error ? `  ${o.error.split('\n')[0]}` : ''}`,
      )
    }
  }
  return lines.join('\n')
}

function release(r: StatusReport['release']): string {
  if (!r) return 'none (no release marker: not deployed by hotctl yet)'
  return `${r.id}${r.gitSha ? ` (git ${r.gitSha.slice(0, 10)})` : ''} by ${r.user} at ${r.time}`
}

function service(svc: StatusReport['services'][number]): string {
  if (svc.error) return chalk.red(`unreachable: ${svc.error}`)
  const live = svc.live ? chalk.green('(live)') : svc.live === false ? chalk.yellow('(not the deployed release)') : ''
  const name = (v: string | null) => v ?? '(no version)'
  if (svc.others && svc.answers) {
    // Workers on different code (a reload that did not reach every worker), or some failing.
    const rest = svc.others.map((o) => `, ${name(o.version)} in ${o.count}`).join('')
    const failed = svc.failed ? `, ${svc.failed.error} in ${svc.failed.count}` : ''
    const first = svc.answers - svc.others.reduce((n, o) => n + o.count, 0) - (svc.failed?.count ?? 0)
    const mixed = chalk.yellow(
      svc.others.length > 0
        ? '(workers on different releases: reload again, or roll back)'
        : '(some requests failed: not every worker is healthy)',
    )
    return `reports ${name(svc.version)} in ${first} of ${svc.answers} answers${rest}${failed}${svc.state ? `, state ${String(svc.state)}` : ''} ${mixed}`
  }
  return `reports ${name(svc.version)}${svc.state ? `, state ${String(svc.state)}` : ''} ${live}`
}

function lock(l: StatusReport['lock']): string {
  if (!l) return 'free'
  return `${l.stale ? 'stale ' : ''}held by pid ${l.pid} on ${l.host} (${l.user}, "${l.command}", since ${l.started})`
}
