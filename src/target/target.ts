import type {ChangeSet} from '../plan/changeset.js'
import type {ItemizedChange} from '../rsync/itemize.js'
import type {BackupMeta} from '../state/backups.js'
import type {Journal} from '../state/journal.js'
import type {LockOwner} from '../state/lock.js'
import type {IntegrityReport} from '../store/integrity.js'

/** The file hotctl writes into the target so the service can report which release it loaded. */
export interface ReleaseMarker {
  id: string
  gitSha: string | null
  user: string
  time: string
}

export interface PreflightItem {
  name: string
  ok: boolean
  detail: string
  /** What to do about a failed item. */
  hint?: string
}

export interface PreflightOptions {
  /** Check the source too (deploy and check; rollback does not read it). */
  source: boolean
  /** A missing target is fine: it will be created (deploy --create-target). */
  createTarget: boolean
}

/**
 * Everything that touches the place the files live goes through a Target: LocalTarget now; an
 * SshTarget (`user@host:/path`) later implements the same operations over ssh + rsync, and the
 * pipelines above do not change.
 */
export interface Target {
  readonly description: string
  readonly journal: Journal
  preflight(opts: PreflightOptions): Promise<PreflightItem[]>
  lock(command: string, onStale: (old: LockOwner) => void): () => void
  readLock(): LockOwner | undefined
  readMarker(): ReleaseMarker | null
  writeMarker(marker: ReleaseMarker): void
  /** Added/changed/deleted paths, worked out by content where size or mtime differ. Read-only. */
  planChanges(source: string): Promise<ChangeSet>
  /** rsync -n of the planned writes: what rsync itself would do. Read-only. */
  previewSync(source: string, changes: ChangeSet): Promise<ItemizedChange[]>
  /** `onChild` gets the process group of the writer (rsync) as soon as it starts, to journal it. */
  sync(source: string, changes: ChangeSet, signal?: AbortSignal, onChild?: (pgid: number) => void): Promise<ItemizedChange[]>
  /** Paths whose content in the target differs from the source after a sync. */
  verifySynced(source: string, changes: ChangeSet): string[]
  backups(): BackupMeta[]
  snapshot(id: string, reason: BackupMeta['reason']): BackupMeta
  /** Checks what it will use against its hashes first: a damaged backup throws BackupDamagedError, nothing written. */
  restore(id: string): {written: string[]; removed: string[]}
  /** Paths where the target differs from backup `id` (empty = verified). */
  verify(id: string): string[]
  /** Ids of every backup metadata file, damaged ones included (`backups()` lists only readable ones). */
  backupIds(): string[]
  /** Full integrity check of backup `id`, or of every backup and the store. Read-only. */
  checkBackups(id?: string): IntegrityReport
  prune(keep: number, pinned: string[]): {removed: string[]; freedBytes: number}
}
