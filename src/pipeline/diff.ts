import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {MARKER_NAME} from '../config/resolve.js'
import {errorMessage, usageError} from '../errors.js'
import {showPath} from '../file-names.js'
import {ID_PATTERN} from '../ids.js'
import type {Manifest, ManifestEntry} from '../store/manifest.js'
import type {Target, TargetPlan} from '../target/target.js'
import type {OpContext} from './context.js'
import {catalogOf, INITIAL} from './releases.js'

/** One side of a diff: a tree listing and how to read a file of it. */
interface Side {
  /** What the user named (`live`, a release id, `snapshot:ID`, `initial`). */
  ref: string
  /** What it is, in words: "release 2026… as deployed", "snapshot 2026… (holds release …)", "live". */
  label: string
  files: Manifest
  read(rel: string, e: ManifestEntry): Promise<Buffer>
}

export interface DiffEntry {
  path: string
  type: ManifestEntry['type']
  /** Size in A (changed, deleted). */
  before?: number
  /** Size in B (added, changed). */
  after?: number
  /** Only the mode (permissions) differs. */
  modeOnly?: boolean
}

export interface DiffResult {
  exitCode: number
  a: {ref: string; label: string}
  b: {ref: string; label: string}
  added: DiffEntry[]
  changed: DiffEntry[]
  deleted: DiffEntry[]
  /** Unified diff of the text files (--patch). */
  patch?: string
}

export const LIVE = 'live'
const SNAPSHOT_PREFIX = 'snapshot:'

/**
 * `hotctl diff [A] [B]`: what differs between two trees, each the live tree, a release (as it was
 * deployed, else the newest snapshot holding it), a snapshot or `initial`. Default: the live
 * release as deployed against live (hand edits on the server); one argument: A against live.
 * Protected and excluded paths and the release marker are left out, as deploys leave them out.
 */
export async function diffTrees(
  ctx: OpContext,
  refs: {a?: string; b?: string},
  opts: {patch: boolean},
): Promise<DiffResult> {
  const {target} = ctx
  let a = refs.a
  if (a === undefined) {
    const live = (await target.readMarker())?.id
    if (!live) {
      throw usageError(
        `the target ${target.description} has no release marker: nothing deployed by hotctl to compare with`,
        'Name the trees: `hotctl diff initial live`, or `hotctl diff RELEASE live`.',
      )
    }
    a = live
  }
  const [sa, sb] = [await side(target, a), await side(target, refs.b ?? LIVE)]
  const out: DiffResult = {
    exitCode: 0,
    a: {ref: sa.ref, label: sa.label},
    b: {ref: sb.ref, label: sb.label},
    ...compare(sa.files, sb.files),
  }
  if (opts.patch) out.patch = await unifiedPatch(out, sa, sb)
  return out
}

/** Added, changed and deleted paths between two listings (sorted; directories only when their type changes). */
export function compare(a: Manifest, b: Manifest): Pick<DiffResult, 'added' | 'changed' | 'deleted'> {
  const added: DiffEntry[] = []
  const changed: DiffEntry[] = []
  const deleted: DiffEntry[] = []
  const paths = [...new Set([...a.keys(), ...b.keys()])].filter((p) => p !== MARKER_NAME).sort()
  for (const p of paths) {
    const x = a.get(p)
    const y = b.get(p)
    if (!x) {
      if (y!.type !== 'dir') added.push({path: p, type: y!.type, after: y!.size})
    } else if (!y) {
      if (x.type !== 'dir') deleted.push({path: p, type: x.type, before: x.size})
    } else if (x.type !== y.type) {
      changed.push({path: p, type: y.type, before: x.size, after: y.size})
    } else if (x.type === 'symlink' ? x.link !== y.link : x.type === 'file' && x.hash !== y.hash) {
      changed.push({path: p, type: y.type, before: x.size, after: y.size})
    } else if (x.mode !== y.mode && x.type !== 'symlink') {
      changed.push({path: p, type: y.type, before: x.size, after: y.size, modeOnly: true})
    }
  }
  return {added, changed, deleted}
}

async function side(target: Target, ref: string): Promise<Side> {
  const fromStore = () => (_rel: string, e: ManifestEntry) => target.backups.content(e.hash!)
  if (ref === LIVE) {
    return {ref, label: 'live', files: await target.liveFiles(), read: (rel) => target.readLive(rel)}
  }
  if (ref.startsWith(SNAPSHOT_PREFIX)) {
    const id = ref.slice(SNAPSHOT_PREFIX.length)
    const meta = (await target.backups.list()).find((b) => b.id === id)
    if (!meta) throw unknownRef(ref, `no complete snapshot ${id}`)
    const files = await target.backups.files(id)
    return {
      ref,
      label: `snapshot ${id} (holds ${meta.release ? `release ${meta.release}` : 'the initial tree'})`,
      files,
      read: fromStore(),
    }
  }
  if (ref === INITIAL || ID_PATTERN.test(ref)) {
    const release = ref === INITIAL ? null : ref
    const deployed = release ? await target.backups.deployedFiles(release) : undefined
    if (deployed) return {ref, label: `release ${release} as deployed`, files: deployed, read: fromStore()}
    // Not recorded (deployed by an older hotctl, or pruned): the newest trusted snapshot holding it.
    const catalog = await catalogOf(target)
    const snap = catalog.snapshots.filter((s) => s.release === release && !s.suspect).at(-1)
    if (!snap) {
      const why = release
        ? `release ${release} has no recorded tree and no snapshot holds it`
        : 'no snapshot holds the initial tree'
      throw unknownRef(ref, why)
    }
    const files = await target.backups.files(snap.id)
    const what = release ? `release ${release}` : 'the initial tree'
    return {ref, label: `${what} (snapshot ${snap.id}, taken when it was replaced)`, files, read: fromStore()}
  }
  throw unknownRef(ref, 'not a tree name')
}

function unknownRef(ref: string, why: string) {
  return usageError(
    `diff: ${ref}: ${why}`,
    'Name a tree as `live`, a release id (`hotctl log` and `hotctl backups` list them), `initial`, or `snapshot:ID` (a snapshot id from `hotctl backups`).',
  )
}

/** A file is shown as text when its first 8000 bytes hold no NUL (git's rule). */
const isText = (b: Buffer) => !b.subarray(0, 8000).includes(0)

/** `diff -u` of every added, changed and deleted text file; binaries and symlinks get one line each. */
async function unifiedPatch(d: DiffResult, a: Side, b: Side): Promise<string> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-diff-'))
  try {
    const parts: string[] = []
    const entries = [...d.added, ...d.changed, ...d.deleted].sort((x, y) =>
      x.path < y.path ? -1 : x.path > y.path ? 1 : 0,
    )
    for (const e of entries) {
      const x = a.files.get(e.path)
      const y = b.files.get(e.path)
      if (e.modeOnly) {
        parts.push(`mode ${showPath(e.path)}: ${x!.mode.toString(8)} → ${y!.mode.toString(8)}\n`)
        continue
      }
      const before = await contentOf(a, e.path, x)
      const after = await contentOf(b, e.path, y)
      if ((before && !isText(before)) || (after && !isText(after))) {
        parts.push(`Binary files a/${showPath(e.path)} and b/${showPath(e.path)} differ\n`)
        continue
      }
      const fa = path.join(tmp, 'a')
      const fb = path.join(tmp, 'b')
      fs.writeFileSync(fa, before ?? '')
      fs.writeFileSync(fb, after ?? '')
      const {execa} = await import('execa')
      const r = await execa(
        'diff',
        [
          '-u',
          '--label',
          before ? `a/${showPath(e.path)}` : '/dev/null',
          '--label',
          after ? `b/${showPath(e.path)}` : '/dev/null',
          fa,
          fb,
        ],
        {reject: false, encoding: 'buffer', stripFinalNewline: false},
      )
      if (r.exitCode === 2 || r.exitCode === undefined)
        throw new Error(`diff -u failed: ${Buffer.from(r.stderr).toString()}`)
      parts.push(Buffer.from(r.stdout).toString('utf8'))
    }
    return parts.join('')
  } catch (err) {
    throw new Error(`--patch: ${errorMessage(err)}`)
  } finally {
    fs.rmSync(tmp, {recursive: true, force: true})
  }
}

/** A file's bytes; a symlink as its target (`-> link`), as git shows it; undefined when absent or a directory. */
async function contentOf(s: Side, rel: string, e: ManifestEntry | undefined): Promise<Buffer | undefined> {
  if (!e || e.type === 'dir') return undefined
  if (e.type === 'symlink') return Buffer.from(`-> ${e.link}\n`)
  return s.read(rel, e)
}

/**
 * After a proven deploy: the tree as deployed, which `hotctl diff` compares live against. A
 * failure here is a warning: the deploy stands.
 */
export async function recordDeployedTree(ctx: OpContext, release: string, plan?: TargetPlan): Promise<void> {
  try {
    await ctx.target.backups.recordDeployed(release, plan)
  } catch (err) {
    ctx.ui.say(
      `hotctl: warning: could not record the deployed tree of ${release} for \`hotctl diff\`: ${errorMessage(err)}`,
    )
  }
}
