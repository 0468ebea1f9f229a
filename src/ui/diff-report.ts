import chalk from 'chalk'
import {showPath} from '../file-names.js'
import type {DiffEntry, DiffResult} from '../pipeline/diff.js'
import {formatBytes} from './format.js'

/**
 * `hotctl diff`: a header naming both trees, one line per path (A/M/D with sizes) unless `stat`,
 * the totals, and the unified diff when --patch asked for it.
 */
export function renderDiff(d: DiffResult, opts: {stat: boolean}): string {
  const lines = [chalk.bold(`--- ${d.a.label}`), chalk.bold(`+++ ${d.b.label}`)]
  const total = d.added.length + d.changed.length + d.deleted.length
  if (total === 0) return [...lines, 'No differences.'].join('\n')
  if (!opts.stat) {
    const rows = [
      ...d.added.map((e) => ({e, tag: chalk.green('A'), size: size(e.after, e)})),
      ...d.changed.map((e) => ({
        e,
        tag: chalk.yellow('M'),
        size: e.modeOnly ? 'mode' : `${size(e.before, e)} → ${size(e.after, e)}`,
      })),
      ...d.deleted.map((e) => ({e, tag: chalk.red('D'), size: size(e.before, e)})),
    ].sort((x, y) => (x.e.path < y.e.path ? -1 : x.e.path > y.e.path ? 1 : 0))
    const width = Math.max(...rows.map((r) => showPath(r.e.path).length))
    for (const r of rows) lines.push(`${r.tag}  ${showPath(r.e.path).padEnd(width)}  ${chalk.dim(r.size)}`)
  }
  const sum = (es: DiffEntry[], k: 'before' | 'after') => es.reduce((n, e) => n + (e[k] ?? 0), 0)
  const grew = sum(d.added, 'after') + sum(d.changed, 'after')
  const shrank = sum(d.deleted, 'before') + sum(d.changed, 'before')
  lines.push(
    `${total} path(s): ${d.added.length} added, ${d.changed.length} changed, ${d.deleted.length} deleted ` +
      `(${formatBytes(shrank)} → ${formatBytes(grew)})`,
  )
  if (d.patch) lines.push('', d.patch.trimEnd())
  return lines.join('\n')
}

const size = (n: number | undefined, e: DiffEntry) => (e.type === 'symlink' ? 'symlink' : formatBytes(n ?? 0))
