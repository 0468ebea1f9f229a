import crypto from 'node:crypto'
import os from 'node:os'
import {MARKER_NAME, type ResolvedConfig} from '../../src/config/resolve.js'
import type {Command} from '../../src/config/schema.js'
import {EXIT, HotctlError} from '../../src/errors.js'
import type {OpContext} from '../../src/pipeline/context.js'
import type {DeployFlags} from '../../src/pipeline/deploy.js'
import type {ChangeSet} from '../../src/plan/changeset.js'
import type {ItemizedChange} from '../../src/rsync/itemize.js'
import type {CommandResult} from '../../src/service/run-command.js'
import {describeCommand} from '../../src/service/run-command.js'
import type {BackupMeta} from '../../src/state/backups.js'
import type {JournalEvent} from '../../src/state/journal.js'
import {describeOwner, type LockOwner} from '../../src/state/lock.js'
import {BackupDamagedError, type Damage, type IntegrityReport} from '../../src/store/integrity.js'
import type {Manifest} from '../../src/store/manifest.js'
import type {
  BackupStore,
  MaintenanceMarker,
  PreflightItem,
  PreflightOptions,
  ReleaseMarker,
  ServiceCommandOptions,
  StateStore,
  Target,
  TargetPlan,
} from '../../src/target/target.js'

/**
 * A Target held in memory: the live tree, the source tree, backups, journal and lock are plain maps
 * and arrays, so the pipelines (deploy, rollback, recovery) run against it in milliseconds, and a
 * test can make any step fail, at its start or halfway through, and then look at what the target
 * holds. It implements the Target seam fully: nothing in src/ knows it is not a directory.
 */

export interface FakeFile {
  content: string
  mode: number
}
export type Tree = Map<string, FakeFile>

/** Every operation a test can hook, by the Target member that performs it. */
export type FakeStep =
  | 'identity'
  | 'preflight'
  | 'readMarker'
  | 'writeMarker'
  | 'writeMaintenance'
  | 'clearMaintenance'
  | 'planChanges'
  | 'previewSync'
  | 'sync'
  /** Before each path the sync writes or deletes (`path` is set): fail or abort halfway. */
  | 'sync:write'
  | 'verifySynced'
  | 'runServiceCommand'
  | 'reapChildren'
  | 'append'
  | 'read'
  | 'lock'
  | 'readLock'
  | 'isStale'
  | 'list'
  | 'ids'
  | 'snapshot'
  | 'restore'
  /** Before each path the restore writes or removes (`path` is set). */
  | 'restore:write'
  | 'verify'
  | 'check'
  | 'prune'

/** The brief's phase names for the same steps. */
const ALIAS: Record<string, FakeStep> = {
  plan: 'planChanges',
  backup: 'snapshot',
  marker: 'writeMarker',
  command: 'runServiceCommand',
}

export interface HookCall {
  fake: FakeTarget
  step: FakeStep
  /** 1-based count of calls of this step so far (this one included); for `:write` steps, the path's index in this call. */
  n: number
  args: unknown[]
  /** The path about to be written or removed, for `sync:write` and `restore:write`. */
  path?: string
}
/** Runs at the start of a step: throw to make the step fail, or abort a controller to interrupt. */
export type Hook = (call: HookCall) => void | Promise<void>

/** What a configured command (trigger, restart, smoke) does on the fake: passes unless told otherwise. */
export type CommandHandler = (call: {
  fake: FakeTarget
  command: string
  opts: ServiceCommandOptions
}) => Partial<CommandResult> | boolean | void

export const FAKE_PGID = 4242
/** The process group the fake reports for a command run with `onChild` (release steps). */
export const FAKE_STEP_PGID = 4343

export class FakeTarget implements Target {
  readonly description: string
  /** The live tree: path → file. The release marker lives in it as `.hotctl-release.json`, as on disk. */
  files: Tree
  /** The tree `planChanges(source)` compares with the live one (any source path maps to it). */
  source: Tree
  readonly journal: JournalEvent[] = []
  readonly backupStore = new Map<string, {meta: BackupMeta; tree: Tree}>()
  /** Backup ids whose metadata or content is damaged: listed by `ids()` only, refused by `restore`. */
  readonly damaged = new Set<string>()
  lockOwner: LockOwner | undefined
  /** Pids whose process is gone: a lock they hold is stale. */
  readonly deadPids = new Set<number>()
  /** Every configured command run through `runServiceCommand`, in order (argv joined by spaces). */
  readonly commands: string[] = []
  /** Process groups `reapChildren` was asked to stop. */
  readonly reaped: number[][] = []
  /** Groups `reapChildren` reports as still running. */
  stillRunning: number[] = []
  /** Preflight items; a test makes one fail. */
  preflightItems: PreflightItem[] = [{name: 'fake', ok: true, detail: 'in memory'}]
  /** Paths `verify` reports as differing from the backup, beyond the real comparison. */
  verifyDiffers: string[] = []
  /** Paths `verifySynced` reports as differing from the source, beyond the real comparison. */
  syncDiffers: string[] = []
  onCommand: CommandHandler = () => undefined
  /** Steps in the order they were called (hooks' view; `read`, `readMarker`, `list` included). */
  readonly calls: FakeStep[] = []
  private readonly hooks = new Map<FakeStep, Hook[]>()
  private readonly counts = new Map<FakeStep, number>()
  readonly state: StateStore
  readonly backups: BackupStore

  constructor(opts: {live?: Record<string, string>; source?: Record<string, string>; description?: string} = {}) {
    this.description = opts.description ?? 'fake:/srv/app'
    this.files = treeOf(opts.live ?? {})
    this.source = treeOf(opts.source ?? {})
    this.state = {
      append: (e) => this.step('append', [e], () => void this.journal.push(structuredClone(e))),
      read: () => this.step('read', [], () => structuredClone(this.journal)),
      lock: (command, onStale) => this.step('lock', [command], () => this.takeLock(command, onStale)),
      readLock: () => this.step('readLock', [], () => (this.lockOwner ? {...this.lockOwner} : undefined)),
      isStale: (owner) => this.step('isStale', [owner], () => this.deadPids.has(owner.pid)),
    }
    this.backups = {
      list: () => this.step('list', [], () => this.listBackups()),
      ids: () => this.step('ids', [], () => [...this.backupStore.keys()].sort()),
      snapshot: (id, reason, plan) => this.step('snapshot', [id, reason, plan], () => this.snapshot(id, reason)),
      restore: (id) => this.step('restore', [id], () => this.restore(id)),
      verify: (id) =>
        this.step('verify', [id], () => [...diffTrees(this.backupTree(id), this.files), ...this.verifyDiffers]),
      check: (id) => this.step('check', [id], () => this.check(id)),
      prune: (keep, pinned) => this.step('prune', [keep, pinned], () => this.prune(keep, pinned)),
      files: async (id) => manifestOf(this.backupTree(id)),
      recordDeployed: async (release) => void this.deployed.set(release, copyTree(this.files)),
      deployedFiles: async (release) => {
        const t = this.deployed.get(release)
        return t ? manifestOf(t) : undefined
      },
      content: async (hash) => {
        const trees = [this.files, ...this.deployed.values(), ...[...this.backupStore.values()].map((b) => b.tree)]
        const f = trees.flatMap((t) => [...t.values()]).find((x) => sha256(x.content) === hash)
        if (!f) throw new Error(`object ${hash} is missing`)
        return Buffer.from(f.content)
      },
    }
  }

  /** Trees recorded by `recordDeployed`, by release. */
  readonly deployed = new Map<string, Tree>()

  async liveFiles(): Promise<Manifest> {
    return manifestOf(this.files)
  }

  async readLive(rel: string): Promise<Buffer> {
    const f = this.files.get(rel)
    if (!f) throw new Error(`ENOENT: ${rel}`)
    return Buffer.from(f.content)
  }

  // ---- failure injection ----

  /** Runs `hook` at the start of every call of `step` (`plan`, `backup`, `marker`, `command` are accepted too). */
  at(step: FakeStep | 'plan' | 'backup' | 'marker' | 'command', hook: Hook): this {
    const s = ALIAS[step] ?? (step as FakeStep)
    this.hooks.set(s, [...(this.hooks.get(s) ?? []), hook])
    return this
  }

  /** Makes `step` throw `error`; `nth` limits it to that call (1-based), `path` to that path of a `:write` step. */
  fail(
    step: FakeStep | 'plan' | 'backup' | 'marker' | 'command',
    opts: {error?: Error; nth?: number; path?: string} = {},
  ): this {
    const error = opts.error ?? new Error(`injected ${step} failure`)
    return this.at(step, (c) => {
      if ((opts.nth === undefined || c.n === opts.nth) && (opts.path === undefined || c.path === opts.path)) throw error
    })
  }

  /** Aborts `ac` when `step` starts (or at `path` of a `:write` step): an operator's Ctrl-C at that moment. */
  abortAt(
    step: FakeStep | 'plan' | 'backup' | 'marker' | 'command',
    ac: AbortController,
    opts: {nth?: number; path?: string} = {},
  ): this {
    return this.at(step, (c) => {
      if ((opts.nth === undefined || c.n === opts.nth) && (opts.path === undefined || c.path === opts.path)) ac.abort()
    })
  }

  // ---- test helpers ----

  /** How many times `step` was called (`:write` steps are not counted: their hooks get the path's index as `n`). */
  count(step: FakeStep): number {
    return this.counts.get(step) ?? 0
  }

  /** The live tree as a plain object, marker excluded (see `marker`). */
  tree(): Record<string, string> {
    const files = [...this.files].filter(([p]) => p !== MARKER_NAME).sort(([a], [b]) => cmp(a, b))
    return Object.fromEntries(files.map(([p, f]) => [p, f.content]))
  }

  /** The live release id (the marker's), or null. */
  get marker(): string | null {
    return parseMarker(this.files.get(MARKER_NAME))?.id ?? null
  }

  /** Holds the lock as another hotctl would; `dead` makes its owner a process that is gone. */
  holdLock(owner: Partial<LockOwner> = {}, dead = false): LockOwner {
    this.lockOwner = {
      pid: 99999,
      host: 'fake-host',
      user: 'other',
      command: 'hotctl deploy',
      started: '2025-01-01T00:00:00.000Z',
      ...owner,
    }
    if (dead) this.deadPids.add(this.lockOwner.pid)
    return this.lockOwner
  }

  /** Adds a backup as if an earlier operation had taken it; `release` becomes the marker in its tree. */
  seedBackup(
    id: string,
    tree: Record<string, string>,
    opts: {release?: string | null; reason?: BackupMeta['reason']} = {},
  ): BackupMeta {
    const t = treeOf(tree)
    const release = opts.release !== undefined ? opts.release : null
    if (release)
      t.set(MARKER_NAME, markerFile({id: release, gitSha: null, user: 'fake', time: '2025-01-01T00:00:00.000Z'}))
    const meta = this.metaFor(id, opts.reason ?? 'deploy', t)
    this.backupStore.set(id, {meta, tree: t})
    return meta
  }

  /** Backs up the live tree as `id`, as an earlier (perhaps killed) operation did; no hooks run. */
  snapshotAs(id: string, reason: BackupMeta['reason'] = 'deploy'): BackupMeta {
    return this.snapshot(id, reason)
  }

  /** Sets the live tree (and marker, when `release` is given). */
  setLive(tree: Record<string, string>, release?: string): void {
    this.files = treeOf(tree)
    if (release)
      this.files.set(
        MARKER_NAME,
        markerFile({id: release, gitSha: null, user: 'fake', time: '2025-01-01T00:00:00.000Z'}),
      )
  }

  // ---- Target ----

  identity(): Promise<{user: string; host: string}> {
    return this.step('identity', [], () => ({user: 'fake', host: 'fake-host'}))
  }

  preflight(opts: PreflightOptions): Promise<PreflightItem[]> {
    return this.step('preflight', [opts], () => this.preflightItems.map((i) => ({...i})))
  }

  readMarker(): Promise<ReleaseMarker | null> {
    return this.step('readMarker', [], () => parseMarker(this.files.get(MARKER_NAME)))
  }

  writeMarker(marker: ReleaseMarker): Promise<void> {
    return this.step('writeMarker', [marker], () => void this.files.set(MARKER_NAME, markerFile(marker)))
  }

  /** The maintenance marker while it is set (kept apart from `files`: never synced or backed up). */
  maintenance: MaintenanceMarker | undefined
  /** Every maintenance marker written, in order. */
  readonly maintenanceLog: MaintenanceMarker[] = []

  writeMaintenance(marker: MaintenanceMarker): Promise<void> {
    return this.step('writeMaintenance', [marker], () => {
      this.maintenance = {...marker}
      this.maintenanceLog.push({...marker})
    })
  }

  clearMaintenance(): Promise<void> {
    return this.step('clearMaintenance', [], () => void (this.maintenance = undefined))
  }

  /** Files of hotctl's own in the state dir (a release step's recorded commands): path → text. */
  readonly stateFiles = new Map<string, string>()

  async writeStateFile(file: string, text: string): Promise<void> {
    this.stateFiles.set(file, text)
  }

  async readStateFile(file: string): Promise<string | undefined> {
    return this.stateFiles.get(file)
  }

  planChanges(source: string, opts: {dryRun: boolean}): Promise<TargetPlan> {
    return this.step('planChanges', [source, opts], () => ({changes: changeSet(this.source, this.files)}))
  }

  describeSync(source: string): string[] {
    return ['fake-sync', `${source}/`, `${this.description}/`]
  }

  previewSync(source: string, plan: TargetPlan): Promise<ItemizedChange[]> {
    return this.step('previewSync', [source, plan], () => itemized(plan.changes))
  }

  /** Writes the planned paths one by one (so a `sync:write` hook can stop it halfway), deletions last. */
  sync(
    source: string,
    plan: TargetPlan,
    signal?: AbortSignal,
    onChild?: (pgid: number) => Promise<void>,
  ): Promise<ItemizedChange[]> {
    return this.step('sync', [source, plan], async () => {
      const {added, changed, deleted} = plan.changes
      if (added.length + changed.length > 0) await onChild?.(FAKE_PGID) // the real writer runs in its own process group
      let i = 0
      for (const rel of [...added, ...changed, ...deleted]) {
        await this.hook('sync:write', [source, plan], rel, ++i)
        if (signal?.aborted) throw new HotctlError('sync interrupted', EXIT.interrupted)
        const src = this.source.get(rel)
        if (src && !deleted.includes(rel)) this.files.set(rel, {...src})
        else this.files.delete(rel)
      }
      return itemized(plan.changes)
    })
  }

  verifySynced(source: string, plan: TargetPlan): Promise<string[]> {
    return this.step('verifySynced', [source, plan], () => {
      const {added, changed, deleted} = plan.changes
      const bad = [...added, ...changed].filter((rel) => !sameFile(this.source.get(rel), this.files.get(rel)))
      bad.push(...deleted.filter((rel) => this.files.has(rel)))
      return [...bad, ...this.syncDiffers]
    })
  }

  runServiceCommand(cmd: Command, opts: ServiceCommandOptions): Promise<CommandResult> {
    return this.step('runServiceCommand', [cmd, opts], async () => {
      const command = describeCommand(cmd)
      this.commands.push(command)
      await opts.onChild?.(FAKE_STEP_PGID) // a release step's command journals its process group
      const base: CommandResult = {ok: true, exitCode: 0, tail: `${command}: ok`, canceled: false, timedOut: false}
      // A command started after the interrupt is stopped at once, as runCommand stops its group.
      if (opts.signal?.aborted)
        return {...base, ok: false, exitCode: undefined, tail: `${command}: stopped`, canceled: true}
      const said = this.onCommand({fake: this, command, opts})
      if (said === undefined || said === true) return base
      if (said === false) return {...base, ok: false, exitCode: 1, tail: `${command}: failed`}
      const r = {...base, ...said}
      return said.ok === undefined ? {...r, ok: r.exitCode === 0 && !r.canceled && !r.timedOut} : r
    })
  }

  reapChildren(pgids: number[]): Promise<number[]> {
    return this.step('reapChildren', [pgids], () => {
      this.reaped.push([...pgids])
      return pgids.filter((p) => this.stillRunning.includes(p))
    })
  }

  // ---- internals ----

  private async step<T>(step: FakeStep, args: unknown[], body: () => T | Promise<T>): Promise<T> {
    await this.hook(step, args)
    return body()
  }

  private async hook(step: FakeStep, args: unknown[], path?: string, n?: number): Promise<void> {
    const count = n ?? (this.counts.get(step) ?? 0) + 1
    if (n === undefined) this.counts.set(step, count)
    this.calls.push(step)
    for (const h of this.hooks.get(step) ?? []) await h({fake: this, step, n: count, args, path})
  }

  private takeLock(command: string, onStale: (old: LockOwner) => void): () => Promise<void> {
    const held = this.lockOwner
    if (held) {
      if (!this.deadPids.has(held.pid)) {
        throw new HotctlError(
          `target is locked by ${describeOwner(held)}`,
          EXIT.locked,
          'Wait for that operation to finish.',
          {lock: held},
        )
      }
      onStale(held)
    }
    const mine: LockOwner = {
      pid: process.pid,
      host: 'fake-host',
      user: 'fake',
      command,
      started: new Date().toISOString(),
    }
    this.lockOwner = mine
    return async () => {
      if (this.lockOwner === mine) this.lockOwner = undefined
    }
  }

  private listBackups(): BackupMeta[] {
    return [...this.backupStore.values()]
      .filter((b) => !this.damaged.has(b.meta.id))
      .map((b) => structuredClone(b.meta))
      .sort((a, b) => cmp(a.id, b.id))
  }

  private metaFor(id: string, reason: BackupMeta['reason'], tree: Tree): BackupMeta {
    const m = parseMarker(tree.get(MARKER_NAME))
    const bytes = [...tree.values()].reduce((s, f) => s + Buffer.byteLength(f.content), 0)
    const time = new Date().toISOString()
    const release = m?.id ?? null
    return {
      id,
      time,
      reason,
      release,
      gitSha: m?.gitSha ?? null,
      files: tree.size,
      bytes,
      added: bytes,
      root: {'': `fake-${id}`},
    }
  }

  private snapshot(id: string, reason: BackupMeta['reason']): BackupMeta {
    const tree = copyTree(this.files)
    const meta = this.metaFor(id, reason, tree)
    this.backupStore.set(id, {meta, tree})
    return structuredClone(meta)
  }

  private backupTree(id: string): Tree {
    const b = this.backupStore.get(id)
    if (!b) throw new HotctlError(`backup ${id} is missing or incomplete in the fake store`, EXIT.needsAttention)
    if (this.damaged.has(id)) {
      throw new BackupDamagedError(id, [metadataDamage(id)])
    }
    return b.tree
  }

  /** Writes what differs, then removes what the backup lacks; each path passes the `restore:write` hook first. */
  private async restore(id: string): Promise<{written: string[]; removed: string[]}> {
    const want = this.backupTree(id)
    const written = [...want].filter(([rel, f]) => !sameFile(f, this.files.get(rel))).map(([rel]) => rel)
    const removed = [...this.files.keys()].filter((rel) => !want.has(rel))
    let i = 0
    for (const rel of written) {
      await this.hook('restore:write', [id], rel, ++i)
      this.files.set(rel, {...want.get(rel)!})
    }
    for (const rel of removed) {
      await this.hook('restore:write', [id], rel, ++i)
      this.files.delete(rel)
    }
    return {written: written.sort(), removed: removed.sort()}
  }

  private check(id?: string): IntegrityReport {
    const ids = [...this.backupStore.keys()].filter((b) => id === undefined || b === id).sort()
    const damage = ids.filter((b) => this.damaged.has(b)).map(metadataDamage)
    return {
      backups: ids.map((b) => {
        const bad = this.damaged.has(b)
        return {id: b, ok: !bad, files: bad ? null : this.backupStore.get(b)!.tree.size, damage: bad ? 1 : 0}
      }),
      damage,
      checked: {backups: ids.length, chunks: 0, objects: 0, bytes: 0},
      info: {orphanObjects: 0, orphanBytes: 0, tempFiles: [], incompleteBackups: [], strayFiles: []},
    }
  }

  /** As the local store: keeps the newest `keep` complete backups and the pinned ones. */
  private prune(keep: number, pinned: string[]): {removed: string[]; freedBytes: number} {
    const all = this.listBackups()
    const kept = new Set([...all.slice(-keep).map((b) => b.id), ...pinned])
    const removed = all.filter((b) => !kept.has(b.id)).map((b) => b.id)
    let freedBytes = 0
    for (const id of removed) {
      freedBytes += this.backupStore.get(id)!.meta.bytes
      this.backupStore.delete(id)
    }
    return {removed, freedBytes}
  }
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

const metadataDamage = (id: string): Damage => ({
  backup: id,
  what: 'metadata',
  problem: 'invalid',
  message: `backup ${id}: metadata damaged (fake)`,
})

export function treeOf(files: Record<string, string>): Tree {
  return new Map(Object.entries(files).map(([p, content]) => [p, {content, mode: 0o644}]))
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex')

/** A fake tree as a backup lists it (files only: the fake has no directories). */
const manifestOf = (t: Tree): Manifest =>
  new Map(
    [...t].map(([p, f]) => [
      p,
      {type: 'file' as const, mode: f.mode, size: Buffer.byteLength(f.content), hash: sha256(f.content)},
    ]),
  )

const copyTree = (t: Tree): Tree => new Map([...t].map(([p, f]) => [p, {...f}]))

const sameFile = (a: FakeFile | undefined, b: FakeFile | undefined) =>
  !!a && !!b && a.content === b.content && a.mode === b.mode

const markerFile = (m: ReleaseMarker): FakeFile => ({content: `${JSON.stringify(m, null, 2)}\n`, mode: 0o644})

function parseMarker(f: FakeFile | undefined): ReleaseMarker | null {
  if (!f) return null
  try {
    const m = JSON.parse(f.content) as ReleaseMarker
    return typeof m.id === 'string' ? m : null
  } catch {
    return null
  }
}

/** Source against live, by content and mode; the marker is hotctl's own and never part of a change. */
function changeSet(source: Tree, live: Tree): ChangeSet {
  const added: string[] = []
  const changed: string[] = []
  const deleted: string[] = []
  for (const [rel, f] of source) {
    if (rel === MARKER_NAME) continue
    const l = live.get(rel)
    if (!l) added.push(rel)
    else if (!sameFile(f, l)) changed.push(rel)
  }
  for (const rel of live.keys()) if (rel !== MARKER_NAME && !source.has(rel)) deleted.push(rel)
  return {added: added.sort(cmp), changed: changed.sort(cmp), deleted: deleted.sort(cmp)}
}

/** Paths where `live` differs from `want` (missing, extra, other content or mode). */
function diffTrees(want: Tree, live: Tree): string[] {
  const paths = new Set([...want.keys(), ...live.keys()])
  return [...paths].filter((p) => !sameFile(want.get(p), live.get(p))).sort(cmp)
}

function itemized(c: ChangeSet): ItemizedChange[] {
  return [
    ...c.deleted.map((path) => ({path, kind: 'deleted' as const, fileType: 'file' as const, code: '*deleting'})),
    ...c.added.map((path) => ({path, kind: 'added' as const, fileType: 'file' as const, code: '>f+++++++++'})),
    ...c.changed.map((path) => ({path, kind: 'changed' as const, fileType: 'file' as const, code: '>fc.t......'})),
  ]
}

/**
 * One line per journal event, named by the operation it belongs to, for asserting sequences:
 * `deploy start`, `deploy phase sync`, `deploy child 4242`, `deploy end restored 3`.
 */
export function journalLines(events: JournalEvent[]): string[] {
  const ops = new Map<string, string>()
  return events.map((e) => {
    if (e.event === 'start') {
      ops.set(e.opId, e.op)
      return `${e.op} start`
    }
    const op = ops.get(e.opId) ?? `?${e.opId}`
    if (e.event === 'phase') return `${op} phase ${e.phase}`
    if (e.event === 'child') return `${op} child ${e.pgid}`
    if (e.event === 'step')
      return `${op} step ${e.step} ${e.action}${e.ok === undefined ? '' : e.ok ? ' ok' : ' failed'}`
    if (e.event === 'maintenance') return `${op} maintenance ${e.on ? 'on' : 'off'}`
    return `${op} end ${e.result} ${e.exitCode}`
  })
}

/** A resolved config for the fake: no HTTP anywhere unless a test adds it; checks run in the OS temp dir. */
export function fakeConfig(over: Partial<ResolvedConfig> = {}): ResolvedConfig {
  return {
    file: '/fake/hotctl.yaml',
    source: os.tmpdir(),
    target: '/fake/live',
    stateDir: '/fake/.live.hotctl',
    hosts: [],
    fleet: {waves: ['100%'], parallel: 10, pauseMs: 0, onFailure: 'rollback-all'},
    ssh: {options: [], connectTimeoutMs: 10_000, serverAliveIntervalMs: 5000, timeoutMs: 60_000},
    exclude: [],
    protect: [],
    keep: 10,
    checks: [],
    services: [],
    reloadTimeoutMs: 2000,
    requireRestart: [],
    smoke: [],
    steps: [],
    notify: [],
    ...over,
  }
}

/** The pipelines' context on a fake target; `said` collects what the UI would have printed. */
export function fakeContext(
  target: Target,
  config: ResolvedConfig,
  signal = new AbortController().signal,
): {ctx: OpContext; said: string[]} {
  const said: string[] = []
  return {ctx: {config, target, ui: {json: true, say: (m) => void said.push(m)}, signal, env: {}}, said}
}

/**
 * What an operation ended with, whether the pipeline returned it or threw it (failures before the
 * operation started): a thrown error gets the exit code the CLI gives it (base-command's catch).
 */
export interface Ended<T> {
  exitCode: number
  /** The result's outcome; `thrown` when the pipeline threw instead of returning. */
  outcome: string
  result?: T
  error?: Error
}

export async function ended<T extends {exitCode: number; outcome: string}>(run: Promise<T>): Promise<Ended<T>> {
  try {
    const result = await run
    return {exitCode: result.exitCode, outcome: result.outcome, result}
  } catch (err) {
    if (!(err instanceof Error)) throw err
    return {exitCode: err instanceof HotctlError ? err.exitCode : EXIT.failed, outcome: 'thrown', error: err}
  }
}

/** deploy's flags as the CLI passes them by default. */
export const DEPLOY_FLAGS: DeployFlags = {
  skipChecks: false,
  force: false,
  dryRun: false,
  noRestart: false,
  createTarget: false,
}

/** One service reloaded by a command, and a command smoke check: both run through target.runServiceCommand. */
export const COMMAND_SERVICE: Pick<ResolvedConfig, 'services' | 'smoke'> = {
  services: [{name: 'app', trigger: {command: {argv: ['reload-app']}}}],
  smoke: [{name: 'home', command: {argv: ['smoke-home']}, timeout: '5s', retries: 0}],
}
