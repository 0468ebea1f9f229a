import {usageError} from '../errors.js'
import {parseId} from '../ids.js'
import type {BackupMeta} from '../state/backups.js'
import {type Operation, operations} from '../state/journal.js'
import type {Target} from '../target/target.js'

/**
 * Which release each snapshot holds, and which releases `rollback --to` can reach.
 *
 * A snapshot is named after the operation that took it, not after what it holds: a deploy's backup
 * carries the id of the release being deployed but holds the release live *before* it; a
 * rollback's undo snapshot holds the release the rollback replaced. So users never name snapshots:
 * `--to R` names the release to end with (as Capistrano's ROLLBACK_RELEASE, `kamal rollback
 * VERSION` and kubectl's --to-revision do) and resolves to the newest trustworthy snapshot holding
 * R. One id, one tree.
 */

/** The `--to` value for the tree from before hotctl's first deploy (a tree without release marker). */
export const INITIAL = 'initial'

export interface SnapshotInfo extends Omit<BackupMeta, 'root'> {
  /** The `--to` value that restores this snapshot; null when `--to` picks another one or none (see `note`). */
  to: string | null
  /** Plain `hotctl rollback` restores this snapshot. */
  next: boolean
  /** Set when the snapshot was taken while the target needed attention: not trusted as a release's tree. */
  suspect?: string
  note?: string
}

export interface RollbackTarget {
  /** What to pass to `--to`: the release id, or `initial`. */
  to: string
  release: string | null
  /** The snapshot `--to` restores (the newest trustworthy one holding the release). */
  snapshot: string
  /** When that snapshot was taken. */
  time: string
  gitSha: string | null
}

/** A release whose deploy never ended proven live (restored, failed, interrupted): never a `--to` target. */
export interface NeverLive {
  release: string
  result: string
  at: string
  error?: string
}

export interface ReleaseCatalog {
  /** The live tree's release marker (null: no marker, the tree from before hotctl). */
  live: string | null
  /** Oldest first. */
  snapshots: SnapshotInfo[]
  /** Newest first; the live release is not a target (`--to` it confirms it and changes nothing). */
  targets: RollbackTarget[]
  neverLive: NeverLive[]
  /** Releases the journal saw proven live (a deploy or rollback to them ended ok). */
  proven: string[]
  /**
   * Why the live tree is in doubt (the last restore could not be verified), if it is: then the
   * marker proves nothing, and `--to` the live release restores a trusted snapshot of it.
   */
  doubt?: string
}

/** What a rollback restores: `snapshot` null means the release asked for is already live. */
export interface Choice {
  to: string
  release: string | null
  snapshot: string | null
}

/** The catalog of a target: its snapshots, its journal and the live release. */
export async function catalogOf(target: Target): Promise<ReleaseCatalog> {
  const [backups, events, marker] = await Promise.all([target.backups.list(), target.state.read(), target.readMarker()])
  return releaseCatalog(backups, operations(events), marker?.id ?? null)
}

export function releaseCatalog(backups: BackupMeta[], ops: Operation[], live: string | null): ReleaseCatalog {
  const {proven, neverLive, suspect, doubt} = readHistory(ops)
  const never = new Set(neverLive.map((n) => n.release))
  const snapshots: SnapshotInfo[] = backups.map(({root: _root, ...b}) => ({
    ...b,
    to: null,
    next: false,
    ...(suspect.has(b.id) ? {suspect: suspect.get(b.id)} : {}),
  }))
  const targets: RollbackTarget[] = []
  for (const s of [...snapshots].reverse()) {
    const key = s.release ?? INITIAL
    if (s.suspect) s.note = s.suspect
    else if (s.release && never.has(s.release)) s.note = `release ${s.release} was never live`
    else if (key === (live ?? INITIAL) && !doubt) s.note = `holds the live ${s.release ? 'release' : 'tree'}`
    else if (targets.some((t) => t.to === key)) s.note = `older copy: --to ${key} uses a newer snapshot`
    else {
      s.to = key
      targets.push({to: key, release: s.release, snapshot: s.id, time: s.time, gitSha: s.gitSha})
    }
  }
  const catalog: ReleaseCatalog = {live, snapshots, targets, neverLive, proven: [...proven], ...(doubt ? {doubt} : {})}
  const next = tryChoice(() => resolvePrevious(catalog))
  if (next?.snapshot) for (const s of snapshots) s.next = s.id === next.snapshot
  return catalog
}

/** `--to INPUT`: a release id (or `initial`) to end with live. Anything else is a usage error naming why. */
export function resolveTo(c: ReleaseCatalog, input: string): Choice {
  const hint = targetsHint(c)
  const key = input === INITIAL ? INITIAL : parseId(input, '--to', hint)
  const release = key === INITIAL ? null : key
  if (key === (c.live ?? INITIAL) && !c.doubt) return {to: key, release, snapshot: null}
  const target = c.targets.find((t) => t.to === key)
  if (!target) throw usageError(`--to ${input}: ${whyNot(c, key)}`, hint, {targets: c.targets.map((t) => t.to)})
  return {to: key, release, snapshot: target.snapshot}
}

/**
 * Plain `rollback`: one step back, to the release that was live before the live one was deployed
 * (what the live release's own deploy backed up), so a second rollback goes one further back.
 */
export function resolvePrevious(c: ReleaseCatalog): Choice {
  const hint = targetsHint(c)
  if (!c.live)
    throw usageError('the live tree has no release marker, so there is no earlier release to go back to', hint)
  const before = c.snapshots.find((s) => s.id === c.live)
  if (!before)
    throw usageError(`no snapshot from before release ${c.live} (pruned, or it was deployed by something else)`, hint)
  const key = before.release ?? INITIAL
  const target = c.targets.find((t) => t.to === key)
  if (!target) {
    throw usageError(
      `the release before ${c.live} was ${describe(before.release)}, which cannot be restored: ${whyNot(c, key)}`,
      hint,
      {targets: c.targets.map((t) => t.to)},
    )
  }
  return {to: key, release: before.release, snapshot: target.snapshot}
}

/** The valid `--to` values and what is live: the hint of every refused rollback. */
export function targetsHint(c: ReleaseCatalog): string {
  const live = c.live ? `release ${c.live} is live` : 'the tree from before hotctl is live'
  if (c.targets.length === 0)
    return `There is no release to roll back to (${live}); \`hotctl backups\` lists the snapshots.`
  const list = c.targets.map((t) => (t.release ? t.to : `${t.to} (the tree from before hotctl)`)).join(', ')
  return `Valid --to targets, newest first: ${list}; ${live}. \`hotctl backups\` shows what each snapshot holds.`
}

export function describe(release: string | null): string {
  return release ? `release ${release}` : 'the tree from before hotctl'
}

function tryChoice(fn: () => Choice): Choice | undefined {
  try {
    return fn()
  } catch {
    return undefined
  }
}

function whyNot(c: ReleaseCatalog, key: string): string {
  const release = key === INITIAL ? null : key
  const copies = c.snapshots.filter((s) => (s.release ?? INITIAL) === key)
  const never = release ? c.neverLive.find((n) => n.release === release) : undefined
  let why: string
  if (never) why = neverLiveReason(never)
  else if (copies.length > 0) {
    why = `the only snapshots holding ${describe(release)} (${copies.map((s) => s.id).join(', ')}) were taken while the target needed attention, so none is known to hold it as it was live`
  } else if (release && c.proven.includes(release))
    why = `release ${release} was live, but no snapshot of it is left (pruned; \`keep\` in the config sets how many stay)`
  else if (!release) why = 'no snapshot holds the tree from before hotctl (pruned)'
  else why = `no release ${release} on this target`
  // The old meaning of --to: a snapshot id. Say what that snapshot holds and how to reach it.
  const snap = release ? c.snapshots.find((s) => s.id === release && s.release !== release) : undefined
  if (snap) {
    const taken =
      snap.reason === 'deploy'
        ? `the backup taken before deploy ${snap.id}`
        : `the undo snapshot of rollback ${snap.id}`
    const reach = snap.to ? ` (\`--to ${snap.to}\`)` : ''
    why += `; ${snap.id} is also the id of ${taken}, which holds ${describe(snap.release)}${reach}`
  }
  return why
}

export function neverLiveReason(n: NeverLive): string {
  const at = n.at.slice(0, 19).replace('T', ' ')
  const what: Record<string, string> = {
    restored: `its deploy was restored at ${at}`,
    failed: `its deploy failed at ${at}, before changing the target`,
    attention: `its deploy failed at ${at} and the restore could not be verified`,
    interrupted: `its deploy was interrupted at ${at}`,
    running: `its deploy, started at ${at}, has not finished`,
  }
  const error = n.error ? ` (${n.error.split('\n')[0]!.slice(0, 200)})` : ''
  return `release ${n.release} was never live: ${what[n.result] ?? `its deploy ended "${n.result}" at ${at}`}${error}`
}

/**
 * From the journal: the releases proven live, the deploys that never were, and the snapshots taken
 * while the live tree was in doubt. The tree is in doubt after an operation ended 'attention' (a
 * restore that could not be verified), until a deploy succeeds or a rollback restores a trusted
 * snapshot; a restore or recovery puts back the tree from before its operation, doubt included.
 */
function readHistory(ops: Operation[]): {
  proven: Set<string>
  neverLive: NeverLive[]
  suspect: Map<string, string>
  doubt?: string
} {
  const proven = new Set<string>()
  const lastDeploy = new Map<string, Operation>()
  const suspect = new Map<string, string>()
  let doubt: string | undefined
  for (const o of ops) {
    // Snapshots are named by the operation that took them, first thing under its lock.
    if (doubt) suspect.set(o.opId, doubt)
    if (o.op === 'deploy' && o.start.release) lastDeploy.set(o.start.release, o)
    const result = o.end?.result
    if (result === 'ok' && o.op !== 'recover' && o.start.release) proven.add(o.start.release)
    if (result === 'attention')
      doubt = `taken while the target needed attention (${o.op} ${o.opId} could not restore and verify it)`
    else if (result === 'ok')
      doubt = o.op === 'rollback' && o.start.restores ? suspect.get(o.start.restores) : undefined
  }
  const neverLive = [...lastDeploy]
    .filter(([release]) => !proven.has(release))
    .map(([release, o]) => ({
      release,
      result: o.end?.result ?? 'running',
      at: o.end?.t ?? o.start.t,
      ...(o.end?.error ? {error: o.end.error} : {}),
    }))
  return {proven, neverLive, suspect, doubt}
}
