import chalk from 'chalk'
import type {FleetDeployResult} from '../pipeline/fleet-deploy.js'
import type {FleetRollbackResult} from '../pipeline/fleet-rollback.js'
import type {FleetBackups, FleetStatus} from '../pipeline/fleet-status.js'
import {describe} from '../pipeline/releases.js'
import {renderBackups} from './backups-report.js'
import {formatDuration} from './format.js'

/** Columns padded to their widest cell, the header bold. */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r, n) => {
    const line = r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()
    return n === 0 ? chalk.bold(line) : line
  })
}

const release = (id: string | null | undefined, attention?: boolean) =>
  attention ? chalk.red('UNKNOWN (needs attention)') : (id ?? 'none')

/** `hotctl deploy` on a fleet: the outcome, then which host holds what. */
export function renderFleetDeploy(r: FleetDeployResult): string {
  const n = r.hosts.length
  const head =
    r.outcome === 'dry-run'
      ? chalk.bold(`Plan for release ${r.release} on ${n} hosts (dry run, nothing changed); waves: ${waves(r.waves)}`)
      : r.outcome === 'nothing-to-deploy'
        ? `Nothing to deploy: every host already matches the source (--force deploys anyway).`
        : r.outcome === 'deployed'
          ? chalk.green(
              `Deployed release ${r.release} to ${n} hosts in ${formatDuration(r.durationMs)}. Undo: hotctl rollback`,
            )
          : headline(r.outcome, r.error ?? '', r.onFailure)
  const rows = [['HOST', 'WAVE', 'OUTCOME', 'HOLDS', 'WAS', 'NOTE']]
  for (const h of r.hosts) {
    const note = h.recovery ? `recovered interrupted ${h.recovery.op} ${h.recovery.interrupted}` : firstLine(h.error)
    const changes = r.outcome === 'dry-run' && h.result?.plan ? planned(h.result.plan.changes) : ''
    rows.push([
      h.name,
      h.wave ? String(h.wave) : '-',
      h.outcome,
      release(h.live, h.attention),
      h.previousRelease ?? 'none',
      changes || note,
    ])
  }
  return [head, ...table(rows), ...canaryLines(r)].join('\n')
}

/** `--canary`: each host's figures, step by step, and what became of its canary. */
function canaryLines(r: FleetDeployResult): string[] {
  return r.hosts.flatMap((h) => {
    const c = h.result?.canary
    if (!c?.steps.length) return []
    const figures = c.steps.map(
      (s) =>
        `${s.percent} %: ${s.canaryErrors}/${s.canaryCalls} failed, p95 ${ms(s.canaryP95Ms)} (old ${ms(s.currentP95Ms)})`,
    )
    return [`Canary on ${h.name} (wave ${h.wave ?? '-'}): ${figures.join('; ')} → ${c.outcome}.`]
  })
}

const ms = (v: number | null) => (v === null ? 'n/a' : `${v} ms`)

/** `hotctl rollback` on a fleet. */
export function renderFleetRollback(r: FleetRollbackResult): string {
  const what = describe(r.release)
  const head =
    r.outcome === 'rolled-back' || r.outcome === 'already-live'
      ? chalk.green(
          r.outcome === 'already-live'
            ? `${what} is already live on every host (confirmed); nothing changed.`
            : `Rolled back ${r.hosts.length} hosts to ${what} in ${formatDuration(r.durationMs)}.`,
        )
      : headline(r.outcome, r.error ?? '', r.onFailure)
  const rows = [['HOST', 'WAVE', 'OUTCOME', 'HOLDS', 'WAS', 'NOTE']]
  for (const h of r.hosts) {
    const note = h.recovery ? `recovered interrupted ${h.recovery.op} ${h.recovery.interrupted}` : firstLine(h.error)
    rows.push([h.name, h.wave ? String(h.wave) : '-', h.outcome, release(h.live, h.attention), h.from ?? 'none', note])
  }
  return [head, ...table(rows)].join('\n')
}

function headline(outcome: string, error: string, onFailure: string): string {
  if (outcome === 'needs-attention') return chalk.red(`FAILED, and not every host could be put back: ${error}`)
  if (outcome === 'halted')
    return chalk.yellow(
      `Halted (onFailure: halt): ${error}. The failing host was restored; the table says which host holds what.`,
    )
  if (outcome === 'interrupted') return chalk.yellow('Interrupted: every host this run changed was put back.')
  if (outcome === 'failed') return chalk.red(`Failed before any host changed: ${error}`)
  return chalk.yellow(
    `Failed: ${error}. Every host this run changed was put back and proven (onFailure: ${onFailure}).`,
  )
}

/** `hotctl status` on a fleet: one row per host, then whether the fleet runs one release. */
export function renderFleetStatus(s: FleetStatus): string {
  const rows = [['HOST', 'RELEASE', 'SERVICE REPORTS', 'LOCK', 'INTERRUPTED', 'LAST OPERATIONS']]
  for (const h of s.hosts) {
    if (!h.status) {
      rows.push([h.name, chalk.red('UNREACHABLE'), '', '', '', firstLine(h.error)])
      continue
    }
    const st = h.status
    const reports = st.services.length
      ? st.services
          .map((v) => (v.error ? 'unreachable' : `${v.version ?? '-'}${v.live === false ? ' (!)' : ''}`))
          .join(', ')
      : '-'
    const lock = st.lock ? `${st.lock.stale ? 'stale ' : ''}${st.lock.user}@${st.lock.host} pid ${st.lock.pid}` : 'free'
    const interrupted = st.interrupted
      ? `${st.interrupted.op} ${st.interrupted.id} (${st.interrupted.lastPhase ?? 'start'})`
      : '-'
    const last = st.recent
      .slice(0, 3)
      .map((o) => `${o.op} ${o.id} ${o.result}`)
      .join('; ')
    rows.push([h.name, st.release?.id ?? 'none', reports, lock, interrupted, last || '-'])
  }
  const lines = [`${chalk.bold('Target')}  ${s.target} on ${s.hosts.length} hosts`, ...table(rows)]
  if (s.consistent) lines.push(chalk.green(`One release everywhere: ${Object.keys(s.releases)[0]}.`))
  else {
    const split = Object.entries(s.releases)
      .map(([rel, hosts]) => `${rel}: ${hosts.join(', ')}`)
      .join(' | ')
    lines.push(chalk.yellow(`NOT ONE RELEASE: ${split}`))
  }
  for (const h of s.hosts) {
    if (h.status?.needsAttention) lines.push(chalk.red(`${h.name} NEEDS ATTENTION: ${h.status.attention}`))
    else if (h.status?.interrupted)
      lines.push(
        chalk.yellow(`${h.name}: the next deploy or rollback restores the interrupted operation's backup first.`),
      )
  }
  return lines.join('\n')
}

/** `hotctl backups` on a fleet: each `--to` value and the hosts that have it. */
export function renderFleetBackups(b: FleetBackups): string {
  const rows = [['--to', 'ON', 'HOSTS']]
  for (const t of b.targets)
    rows.push([t.to, t.everywhere ? 'every host' : `${t.hosts.length}/${b.hosts.length}`, t.hosts.join(', ')])
  const lines = b.targets.length ? table(rows) : ['No backups yet on any host.']
  for (const h of b.hosts) {
    if (h.error) lines.push(chalk.red(`${h.name}: unreachable: ${firstLine(h.error)}`))
    else
      lines.push(
        chalk.dim(`${h.name}: live ${describe(h.backups!.liveRelease)}, ${h.backups!.backups.length} snapshots`),
      )
  }
  lines.push(
    chalk.dim('`hotctl rollback --to RELEASE` needs a release on every host; `--limit HOST` lists one host in full.'),
  )
  const only = b.hosts.length === 1 ? b.hosts[0]!.backups : undefined
  return only ? `${renderBackups(only)}\n\n${lines.join('\n')}` : lines.join('\n')
}

const waves = (w: string[][]) => w.map((hosts) => hosts.length).join(' → ')

const firstLine = (s: string | undefined) => (s ? s.split('\n')[0]! : '')

function planned(c: {added: number; changed: number; deleted: number}): string {
  return `${c.added} added, ${c.changed} changed, ${c.deleted} deleted`
}
