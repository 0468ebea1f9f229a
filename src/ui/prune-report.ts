import type {PruneResult} from '../pipeline/prune.js'
import {formatBytes} from './format.js'

/** `hotctl backups prune`: what was removed and freed, and how many were kept. */
export function renderPrune(r: PruneResult): string {
  const removed = `Removed ${r.removed.length} backup(s)${r.removed.length ? `: ${r.removed.join(', ')}` : ''}`
  return `${removed}; freed ${formatBytes(r.freedBytes)}; kept the newest ${r.keep}.`
}
