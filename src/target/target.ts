import type {Command, RunsOn} from '../config/schema.js'
import type {ChangeSet} from '../plan/changeset.js'
import type {ItemizedChange} from '../rsync/itemize.js'
import type {CommandResult} from '../service/run-command.js'
import type {BackupMeta} from '../state/backups.js'
import type {JournalEvent} from '../state/journal.js'
import type {LockOwner} from '../state/lock.js'
import type {IntegrityReport} from '../store/integrity.js'
import type {Manifest} from '../store/manifest.js'
import type {SnapshotProgress} from '../store/snapshot.js'

/** The file hotctl writes into the target so the service can report which release it loaded. */
export interface ReleaseMarker {
  id: string
  gitSha: string | null
  user: string
  time: string
}

/** `<target>/.hotctl-maintenance.json` while the service is in maintenance mode (issue 9). */
export interface MaintenanceMarker {
  reason: string
  /** Expected end (ISO time): the service's Retry-After. */
  until: string
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
  /** May write what it learnt (the rsync check record) into the state dir: not under --dry-run or `check`. */
  record?: boolean
}

/**
 * What planning found: the change set, plus whatever the target's own walk produced that the
 * backup and the sync reuse (one stat pass per deploy). Pipelines pass it on and never look inside.
 */
/** How far a sync has got: files written and their bytes, so far. */
export interface SyncProgress {
  files: number
  bytes: number
}

export type {SnapshotProgress}

export interface TargetPlan {
  changes: ChangeSet
  readonly walk?: unknown
}

/** Options for a command the user configured, run where the service is (the target directory). */
export interface ServiceCommandOptions {
  env: Record<string, string>
  /** Remote targets: `host` (default) runs it over ssh in the target dir, `local` on this machine. */
  on?: RunsOn
  signal?: AbortSignal
  timeoutMs?: number
  tailLines?: number
  /**
   * Gets the command's process group as soon as it starts, to journal it (awaited before the
   * command is waited for); recovery then stops it with `reapChildren`. Used by release steps.
   */
  onChild?: (pgid: number) => Promise<void>
}

/** The journal and the lock: the state every controller of this target must see. */
export interface StateStore {
  /** Appended and flushed to stable storage before the phase it records starts. */
  append(event: JournalEvent): Promise<void>
  /** Every well-formed event, oldest first (other lines are skipped with a warning). */
  read(): Promise<JournalEvent[]>
  /** Takes the lock (clearing a dead owner's, reported to `onStale`); resolves to its release. */
  lock(command: string, onStale: (old: LockOwner) => void): Promise<() => Promise<void>>
  readLock(): Promise<LockOwner | undefined>
  /** Is the owner's process gone? Only decidable where the owner ran. */
  isStale(owner: LockOwner): Promise<boolean>
}

/** Snapshots of the target tree, restored and verified by content. */
export interface BackupStore {
  /** Complete backups whose metadata can be read, oldest first. */
  list(): Promise<BackupMeta[]>
  /** Ids of every backup metadata file, damaged ones included. */
  ids(): Promise<string[]>
  /**
   * Records the target tree as backup `id`; `plan` lends the planning walk, if there was one.
   * `onProgress` is called as it goes, where the target can tell (a local one can; SSH does not).
   */
  snapshot(
    id: string,
    reason: BackupMeta['reason'],
    plan?: TargetPlan,
    onProgress?: (p: SnapshotProgress) => void,
  ): Promise<BackupMeta>
  /** Checks what it will use against its hashes first: a damaged backup throws BackupDamagedError, nothing written. */
  restore(id: string): Promise<{written: string[]; removed: string[]}>
  /** Paths where the target differs from backup `id` (empty = verified). */
  verify(id: string): Promise<string[]>
  /** Full integrity check of backup `id`, or of every backup and the store. Read-only. */
  check(id?: string): Promise<IntegrityReport>
  /**
   * `dryRun`: what would go and the bytes it would free, nothing removed. `incremental` (after a
   * deploy or rollback): only content the removed backups used is looked at, never the whole store;
   * without it the whole store is swept (`hotctl backups prune`).
   */
  prune(
    keep: number,
    pinned: string[],
    opts?: {dryRun?: boolean; incremental?: boolean},
  ): Promise<{removed: string[]; freedBytes: number}>
  /** The tree backup `id` holds: path → type, mode, size, content hash, link (chunks checked). */
  files(id: string): Promise<Manifest>
  /**
   * Records the target tree as release `release` left it (after a proven deploy): what `hotctl diff`
   * compares live against. `plan` (the deploy's) lets it look only at the paths the sync changed.
   */
  recordDeployed(release: string, plan?: TargetPlan): Promise<void>
  /** The tree release `release` had when it was deployed, if recorded and not pruned. */
  deployedFiles(release: string): Promise<Manifest | undefined>
  /** Content of a file listed by `files` or `deployedFiles`, by its hash (checked against it). */
  content(hash: string): Promise<Buffer>
}

/**
 * Everything that touches the place the files live goes through a Target; only `openTarget`
 * (open.ts) names an implementation. Every member is async, so a target on another machine
 * implements the same operations over its own transport and the pipelines do not change.
 */
export interface Target {
  /** The target as the user names it (a path, or later user@host:/path). */
  readonly description: string
  readonly state: StateStore
  readonly backups: BackupStore
  /** Who and where an operation runs as, for the lock, the journal and the release marker. */
  identity(): Promise<{user: string; host: string}>
  preflight(opts: PreflightOptions): Promise<PreflightItem[]>
  readMarker(): Promise<ReleaseMarker | null>
  writeMarker(marker: ReleaseMarker): Promise<void>
  /** Writes the maintenance marker into the target (atomically: write then rename). */
  writeMaintenance(marker: MaintenanceMarker): Promise<void>
  /** Removes the maintenance marker; no error when there is none. */
  clearMaintenance(): Promise<void>
  /**
   * Writes a small file of hotctl's own in the state dir (a release step's recorded commands):
   * mode 0600, whole or not at all (a temp file, then a rename). Its directory must exist.
   */
  writeStateFile(file: string, text: string): Promise<void>
  /** The text of such a file; undefined when there is none. */
  readStateFile(file: string): Promise<string | undefined>
  /**
   * Added/changed/deleted paths, worked out by content where size or mtime differ. Writes nothing
   * under `dryRun`; otherwise it may keep what it learnt (hash caches) in the state dir.
   */
  planChanges(source: string, opts: {dryRun: boolean}): Promise<TargetPlan>
  /**
   * Planning will read `source` as it is now (nothing that may write it, such as the checks, runs
   * before planning): a target may start reading it, while it waits for its host (an ssh target
   * walks it while it connects). Optional; never throws (planning reports).
   */
  prepare?(source: string): void
  /** The writer's argv as the sync will run it, for the plan a user reads. */
  describeSync(source: string): string[]
  /** A dry run of the planned writes: what the writer itself would do. Read-only. */
  previewSync(source: string, plan: TargetPlan): Promise<ItemizedChange[]>
  /** `onChild` gets the process group of the writer as soon as it starts, to journal it (awaited: the record exists before the writer is waited for). */
  sync(
    source: string,
    plan: TargetPlan,
    signal?: AbortSignal,
    onChild?: (pgid: number) => Promise<void>,
    /** Called as the writer reports files done (optional: a target may not report progress). */
    onProgress?: (p: SyncProgress) => void,
  ): Promise<ItemizedChange[]>
  /** Paths whose content in the target differs from the source after a sync. */
  verifySynced(source: string, plan: TargetPlan): Promise<string[]>
  /** Runs a configured command where the service is (in the target directory). */
  runServiceCommand(cmd: Command, opts: ServiceCommandOptions): Promise<CommandResult>
  /**
   * Stops process groups a killed operation left writing to the target (journaled `child`
   * events). Resolves to the groups still running.
   */
  reapChildren(pgids: number[]): Promise<number[]>
  /** The live tree now, as a backup would list it (protected and excluded paths left out). Read-only. */
  liveFiles(): Promise<Manifest>
  /** A live file's content (`rel` as `liveFiles` lists it). */
  readLive(rel: string): Promise<Buffer>
}
