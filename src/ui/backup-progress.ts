import type {SnapshotProgress} from '../target/target.js'
import {formatBytes, formatDuration, formatRate} from './format.js'

/** How often a terminal's progress line is redrawn. */
const REDRAW_MS = 200

/**
 * A backup's progress: files and bytes recorded of the tree's, bytes newly stored, the rate and
 * the time left. A first backup reads the whole tree, so on a big one this is the long step. On a
 * terminal it is the task's live output line (`show`); in a log StepRenderer asks `progress()`.
 */
export function backupProgress(show?: (line: string) => void) {
  const started = Date.now()
  let done: SnapshotProgress | undefined
  let drawn = 0
  const line = () => {
    if (!done) return undefined
    const ms = Date.now() - started
    const left = done.totalBytes - done.bytes
    const eta = done.bytes > 0 && ms > 0 ? `, ${formatDuration((left * ms) / done.bytes)} left` : ''
    return (
      `${done.files} of ${done.totalFiles} files, ${formatBytes(done.bytes)} of ${formatBytes(done.totalBytes)}, ` +
      `${formatBytes(done.stored)} stored, ${formatRate(done.bytes, ms)}${eta}`
    )
  }
  return {
    onProgress(p: SnapshotProgress) {
      done = p
      if (show && Date.now() - drawn >= REDRAW_MS) {
        drawn = Date.now()
        show(line()!)
      }
    },
    progress: line,
  }
}
