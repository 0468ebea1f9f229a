import crypto from 'node:crypto'
import zlib from 'node:zlib'
import {MAINTENANCE_NAME, MARKER_NAME, type ResolvedConfig} from '../config/resolve.js'
import {EXIT, HotctlError} from '../errors.js'
import {decodeName} from '../file-names.js'
import {ID_PATTERN} from '../ids.js'
import {rsyncPatterns} from '../plan/patterns.js'
import {parseItemize, unescapeName} from '../rsync/itemize.js'
import type {SshConnection} from '../ssh/connection.js'
import {batches, describeRemote, type RemoteEntry} from '../ssh/remote-files.js'
import type {RemotePlanWalk} from '../ssh/remote-tree.js'
import type {BackupMeta} from '../state/backups.js'
import {BackupDamagedError, type Damage, type IntegrityReport} from '../store/integrity.js'
import type {Manifest, ManifestEntry} from '../store/manifest.js'
import type {BackupStore, ReleaseMarker, TargetPlan} from './target.js'

/**
 * Snapshot of the target into `backups/<id>.part/`, run on the host: rsync -a with --link-dest to
 * the previous backup, so files unchanged since then (size, mtime to the nanosecond, perms) are
 * hard links between backups and everything else is a fresh copy: never a link to a live file.
 * Prints every entry (-ii: `hf` = linked), then, after a NUL line, the live files whose ctime is
 * newer than the previous backup's metadata (GNU find -cnewer; nothing when find cannot): a file
 * rewritten in place with its size and mtime kept is caught there, not recorded as its old content.
 */
const SNAPSHOT = `t=$1; b=$2; id=$3; prev=$4; prevMeta=$5; shift 5
mkdir -p -- "$b" || exit 4
for d in "$b"/*.part; do [ -d "$d" ] && rm -rf -- "$d"; done
if [ -n "$prev" ] && [ -d "$prev" ]; then set -- --link-dest="$prev" "$@"; fi
if [ -d "$t" ]; then src=$t/; else mkdir -p -- "$b/.empty" && src=$b/.empty/ || exit 4; fi
rsync -rlptgo -ii --modify-window=-1 --8-bit-output '--out-format=%i %B %l %n' "$@" -- "$src" "$b/$id.part/" || exit $?
rm -rf -- "$b/.empty"
printf '\\0\\n'
if [ -n "$prev" ] && [ -f "$prevMeta" ]; then
  cd -- "$t" && find . -type f -cnewer "$prevMeta" -print0 2>/dev/null
fi
exit 0`

/** Replaces hard links in the new backup by copies of the live files (they changed in place). */
const RECOPY = `t=$1; d=$2; shift 2
for p; do rm -f -- "$d/$p" && cp -p -- "$t/$p" "$d/$p" || exit 3; done`

/** Makes a backup complete: its tree in place, content flushed, then the manifest and the metadata (the commit point). */
const COMMIT = `b=$1; id=$2
printf '%s' "$3" > "$b/$id.json.tmp" || exit 3
mv -- "$b/$id.part" "$b/$id" && mv -- "$b/$id.manifest.json.gz.tmp" "$b/$id.manifest.json.gz" || exit 3
sync -f -- "$b/$id.manifest.json.gz" 2>/dev/null || sync
mv -- "$b/$id.json.tmp" "$b/$id.json" && sync -- "$b/$id.json"`

/** Every metadata file: name NUL content NUL. */
const LIST = `cd -- "$1" 2>/dev/null || exit 0
for f in *.json; do
  [ -f "$f" ] || continue
  case $f in *.manifest.json*) continue ;; esac
  printf '%s\\0' "$f"; cat -- "$f"; printf '\\0'
done
for f in *.part *.json.tmp; do [ -e "$f" ] && printf '%s\\0' "$f"; done
exit 0`

const CAT = `cat -- "$1"`

/**
 * Removes backup trees (or trees as deployed): metadata first (from then on they are not
 * complete), then the trees. Prints the bytes freed, counted before removal: files whose every
 * hard link is in the trees that go (GNU find -printf). `$1` = 1: a dry run that only counts.
 */
const PRUNE = `dry=$1; shift
n=$(find "$@" -type f -printf '%i %n %s\\n' 2>/dev/null | awk '{c[$1]++; n[$1]=$2; s[$1]=$3} END {t=0; for (i in c) if (c[i] >= n[i]) t += s[i]; printf "%d", t}')
echo "\${n:-0}"
[ "$dry" = 1 ] && exit 0
for t; do rm -f -- "$t.json" "$t.manifest.json.gz"; done
for t; do rm -rf -- "$t"; done
exit 0`

/** Releases with a tree as deployed: the names of `<release>.json` in the directory. */
const DEPLOYED_LIST = `cd -- "$1" 2>/dev/null || exit 0
for f in *.json; do [ -f "$f" ] && printf '%s\\n' "\${f%.json}"; done
exit 0`

/** A tree as deployed: its metadata, read with its manifest. */
interface DeployedMeta {
  release: string
  time: string
  root: Record<string, string>
  /** The backup taken before the deploy: holds the files it did not write. */
  base?: string
}

/** A fresh `$2` for the tree as deployed (stale `.part` trees in `$1` removed first). */
const PREPARE_PART = `b=$1; d=$2
mkdir -p -- "$b" || exit 4
for x in "$b"/*.part; do [ -d "$x" ] && rm -rf -- "$x"; done
mkdir -p -- "$d"`

/** Copies of files a deploy wrote (`./path` in $3…) from the target `$1` into `$2`, directories made (GNU cp --parents). */
const COPY_WRITTEN = `cd -- "$1" || exit 4
d=$2; shift 2
exec cp -p --parents -- "$@" "$d/"`

/** What a restore or a verify compares: rsync's dry run from the backup tree to the target, deletions included. */
const DIFF = `b=$1; t=$2; shift 2
rsync -n -rlptgo -i --delete --modify-window=-1 --8-bit-output '--out-format=%i %n' "$@" -- "$b/" "$t/"`

/**
 * The restore itself: what DIFF listed, written by rsync on the host (never in place), deletions
 * included, also the `.~tmp~` leftovers of a killed --delay-updates sync (rsync protects those
 * from --delete unless told otherwise).
 */
const APPLY = `b=$1; t=$2; shift 2
rsync -rlptgo -i --delete --delay-updates '--filter=R .~tmp~/' --modify-window=-1 --8-bit-output '--out-format=%i %n' "$@" -- "$b/" "$t/"`

interface ManifestFile {
  /** [path, 'f', mode, size, sha256] | [path, 'd', mode] | [path, 'l', mode, link] */
  entries: [string, 'f' | 'd' | 'l', number, (number | string)?, string?][]
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex')

/**
 * Backups on the host, in the state dir beside the target: one hard-link tree per backup
 * (`backups/<id>/`, linked to the previous backup, never to live files), its sha256 manifest
 * (`<id>.manifest.json.gz`) and its metadata (`<id>.json`, written last: the commit point; `root['']`
 * is the manifest's sha256). Added storage per backup: the files that changed since the previous
 * one, the directories, and the manifest. Restores run rsync on the host and are verified by
 * sha256 on the host; nothing a restore needs exists only on a controller.
 */
export class SshBackupStore implements BackupStore {
  private readonly dir: string
  private readonly deployedDir: string
  /** Where on the host a file of a manifest read in this run may be, by content hash (tried in order). */
  private readonly where = new Map<string, string[]>()
  /** `list` as last read, kept current by snapshot and prune (one listing per run, not one per call). */
  private listed?: BackupMeta[]

  constructor(
    private readonly conn: SshConnection,
    private readonly config: ResolvedConfig,
    private readonly readMarker: () => Promise<ReleaseMarker | null>,
  ) {
    this.dir = `${config.stateDir}/backups`
    this.deployedDir = `${config.stateDir}/deployed`
  }

  async list(): Promise<BackupMeta[]> {
    this.listed ??= (await this.readAll()).metas.flatMap((r) => (r.meta ? [r.meta] : []))
    return [...this.listed]
  }

  /** Forgets what `list` read: others may have changed the backups since (the target calls it when it takes the lock). */
  invalidate(): void {
    this.listed = undefined
  }

  async ids(): Promise<string[]> {
    return (await this.readAll()).metas.map((r) => r.id)
  }

  async snapshot(id: string, reason: BackupMeta['reason'], _plan?: TargetPlan): Promise<BackupMeta> {
    const prev = (await this.list()).at(-1)
    const marker = await this.readMarker()
    const tree = await this.capture(this.dir, id, prev)
    const meta: BackupMeta = {
      id,
      time: new Date().toISOString(),
      reason,
      release: marker?.id ?? null,
      gitSha: marker?.gitSha ?? null,
      files: tree.files,
      bytes: tree.bytes,
      added: tree.added,
      protect: this.config.protect,
      root: {'': tree.sha},
    }
    const listed = this.listed
    this.listed = undefined
    await this.conn.must('backup (commit)', COMMIT, [this.dir, id, JSON.stringify(meta)])
    if (listed) this.listed = [...listed, meta].sort((a, b) => (a.id < b.id ? -1 : 1))
    return meta
  }

  /**
   * Copies the live tree into `<dir>/<id>` on the host (hard links to the newest backup `prev`
   * where unchanged, never to live files) with its sha256 manifest beside it, uploaded as
   * `<id>.manifest.json.gz.tmp`; the caller commits it (COMMIT) with its metadata.
   */
  private async capture(
    dir: string,
    id: string,
    prev: BackupMeta | undefined,
  ): Promise<{sha: string; files: number; bytes: number; added: number}> {
    const prevManifest = prev ? await this.manifest(prev).catch(() => undefined) : undefined
    const filters = rsyncPatterns([...this.config.exclude, ...this.config.protect, `/${MAINTENANCE_NAME}`]).map(
      (p) => `--exclude=${p}`,
    )
    const out = await this.conn.must('backup (rsync --link-dest on the host)', SNAPSHOT, [
      this.config.target,
      dir,
      id,
      prev ? `${this.dir}/${prev.id}` : '',
      prev ? `${this.dir}/${prev.id}.json` : '',
      ...filters,
    ])
    const sep = out.indexOf(Buffer.from('\0\n'))
    const listed = parseSnapshotList(out.subarray(0, sep))
    const changedLive = new Set(
      out
        .subarray(sep + 2)
        .toString('latin1')
        .split('\0')
        .filter(Boolean)
        .map((p) => decodeName(Buffer.from(p.replace(/^\.\//, ''), 'latin1'))),
    )
    const part = `${dir}/${id}.part`
    // Linked files take their hash from the previous manifest, unless the live file changed since
    // (ctime): then the link holds the old content and is replaced by a copy.
    const linked = listed.filter((e) => e.linked && e.type === 'file')
    const suspect = linked.filter((e) => changedLive.has(e.path) || prevManifest?.get(e.path)?.hash === undefined)
    if (suspect.length > 0)
      await this.conn.must('backup (copying files changed in place)', RECOPY, [
        this.config.target,
        part,
        ...suspect.map((e) => e.path),
      ])
    const suspects = new Set(suspect.map((e) => e.path))
    const toHash = listed.filter((e) => e.type === 'file' && (!e.linked || suspects.has(e.path))).map((e) => e.path)
    const hashed = await describeRemote(this.conn, part, [
      ...toHash,
      ...listed.filter((e) => e.type === 'symlink').map((e) => e.path),
    ])
    const manifest: ManifestFile = {entries: []}
    let files = 0
    let bytes = 0
    let added = 0
    for (const e of listed) {
      if (e.type === 'dir') {
        if (e.path) manifest.entries.push([e.path, 'd', e.mode])
        continue
      }
      const d = hashed.get(e.path)
      if (e.type === 'symlink') {
        if (!d?.link && d?.link !== '')
          throw new Error(`backup: ${e.path} vanished from the backup on ${this.conn.host.name}`)
        manifest.entries.push([e.path, 'l', e.mode, d.link])
        continue
      }
      const hash = d ? d.hash : prevManifest?.get(e.path)?.hash
      const size = d ? d.size! : e.size
      if (!hash) throw new Error(`backup: no hash for ${e.path} on ${this.conn.host.name}`)
      manifest.entries.push([e.path, 'f', e.mode, size, hash])
      files++
      bytes += size
      if (d) added += size
    }
    const text = JSON.stringify(manifest)
    const gz = zlib.gzipSync(text)
    // The manifest travels gzipped (about half the size on the host); its sha256 is of the JSON.
    await this.conn.upload(`${dir}/${id}.manifest.json.gz.tmp`, gz)
    return {sha: sha256(text), files, bytes, added: added + gz.length}
  }

  async files(id: string): Promise<Manifest> {
    const {manifest} = await this.checked(id)
    this.remember(`${this.dir}/${id}`, manifest)
    return manifest
  }

  /**
   * The tree as deployed: its manifest (from the deploy's walk of the host, brought up to date by
   * its verify, hashes from the host's hash record) and, in `deployed/<release>/`, copies of the
   * files the deploy wrote (hashed as copied): a later hand edit of a live file cannot reach
   * them. Unwritten files' content is in the backup taken before the deploy (`base`), so this is
   * O(changed). Without the deploy's walk: a whole tree, linked to the newest backup.
   * The newest `keep` of them survive a prune.
   */
  async recordDeployed(release: string, plan?: TargetPlan): Promise<void> {
    const base = (await this.list()).at(-1)
    const walked = plan?.walk as RemotePlanWalk | undefined
    const fromWalk = walked && plan && base ? await this.deployedFromWalk(release, plan, walked) : undefined
    const sha = fromWalk ?? (await this.capture(this.deployedDir, release, base)).sha
    const meta: DeployedMeta = {
      release,
      time: new Date().toISOString(),
      root: {'': sha},
      ...(fromWalk ? {base: base!.id} : {}),
    }
    await this.conn.must('recording the tree as deployed', COMMIT, [this.deployedDir, release, JSON.stringify(meta)])
  }

  /** The manifest of the tree as deployed, uploaded with the written files' copies; its sha256, or undefined when the walk cannot vouch for every file. */
  private async deployedFromWalk(
    release: string,
    plan: TargetPlan,
    walked: RemotePlanWalk,
  ): Promise<string | undefined> {
    const {dst, record} = walked
    const written = [...plan.changes.added, ...plan.changes.changed].filter(
      (rel) => dst.entries.get(rel)?.type === 'file',
    )
    const part = `${this.deployedDir}/${release}.part`
    await this.conn.must('preparing the tree as deployed', PREPARE_PART, [this.deployedDir, part])
    for (const batch of batches(written))
      await this.conn.must('copying the written files (tree as deployed)', COPY_WRITTEN, [
        this.config.target,
        part,
        ...batch.map((p) => `./${p}`),
      ])
    const copies = await describeRemote(this.conn, part, written)
    const manifest: ManifestFile = {entries: []}
    for (const [rel, e] of [...dst.entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (rel === MARKER_NAME) continue
      if (e.type === 'dir') manifest.entries.push([rel, 'd', e.mode])
      else if (e.type === 'symlink') manifest.entries.push([rel, 'l', e.mode, e.link])
      else {
        const c = copies.get(rel)
        const hash = c ? c.hash : record.peek(rel, e)
        if (!hash) return undefined
        manifest.entries.push([rel, 'f', e.mode, c ? c.size : e.size, hash])
      }
    }
    const text = JSON.stringify(manifest)
    await this.conn.upload(`${this.deployedDir}/${release}.manifest.json.gz.tmp`, zlib.gzipSync(text))
    return sha256(text)
  }

  async deployedFiles(release: string): Promise<Manifest | undefined> {
    if (!ID_PATTERN.test(release)) return undefined
    const r = await this.conn.run(CAT, [`${this.deployedDir}/${release}.json`])
    if (r.exitCode !== 0) return undefined
    let meta: DeployedMeta
    try {
      meta = JSON.parse(r.stdout.toString('utf8')) as DeployedMeta
    } catch {
      return undefined
    }
    if (meta?.release !== release || typeof meta.root?.[''] !== 'string') return undefined
    const manifest = await this.readManifest(`${this.deployedDir}/${release}`, release, meta.root[''])
    this.remember(`${this.deployedDir}/${release}`, manifest)
    // Files it did not write: in the backup taken before the deploy (content is checked by hash).
    if (meta.base && ID_PATTERN.test(meta.base)) this.remember(`${this.dir}/${meta.base}`, manifest)
    return manifest
  }

  async content(hash: string): Promise<Buffer> {
    const files = this.where.get(hash)
    if (!files) throw new Error(`no tree read in this run lists content ${hash}`)
    let r = await this.conn.run(CAT, [files[0]!], {exact: true})
    for (const f of files.slice(1)) {
      if (r.exitCode === 0 && crypto.createHash('sha256').update(r.stdout).digest('hex') === hash) break
      r = await this.conn.run(CAT, [f], {exact: true})
    }
    const file = files.at(-1)
    if (r.exitCode !== 0) throw new Error(`${file} on ${this.conn.host.name} is missing`)
    if (crypto.createHash('sha256').update(r.stdout).digest('hex') !== hash)
      throw new Error(`${file} on ${this.conn.host.name} is not the content its manifest records`)
    return r.stdout
  }

  /** Where on the host each file of a manifest read in this run is, by content hash (for `content`). */
  private remember(tree: string, manifest: Manifest): void {
    for (const [rel, e] of manifest)
      if (e.type === 'file' && e.hash) this.where.set(e.hash, [...(this.where.get(e.hash) ?? []), `${tree}/${rel}`])
  }

  async restore(id: string): Promise<{written: string[]; removed: string[]}> {
    const {meta, manifest} = await this.checked(id)
    const filters = this.filters(meta)
    const diff = parseItemize(
      await this.conn.must('restore (planning)', DIFF, [`${this.dir}/${id}`, this.config.target, ...filters]),
    )
    // What this restore will copy is checked against the manifest first: a damaged backup is refused with the target untouched.
    const writes = diff.filter((i) => i.kind !== 'deleted' && i.fileType === 'file').map((i) => i.path)
    const damage = this.compare(
      id,
      manifest,
      writes,
      await describeRemote(this.conn, `${this.dir}/${id}`, writes),
      'object',
    )
    if (damage.length > 0) throw new BackupDamagedError(id, damage)
    const done = parseItemize(
      await this.conn.must('restore (rsync on the host)', APPLY, [`${this.dir}/${id}`, this.config.target, ...filters]),
    )
    return {
      written: done
        .filter((i) => (i.kind === 'added' || i.kind === 'changed') && i.fileType !== 'dir')
        .map((i) => i.path),
      removed: done.filter((i) => i.kind === 'deleted').map((i) => i.path),
    }
  }

  /** By content: every file of the backup hashed in the target (sha256sum on the host), plus rsync's list of extra paths. */
  async verify(id: string): Promise<string[]> {
    const {meta, manifest} = await this.checked(id)
    const extra = parseItemize(
      await this.conn.must('verify (listing)', DIFF, [`${this.dir}/${id}`, this.config.target, ...this.filters(meta)]),
    )
      .filter((i) => i.kind === 'deleted')
      .map((i) => i.path)
    const paths = [...manifest.keys()]
    const live = await describeRemote(this.conn, this.config.target, paths)
    const differ = paths.filter((p) => !sameEntry(manifest.get(p)!, live.get(p)))
    return [...new Set([...differ, ...extra])].sort()
  }

  async check(id?: string): Promise<IntegrityReport> {
    const {metas, incomplete} = await this.readAll()
    const report: IntegrityReport = {
      backups: [],
      damage: [],
      checked: {backups: 0, chunks: 0, objects: 0, bytes: 0},
      info: {orphanObjects: 0, orphanBytes: 0, tempFiles: [], incompleteBackups: id ? [] : incomplete, strayFiles: []},
    }
    for (const r of metas.filter((m) => id === undefined || m.id === id)) {
      report.checked.backups++
      const damage: Damage[] = []
      let files: number | null = null
      if (!r.meta)
        damage.push({
          backup: r.id,
          what: 'metadata',
          problem: r.problem!,
          message: `metadata backups/${r.id}.json ${r.error}`,
        })
      else {
        try {
          const manifest = await this.manifest(r.meta)
          report.checked.chunks++
          const paths = [...manifest.keys()]
          const found = await describeRemote(this.conn, `${this.dir}/${r.id}`, paths)
          for (const e of manifest.values())
            if (e.type === 'file') {
              report.checked.objects++
              report.checked.bytes += e.size ?? 0
            }
          damage.push(...this.compare(r.id, manifest, paths, found, 'object'))
          files = r.meta.files
        } catch (err) {
          damage.push(
            err instanceof BackupDamagedError
              ? err.damage[0]!
              : {backup: r.id, what: 'chunk', problem: 'unreadable', message: String(err)},
          )
        }
      }
      report.damage.push(...damage)
      report.backups.push({id: r.id, ok: damage.length === 0, files, damage: damage.length})
    }
    return report
  }

  async prune(
    keep: number,
    pinned: string[],
    opts: {dryRun?: boolean} = {},
  ): Promise<{removed: string[]; freedBytes: number}> {
    const all = await this.list()
    const kept = new Set(all.slice(-keep).map((b) => b.id))
    for (const id of pinned) kept.add(id)
    const removed = all.filter((b) => !kept.has(b.id)).map((b) => b.id)
    // Trees as deployed (hotctl diff) of the newest `keep` releases stay.
    const deployed = (await this.conn.must('listing trees as deployed', DEPLOYED_LIST, [this.deployedDir]))
      .toString('utf8')
      .split('\n')
      .filter((r) => ID_PATTERN.test(r))
      .sort()
    const trees = [
      ...removed.map((id) => `${this.dir}/${id}`),
      ...deployed.slice(0, -keep || undefined).map((r) => `${this.deployedDir}/${r}`),
    ]
    if (trees.length === 0) return {removed, freedBytes: 0}
    if (!opts.dryRun) this.listed = undefined
    const out = (await this.conn.must('prune', PRUNE, [opts.dryRun ? '1' : '0', ...trees])).toString().trim()
    if (!opts.dryRun) this.listed = all.filter((b) => !removed.includes(b.id))
    return {removed, freedBytes: Number(out) || 0}
  }

  /** rsync filters of a restore or verify: protected paths (now or when the backup was taken) untouched; excludes perishable. */
  private filters(meta: BackupMeta): string[] {
    return [
      ...rsyncPatterns([...this.config.protect, ...(meta.protect ?? []), `/${MAINTENANCE_NAME}`]).map(
        (p) => `--exclude=${p}`,
      ),
      ...rsyncPatterns(this.config.exclude).map((p) => `--filter=-p ${p}`),
    ]
  }

  private compare(
    id: string,
    manifest: Manifest,
    paths: string[],
    found: Map<string, RemoteEntry | undefined>,
    what: Damage['what'],
  ): Damage[] {
    const damage: Damage[] = []
    for (const p of paths) {
      const want = manifest.get(p)
      const got = found.get(p)
      if (!want || sameEntry(want, got)) continue
      const problem: Damage['problem'] = !got
        ? 'missing'
        : want.type === 'file' && got.size !== want.size
          ? 'size-mismatch'
          : 'hash-mismatch'
      damage.push({
        backup: id,
        what,
        problem,
        path: p,
        hash: want.hash,
        message: `${p} in backup ${id} on ${this.conn.host.name} is ${problem === 'missing' ? 'missing' : 'not what its manifest records'}`,
      })
    }
    return damage
  }

  /** A backup's metadata and manifest, the manifest checked against the metadata's sha256; throws when damaged. */
  private async checked(id: string): Promise<{meta: BackupMeta; manifest: Manifest}> {
    const r = (await this.readAll()).metas.find((m) => m.id === id)
    if (!r) {
      throw new HotctlError(
        `backup ${id} is missing or incomplete in ${this.conn.host.name}:${this.config.stateDir}`,
        EXIT.needsAttention,
        'Run `hotctl backups` to see the complete ones.',
      )
    }
    if (!r.meta)
      throw new BackupDamagedError(id, [
        {backup: id, what: 'metadata', problem: r.problem!, message: `metadata backups/${id}.json ${r.error}`},
      ])
    return {meta: r.meta, manifest: await this.manifest(r.meta)}
  }

  private manifest(meta: BackupMeta): Promise<Manifest> {
    return this.readManifest(`${this.dir}/${meta.id}`, meta.id, meta.root[''])
  }

  /** `<tree>.manifest.json.gz`, checked against the sha256 its metadata records; throws BackupDamagedError. */
  private async readManifest(tree: string, id: string, sha: string | undefined): Promise<Manifest> {
    const r = await this.conn.run(CAT, [`${tree}.manifest.json.gz`], {exact: true})
    const name = tree.slice(tree.lastIndexOf('/', tree.lastIndexOf('/') - 1) + 1)
    const damaged = (problem: Damage['problem'], message: string) =>
      new BackupDamagedError(id, [
        {backup: id, what: 'chunk', problem, hash: sha, message: `manifest ${name}.manifest.json.gz ${message}`},
      ])
    if (r.exitCode !== 0) throw damaged('missing', 'is missing')
    let text: string
    try {
      text = zlib.gunzipSync(r.stdout).toString('utf8')
    } catch (err) {
      throw damaged('unreadable', `cannot be decompressed (${(err as Error).message})`)
    }
    if (sha256(text) !== sha) throw damaged('hash-mismatch', 'does not match the sha256 its metadata records')
    const m: Manifest = new Map()
    for (const [p, t, mode, x, hash] of (JSON.parse(text) as ManifestFile).entries) {
      if (t === 'f') m.set(p, {type: 'file', mode, size: x as number, hash})
      else if (t === 'd') m.set(p, {type: 'dir', mode})
      else m.set(p, {type: 'symlink', mode, link: x as string})
    }
    return m
  }

  private async readAll(): Promise<{
    metas: {id: string; meta?: BackupMeta; problem?: Damage['problem']; error?: string}[]
    incomplete: string[]
  }> {
    const out = await this.conn.must('listing backups', LIST, [this.dir])
    const parts = out.toString('utf8').split('\0')
    const metas: {id: string; meta?: BackupMeta; problem?: Damage['problem']; error?: string}[] = []
    const incomplete: string[] = []
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!
      if (name.endsWith('.part') || name.endsWith('.json.tmp')) {
        incomplete.push(name.replace(/\.part$|\.json\.tmp$/, ''))
        continue
      }
      if (!name.endsWith('.json')) continue
      const id = name.slice(0, -5)
      const text = parts[++i] ?? ''
      if (!ID_PATTERN.test(id)) continue
      try {
        const meta = JSON.parse(text) as BackupMeta | null
        if (
          meta &&
          typeof meta === 'object' &&
          meta.id === id &&
          meta.root &&
          typeof meta.root['' as never] === 'string'
        )
          metas.push({id, meta})
        else metas.push({id, problem: 'invalid', error: 'is not the metadata of this backup'})
      } catch (err) {
        metas.push({id, problem: 'unreadable', error: `is not valid JSON (${(err as Error).message})`})
      }
    }
    metas.sort((a, b) => (a.id < b.id ? -1 : 1))
    return {metas, incomplete}
  }
}

/** Does what the host reports match a manifest entry (type, mode, size and sha256, link target)? */
export function sameEntry(want: ManifestEntry, got: RemoteEntry | undefined): boolean {
  if (!got || got.type !== want.type) return false
  if (want.type === 'symlink') return got.link === want.link
  if (got.mode !== want.mode) return false
  return want.type !== 'file' || (got.size === want.size && got.hash === want.hash)
}

interface Listed {
  path: string
  type: 'file' | 'dir' | 'symlink'
  mode: number
  size: number
  linked: boolean
}

/** `%i %B %l %n` lines of the snapshot rsync: every entry, `h` = hard-linked from the previous backup. */
export function parseSnapshotList(out: Buffer): Listed[] {
  const list: Listed[] = []
  for (let start = 0; start < out.length;) {
    let end = out.indexOf(0x0a, start)
    if (end === -1) end = out.length
    const line = out.subarray(start, end)
    start = end + 1
    const text = line.toString('latin1')
    if (line.length < 25 || text[11] !== ' ' || text[21] !== ' ' || !/^[ch>.][fdL]/.test(text)) continue
    const code = text.slice(0, 11)
    const sp = text.indexOf(' ', 22)
    const size = Number(text.slice(22, sp))
    if (sp === -1 || !Number.isInteger(size)) continue
    let name = line.subarray(sp + 1)
    if (name[name.length - 1] === 0x2f) name = name.subarray(0, -1)
    const rel = decodeName(unescapeName(name))
    const type = code[1] === 'f' ? 'file' : code[1] === 'd' ? 'dir' : 'symlink'
    list.push({path: rel === '.' ? '' : rel, type, mode: permBits(text.slice(12, 21)), size, linked: code[0] === 'h'})
  }
  return list
}

/** `rwsr-xr-t` → 0o5755. */
export function permBits(s: string): number {
  let mode = 0
  // rwx for user, group, other: position i stands for bit 8 - i (an S or T is the special bit alone).
  for (let i = 0; i < 9; i++) if (s[i] !== '-' && s[i] !== 'S' && s[i] !== 'T') mode |= 1 << (8 - i)
  if (s[2] === 's' || s[2] === 'S') mode |= 0o4000
  if (s[5] === 's' || s[5] === 'S') mode |= 0o2000
  if (s[8] === 't' || s[8] === 'T') mode |= 0o1000
  return mode
}
