import type {PruneResult} from '../pipeline/prune.js'
import {describe} from '../pipeline/releases.js'
import {formatBytes} from './format.js'

/** `hotctl backups prune`: what was removed and freed, and how many were kept. */
export function renderPrune(r: PruneResult): string {
  if (r.dryRun) return renderPruneDryRun(r)
  const removed = `Removed ${r.removed.length} backup(s)${r.removed.length ? `: ${r.removed.join(', ')}` : ''}`
  return `${removed}; freed ${formatBytes(r.freedBytes)}; kept the newest ${r.keep}.`
}

/** `--dry-run`: each backup that would go (and the release it holds), and the bytes that would be freed. */
function renderPruneDryRun(r: PruneResult): string {
  const gone = (r.wouldRemove ?? []).map((b) => `  ${b.id}  taken ${b.time}, holds ${describe(b.release)}`)
  if (gone.length === 0) return `Dry run: nothing to prune; every backup is within the newest ${r.keep} or pinned.`
  return [
    `Dry run: would remove ${gone.length} backup(s), keeping the newest ${r.keep}:`,
    ...gone,
    `Would free ${formatBytes(r.freedBytes)}. Nothing was removed.`,
  ].join('\n')
}
