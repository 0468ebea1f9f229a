import chalk from 'chalk'
import type {LogEntry, LogResult} from '../pipeline/log.js'
import {formatDuration} from './format.js'

/** `hotctl log`: one line per operation, newest first; a failed one's error on the line below. */
export function renderLog(r: LogResult): string {
  if (r.operations.length === 0)
    return r.total === 0 ? 'No operations recorded yet.' : `No operations match (${r.total} in the journal).`
  const rows = r.operations.map((e) => [
    e.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    e.op,
    e.result,
    e.durationMs === null ? '-' : formatDuration(e.durationMs),
    e.release ?? (e.op === 'recover' ? '-' : 'initial'),
    files(e),
    `${e.user}@${e.host}`,
    e.command,
  ])
  const head = ['STARTED', 'OP', 'RESULT', 'TIME', 'RELEASE', 'FILES +/~/-', 'BY', 'COMMAND']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  const out = [chalk.bold(line(head))]
  r.operations.forEach((e, i) => {
    const text = line(rows[i]!)
    out.push(e.result === 'ok' || e.result === 'nothing' || e.result === 'recovered' ? text : colour(e)(text))
    if (e.error) out.push(`    ${chalk.dim('error:')} ${e.error.split('\n')[0]}`)
  })
  if (r.operations.length < r.total) out.push(chalk.dim(`${r.operations.length} of ${r.total} operations shown`))
  return out.join('\n')
}

function files(e: LogEntry): string {
  return e.files ? `+${e.files.added} ~${e.files.changed} -${e.files.deleted}` : '-'
}

const colour = (e: LogEntry) => (e.result === 'attention' ? chalk.red : chalk.yellow)
