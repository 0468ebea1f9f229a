import path from 'node:path'
import type {ChangeSet} from '../plan/changeset.js'
import {statEntry} from '../store/walk.js'
import type {SyncProgress} from '../target/target.js'
import {formatBytes, formatRate} from './format.js'

/** How often a terminal's progress line is redrawn. */
const REDRAW_MS = 200

/**
 * A sync's progress: files and bytes written of those planned, and the rate. On a terminal it is
 * the task's live output line (`show`); in a log StepRenderer asks `progress()` at intervals; the
 * final title says how many bytes went over.
 */
export function syncProgress(source: string, changes: ChangeSet, show?: (line: string) => void) {
  const files = [...changes.added, ...changes.changed]
    .map((p) => statEntry(path.join(source, p)))
    .filter((e) => e?.type === 'file')
  const total = {files: files.length, bytes: files.reduce((n, e) => n + e!.size, 0)}
  const started = Date.now()
  let done: SyncProgress = {files: 0, bytes: 0}
  let drawn = 0
  const line = () =>
    `${formatBytes(done.bytes)} of ${formatBytes(total.bytes)}, ${done.files} of ${total.files} files, ` +
    formatRate(done.bytes, Date.now() - started)
  return {
    total,
    onProgress(p: SyncProgress) {
      done = p
      if (show && Date.now() - drawn >= REDRAW_MS) {
        drawn = Date.now()
        show(line())
      }
    },
    progress: () => line(),
    /** The end: "1.2 MiB in 3 files written". */
    summary: () => `${formatBytes(total.bytes)} in ${total.files} file${total.files === 1 ? '' : 's'} written`,
  }
}
