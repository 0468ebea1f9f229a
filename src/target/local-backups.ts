import path from 'node:path'
import {MARKER_NAME, type ResolvedConfig} from '../config/resolve.js'
import {EXIT, HotctlError} from '../errors.js'
import {type BackupMeta, BackupIndex} from '../state/backups.js'
import {
  BackupDamagedError,
  checkBackup,
  checkBackupBeside,
  checkObjects,
  checkStore,
  type IntegrityReport,
  StoreChecker,
} from '../store/integrity.js'
import {type DeployedRecord, DeployedIndex, treeAfterSync} from '../store/deployed.js'
import {HashCache} from '../store/hash-cache.js'
import {
  describeCheck,
  type Manifest,
  type ManifestRoot,
  objectsOf,
  readManifest,
  type Row,
  unusedObjects,
} from '../store/manifest.js'
import {ObjectStore} from '../store/objects.js'
import {
  applyRestore,
  diffAgainst,
  planRestore,
  planRestoreDirs,
  type RestorePlan,
  type SignedRoot,
  signatureEntries,
  signaturesWith,
  snapshotTree,
  verifyRestored,
} from '../store/snapshot.js'
import type {Tree, TreeEntry} from '../store/walk.js'
import type {LocalTree} from './local-tree.js'
import type {BackupStore, SnapshotProgress, TargetPlan} from './target.js'

/**
 * Backups of a local target in its state dir: a content-addressed object store (copies, never
 * links to live files) plus one manifest of per-directory chunks per backup.
 */
export class LocalBackupStore implements BackupStore {
  private readonly store: ObjectStore
  private readonly index: BackupIndex
  private readonly deployed: DeployedIndex
  private readonly config: ResolvedConfig
  /**
   * The walk the last snapshot was taken from, while nothing has written to the target since
   * (LocalTarget drops it before it writes): a rollback's restore plans from it instead of walking
   * again. The verify after a restore always walks afresh.
   */
  private lastWalk?: Tree
  /** The snapshot taken from `lastWalk`: a restore reads only the backup's listings that differ from its. */
  private lastSnapshot?: {root: ManifestRoot; files: number; bytes: number}
  /**
   * The restore just applied, while nothing else has written to the target: its verify looks only
   * at what it changed. `beside`: planned over the listings that differ from the undo snapshot's.
   */
  private lastRestore?: {id: string; plan: RestorePlan; beside?: {meta: BackupMeta; differing: Map<string, Row[]>}}
  /** Manifests read and checked in this process, by backup id: the verify after a restore reuses it. */
  private readonly checked = new Map<string, {meta: BackupMeta; manifest: Manifest}>()
  /**
   * The last snapshot's root and directory signatures: the record of the tree as deployed reuses
   * its chunks (its objects stay: the backup is kept while this operation runs).
   */
  private lastSigned?: SignedRoot & {tree: Tree}

  constructor(private readonly tree: LocalTree) {
    this.config = tree.config
    this.store = new ObjectStore(path.join(this.config.stateDir, 'objects'))
    this.index = new BackupIndex(path.join(this.config.stateDir, 'backups'))
    this.deployed = new DeployedIndex(path.join(this.config.stateDir, 'deployed'))
  }

  async list(): Promise<BackupMeta[]> {
    return this.index.list()
  }

  async snapshot(
    id: string,
    reason: BackupMeta['reason'],
    plan?: TargetPlan,
    onProgress?: (p: SnapshotProgress) => void,
  ): Promise<BackupMeta> {
    // The walk taken by planChanges (under the same lock) is reused by this backup and by the
    // sync's deletions: one stat pass per deploy.
    const tree = (plan?.walk as Tree | undefined) ?? this.tree.walk()
    // Read only if a directory changed since `base` (a rollback's undo snapshot usually reads none).
    const cache = () => this.tree.targetCache()
    const marker = this.tree.readMarker()
    // The live release's tree as deployed: its unchanged directories' chunks are this backup's.
    const base = marker ? this.signedRoot(this.deployed.get(marker.id)) : undefined
    // One batch: new objects are written under their names into a staging directory, synced
    // together, then moved into place (a first backup: one rename per fan-out directory).
    this.store.beginBatch()
    let snap: Awaited<ReturnType<typeof snapshotTree>>
    try {
      snap = await snapshotTree(tree, cache, this.store, onProgress, base)
    } catch (err) {
      this.store.abortBatch()
      throw err
    }
    this.lastWalk = tree
    this.lastSnapshot = {root: snap.root, files: snap.files, bytes: snap.bytes}
    this.lastSigned = {root: snap.root, dirs: snap.dirs, tree}
    // Content on disk before it appears under its name, the index names it and the metadata
    // declares the backup complete.
    this.store.makeDurable()
    this.store.flush()
    // Saved once, after the sync is verified (a lost update only costs a re-read). Rows of paths
    // gone from the tree are dropped only when there are more rows than files (a look per row).
    const loaded = this.tree.openTargetCache()
    if (loaded && loaded.size > snap.files) loaded.forget(tree)
    const meta: BackupMeta = {
      id,
      time: new Date().toISOString(),
      reason,
      release: marker?.id ?? null,
      gitSha: marker?.gitSha ?? null,
      files: snap.files,
      bytes: snap.bytes,
      added: snap.added,
      protect: this.config.protect,
      root: snap.root,
    }
    this.index.write(meta)
    return meta
  }

  /**
   * Before anything is written, the backup's metadata, its chunks and the objects this restore
   * will copy (only files that differ from the live tree: O(changed)) are checked against their
   * hashes; a damaged backup throws BackupDamagedError with the target untouched. Right after
   * this process snapshotted the tree (a rollback's undo snapshot), the backup's listings are
   * compared with that snapshot's by hash, and only the chunks that differ are read: one equal to
   * the live directory's listing is not needed (as an object the restore does not copy is not
   * read); `hotctl backups verify` checks them all.
   */
  async restore(id: string): Promise<{written: string[]; removed: string[]}> {
    const checker = new StoreChecker(this.store, false)
    const last = this.lastWalk && this.lastSnapshot && {walk: this.lastWalk, snapshot: this.lastSnapshot}
    this.targetWritten()
    const protectNow = new Set(this.config.protect)
    const keptProtect = (meta: BackupMeta) => (meta.protect ?? []).every((p) => protectNow.has(p))
    const read = this.index.read(id)
    let beside =
      read &&
      last &&
      checkBackupBeside(id, read, checker, {
        ...last.snapshot,
        isDir: (rel) => last.walk.entries.get(rel)?.type === 'dir',
      })
    if (beside?.meta && !keptProtect(beside.meta)) beside = undefined // walked again below, protecting its paths too
    if (beside && !beside.differing) throw new BackupDamagedError(id, beside.damage)
    let plan: RestorePlan
    // Beside the undo snapshot, the live side of a differing listing is that snapshot's rows: no hash record is read.
    if (beside) plan = planRestoreDirs(beside.differing!, beside.known!, last!.walk)
    else {
      const {meta, manifest} = this.checkedBackup(id, checker)
      const walk = last && keptProtect(meta) ? last.walk : this.tree.walkProtecting(meta.protect)
      plan = planRestore(manifest, walk, this.tree.targetCache())
    }
    const damage = checkObjects(id, plan.writes, checker)
    if (damage.length > 0) throw new BackupDamagedError(id, damage)
    const result = applyRestore(plan, this.store)
    this.lastRestore = {id, plan, beside: beside ? {meta: beside.meta!, differing: beside.differing!} : undefined}
    return result
  }

  /** Something is about to write to the target: the last walk no longer describes it. */
  targetWritten(): void {
    this.lastWalk = undefined
    this.lastSnapshot = undefined
    this.lastRestore = undefined
  }

  /**
   * Paths where the target differs from backup `id`. Right after this process restored it (nothing
   * written since), the restore's own walk proved the rest: only what it changed is checked again
   * (stat and content hash). Otherwise the whole tree is walked and compared.
   */
  async verify(id: string): Promise<string[]> {
    const restored = this.lastRestore
    if (restored?.id === id) {
      this.lastRestore = undefined
      // The files written have new inodes: no record can know them, so none is read for this, and
      // what is hashed is not saved (rewriting the record costs more than reading them again).
      const seen = new Map<string, TreeEntry | undefined>()
      const diffs = verifyRestored(restored.plan, this.tree.openTargetCache() ?? HashCache.open(), seen)
      if (diffs.length === 0 && restored.beside) this.resignDeployed(restored.plan.tree, seen, restored.beside)
      return diffs
    }
    const {meta, manifest} = this.checked.get(id) ?? this.checkedBackup(id, new StoreChecker(this.store, false))
    const tree = this.tree.walkProtecting(meta.protect)
    const cache = this.tree.targetCache()
    const diffs = diffAgainst(manifest, tree, cache)
    cache.save(tree)
    return diffs
  }

  async ids(): Promise<string[]> {
    return this.index.readAll().map((r) => r.id)
  }

  async check(id?: string): Promise<IntegrityReport> {
    const reads = this.index.readAll().filter((r) => id === undefined || r.id === id)
    return checkStore(reads, this.store, {
      wholeStore: id === undefined,
      incomplete: id === undefined ? this.index.incomplete() : [],
      alsoUsed: id === undefined ? this.deployedObjects() : undefined,
    })
  }

  async prune(
    keep: number,
    pinned: string[],
    opts: {dryRun?: boolean; incremental?: boolean} = {},
  ): Promise<{removed: string[]; freedBytes: number}> {
    const all = this.index.list()
    const kept = new Set(all.slice(-keep).map((b) => b.id))
    for (const id of pinned) kept.add(id)
    const removed = all.filter((b) => !kept.has(b.id)).map((b) => b.id)
    // Trees as deployed (hotctl diff) of the newest `keep` releases stay, with the content they use.
    const deployed = this.deployed.releases()
    const keptDeployed = deployed.slice(-keep)
    const live = () =>
      objectsOf(
        [
          ...all.filter((b) => kept.has(b.id)).map((b) => b.root),
          ...keptDeployed.flatMap((r): ManifestRoot[] => {
            const root = this.deployed.get(r)?.root
            return root ? [root] : []
          }),
        ],
        this.store,
      )
    if (opts.dryRun) {
      if (removed.length === 0) return {removed, freedBytes: 0}
      const keepObjects = live()
      let freedBytes = 0
      for (const [hash, size] of this.store.scan().objects) if (!keepObjects.has(hash)) freedBytes += size
      return {removed, freedBytes}
    }
    const goneRoots = opts.incremental
      ? [
          ...all.filter((b) => !kept.has(b.id)).map((b) => b.root),
          ...deployed.slice(0, -keep).flatMap((r): ManifestRoot[] => {
            const root = this.deployed.get(r)?.root
            return root ? [root] : []
          }),
        ]
      : []
    for (const id of removed) this.index.remove(id)
    for (const r of deployed.slice(0, -keep)) this.deployed.remove(r)
    if (removed.length === 0) return {removed, freedBytes: 0}
    if (!opts.incremental) return {removed, freedBytes: this.store.collectGarbage(live())}
    const keptRoots = [
      ...all.filter((b) => kept.has(b.id)).map((b) => b.root),
      ...keptDeployed.flatMap((r): ManifestRoot[] => {
        const root = this.deployed.get(r)?.root
        return root ? [root] : []
      }),
    ]
    return {removed, freedBytes: this.store.collectObjects(unusedObjects(goneRoots, keptRoots, this.store))}
  }

  /** Objects the recorded trees as deployed use (a record whose chunks cannot be read is skipped). */
  private deployedObjects(): Set<string> {
    const out = new Set<string>()
    for (const release of this.deployed.releases()) {
      const root = this.deployed.get(release)?.root
      try {
        if (root) for (const h of objectsOf([root], this.store)) out.add(h)
      } catch {
        // only a diff reference: never damage to a backup
      }
    }
    return out
  }

  async files(id: string): Promise<Manifest> {
    return this.checkedBackup(id, new StoreChecker(this.store, false)).manifest
  }

  async recordDeployed(release: string, plan?: TargetPlan): Promise<void> {
    const walked = plan?.walk as Tree | undefined
    const tree = walked ? treeAfterSync(walked, plan!.changes, MARKER_NAME) : this.tree.walk()
    const cache = this.tree.targetCache()
    // The backup this process just took is the tree before the sync: only the synced directories differ.
    // Taken from the planning walk: only the paths the sync wrote or deleted (and the marker) differ from it.
    const touched =
      walked && this.lastSigned?.tree === walked
        ? [...plan!.changes.added, ...plan!.changes.changed, ...plan!.changes.deleted, MARKER_NAME]
        : undefined
    // A batch, as a backup's: the next backup reuses these objects once it finds them under their
    // names (a stat), so they must be on disk before they appear there.
    this.store.beginBatch()
    let snap: Awaited<ReturnType<typeof snapshotTree>>
    try {
      snap = await snapshotTree(tree, cache, this.store, undefined, this.lastSigned, touched)
    } catch (err) {
      this.store.abortBatch()
      throw err
    }
    this.store.makeDurable()
    this.store.flush()
    cache.save(cache.size > snap.files ? tree : undefined)
    this.deployed.write({release, time: new Date().toISOString(), root: snap.root, dirs: snap.dirs})
  }

  /**
   * After a verified restore planned beside the undo snapshot: the restored release's record as
   * deployed gets the signatures its directories have now, where the live listing is the record's
   * own chunk, so the next backup (or undo snapshot) reuses those chunks without a look at their
   * files, as after a deploy. Only signatures change, never the tree recorded (\`hotctl diff\`
   * compares with it). Each directory's listing is the backup's now: the restore wrote what differed,
   * the verify hashed what it wrote (`seen`: its stats), the walk proved the rest. A directory
   * holding something the backup's listing does not (a leftover kept for its protected content)
   * has more entries than that listing's rows: left as it was.
   */
  private resignDeployed(
    walk: Tree,
    seen: Map<string, TreeEntry | undefined>,
    restored: {meta: BackupMeta; differing: Map<string, Row[]>},
  ): void {
    const {meta, differing} = restored
    const record = meta.release ? this.deployed.get(meta.release) : undefined
    const signed = this.signedRoot(record)
    if (!record || !signed) return
    const now = signaturesWith(walk, seen)
    if (!now) return
    const dirs = {...signed.dirs}
    let changed = false
    for (const dir in now) {
      const chunk = meta.root[dir]
      if (chunk === undefined || signed.root[dir] !== chunk || dirs[dir] === now[dir]) continue
      const rows = differing.get(dir)
      if (rows && signatureEntries(now[dir]!) !== rows.length) continue
      dirs[dir] = now[dir]!
      changed = true
    }
    if (changed) this.deployed.write({...record, dirs})
  }

  /** A deployed record's root with its directories' signatures, when it has them (older records do not). */
  private signedRoot(record: DeployedRecord | undefined): SignedRoot | undefined {
    return record?.dirs && typeof record.dirs === 'object' ? {root: record.root, dirs: record.dirs} : undefined
  }

  async deployedFiles(release: string): Promise<Manifest | undefined> {
    const record = this.deployed.get(release)
    return record ? readManifest(record.root, this.store) : undefined
  }

  async content(hash: string): Promise<Buffer> {
    const {data, check} = this.store.readChecked(hash)
    if (!data) throw new Error(`object ${hash} ${describeCheck(check)}`)
    return data
  }

  /** A backup's metadata and manifest, every chunk checked against its hash; throws when damaged. */
  private checkedBackup(id: string, checker: StoreChecker): {meta: BackupMeta; manifest: Manifest} {
    const read = this.index.read(id)
    if (!read) {
      const hint = 'Run `hotctl backups` to see the complete ones.'
      throw new HotctlError(
        `backup ${id} is missing or incomplete in ${this.config.stateDir}`,
        EXIT.needsAttention,
        hint,
      )
    }
    const b = checkBackup(id, read, checker)
    if (!b.manifest) throw new BackupDamagedError(id, b.damage)
    const checked = {meta: b.meta!, manifest: b.manifest}
    this.checked.set(id, checked)
    return checked
  }
}
