import crypto from 'node:crypto'
import zlib from 'node:zlib'
import {MAINTENANCE_NAME, MARKER_NAME, type ResolvedConfig} from '../config/resolve.js'
import {EXIT, HotctlError} from '../errors.js'
import {ID_PATTERN} from '../ids.js'
import {compilePatterns, type PathMatcher} from '../plan/patterns.js'
import {base64Bytes, type SshConnection} from '../ssh/connection.js'
import {patchOutgrows} from '../ssh/hash-record.js'
import {ManifestCache} from '../ssh/manifest-cache.js'
import {batches, hashRemote} from '../ssh/remote-files.js'
import {
  parseStatAndHash,
  type RemotePlanWalk,
  type RemoteTree,
  type RemoteTreeEntry,
  STAT_HASH_TAIL,
  statAndHash,
  walkRemoteWithRecord,
} from '../ssh/remote-tree.js'
import type {BackupMeta} from '../state/backups.js'
import {BackupDamagedError, type Damage, type IntegrityReport} from '../store/integrity.js'
import type {Manifest, ManifestEntry} from '../store/manifest.js'
import type {BackupStore, ReleaseMarker, TargetPlan} from './target.js'

/**
 * Copies of entries of the target `$1` (`./path` in $4…) into the pack being made, `$2` (GNU cp
 * --parents: its directories made, symlinks copied as symlinks, modes and times kept; never a
 * link to a live file), then what was copied, as STAT_HASH prints it: the copies are what is
 * recorded. `$3` = 1: the first batch; stale `.part` packs of a killed run go first.
 */
const COPY_IN = `t=$1; d=$2; fresh=$3; shift 3
if [ "$fresh" = 1 ]; then
  for x in "\${d%/*}"/*.part; do [ -d "$x" ] && rm -rf -- "$x"; done
fi
mkdir -p -- "$d" || exit 4
[ $# -gt 0 ] || exit 0
cd -- "$t" || exit 4
cp -P -p --parents -- "$@" "$d/" || exit 3
cd -- "$d" || exit 4
${STAT_HASH_TAIL}`

/**
 * Hard links to copies a tree as deployed holds (`$1`: its pack; paths in $4…, after `--`) into the pack
 * being made, `$2` (`$3` as COPY_IN's): a pack's file is never written after its copy was made, so
 * two packs can share it (never a live file: those are copied). On any failure the links of this
 * batch are removed again (exit 3): those files are then copied, never written through a link.
 */
const LINK_IN = `s=$1; d=$2; fresh=$3; shift 3
if [ "$fresh" = 1 ]; then
  for x in "\${d%/*}"/*.part; do [ -d "$x" ] && rm -rf -- "$x"; done
fi
mkdir -p -- "$d" || exit 4
[ $# -gt 0 ] || exit 0
cd -- "$s" || exit 3
cp -P -p -l --parents -- "$@" "$d/" 2>/dev/null && exit 0
cd -- "$d" && rm -f -- "$@"
exit 3`

/** A tree as deployed, read in one round trip: its metadata, NUL, then its gzipped manifest. */
const DEPLOYED_READ = `cat -- "$1.json" || exit 3
printf '\\0'
cat -- "$1.manifest.json.gz" || exit 3`

/** A backup with more files to copy than this links the copies the live release's tree as deployed holds (LINK_IN). */
const LINK_MIN = 100

/**
 * Makes a backup complete: its manifest (`$4`, gzipped, in base64: an argument, so no upload of
 * its own; `$6`: `manifest`, or `delta` for a delta from a full manifest, see ManifestFile) and
 * pack in place, content flushed, then the metadata `$3` (the commit point). `$5` =
 * 1: a pack of a few copies: its files and directories and the manifest are flushed one by one,
 * then the directory holding them (renames); else the whole filesystem is (syncfs), which also
 * flushes whatever else is writing there, and can take seconds on a busy host.
 */
const COMMIT = `b=$1; id=$2; few=$5; m="$b/$id.$6.json.gz"
printf '%s' "$4" | base64 -d > "$m.tmp" || exit 3
printf '%s' "$3" > "$b/$id.json.tmp" || exit 3
if [ "$few" = 1 ]; then
  find "$b/$id.part" \\( -type f -o -type d \\) -exec sync -- {} + && sync -- "$m.tmp" || exit 3
fi
mv -- "$b/$id.part" "$b/$id" && mv -- "$m.tmp" "$m" || exit 3
if [ "$few" = 1 ]; then sync -- "$b" || exit 3
else sync -f -- "$m" 2>/dev/null || sync
fi
mv -- "$b/$id.json.tmp" "$b/$id.json" && sync -- "$b/$id.json" "$b"`

/** Up to this many copies in a pack are flushed one by one at its commit (COMMIT), more by one syncfs. */
const FLUSH_EACH_MAX = 100

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

/** Releases with a tree as deployed: the names of `<release>.json` in the directory. */
const DEPLOYED_LIST = `cd -- "$1" 2>/dev/null || exit 0
for f in *.json; do [ -f "$f" ] && printf '%s\\n' "\${f%.json}"; done
exit 0`

/**
 * `emit N names…` prints the first N names, NUL-separated, for `xargs -0` or `rsync --from0` on a
 * pipe (printf is a shell builtin: no process per name; no list file, which a full disk would
 * leave empty). The caller then shifts past them itself (the pipe ran in a subshell).
 */
const EMIT = `emit() { n=$1; shift; while [ "$n" -gt 0 ]; do printf '%s\\0' "$1"; shift; n=$((n - 1)); done; }`

/**
 * The restore, on the host, of what the controller planned (only what differs from live), in one
 * script. After the target `$1` and the state dir `$2`, sections of a count then names: entries
 * to remove (extras, and entries of another type in the way; only where every parent is a real
 * directory: never through a symlink out of the target), directories to make, then a count of
 * packs, each `pack count names`: files and symlinks rsync copies from that pack (never in place:
 * temp files renamed at the end, --delay-updates; -I: every listed file is written whatever its
 * size and mtime), then groups `mode count directories`: directory modes, set last (a read-only
 * directory is written into first).
 */
const RESTORE = `t=$1; s=$2; shift 2
${EMIT}
mkdir -p -- "$t" && cd -- "$t" || exit 4
n=$1; shift
{
  i=0
  while [ $i -lt "$n" ]; do
    p=$1; shift; i=$((i + 1))
    d=.; rest=$p; ok=1
    while case $rest in */*) true ;; *) false ;; esac; do
      d="$d/\${rest%%/*}"; rest=\${rest#*/}
      if [ -L "$d" ] || [ ! -d "$d" ]; then ok=0; break; fi
    done
    [ $ok = 1 ] && printf './%s\\0' "$p"
  done
} | xargs -0r rm -rf -- || exit 4
shift "$n"
emit "$@" | xargs -0r mkdir -p -- || exit 4
shift $(($1 + 1))
k=$1; shift
while [ "$k" -gt 0 ]; do
  p=$1; shift
  emit "$@" | rsync -lptgo -I --delay-updates --no-implied-dirs --from0 --files-from=- -- "$s/$p/" "$t/" || exit $?
  shift $(($1 + 1)); k=$((k - 1))
done
while [ $# -gt 0 ]; do
  m=$1; shift
  emit "$@" | xargs -0r chmod "$m" -- || exit 4
  shift $(($1 + 1))
done
exit 0`

/**
 * Removes what a prune decided, in `$1` (the state dir): metadata first (from then on those
 * backups are not complete), then trees as deployed, then objects no kept backup uses, then the
 * pack directories they leave empty. Prints the bytes freed, counted before removal: files whose
 * every hard link goes (a legacy hard-link tree shares its files). `$2` = 1: a dry run that only
 * counts. Sections: count then names (metadata files, trees, objects), then pack directories.
 */
const PRUNE = `s=$1; dry=$2; shift 2
${EMIT}
cd -- "$s" 2>/dev/null || { echo 0; exit 0; }
{
  emit "$@" | xargs -0r stat --printf '%i %h %s\\n' -- 2>/dev/null
  shift $(($1 + 1))
  emit "$@" | xargs -0r sh -c 'find "$@" -type f -printf "%i %n %s\\n"' sh 2>/dev/null
  shift $(($1 + 1))
  emit "$@" | xargs -0r stat --printf '%i %h %s\\n' -- 2>/dev/null
} | awk '{c[$1]++; n[$1]=$2; s[$1]=$3} END {t=0; for (i in c) if (c[i] >= n[i]) t += s[i]; printf "%d\\n", t}'
[ "$dry" = 1 ] && exit 0
emit "$@" | xargs -0r rm -f -- || exit 4
shift $(($1 + 1))
emit "$@" | xargs -0r rm -rf -- || exit 4
shift $(($1 + 1))
emit "$@" | xargs -0r rm -f -- || exit 4
shift $(($1 + 1))
emit $# "$@" | xargs -0r sh -c 'find "$@" -depth -type d -empty -delete' sh 2>/dev/null
exit 0`

/** A tree as deployed: its metadata, read with its manifest. */
interface DeployedMeta {
  release: string
  time: string
  root: Record<string, string>
  /** The backup taken before the deploy: holds the files it did not write (legacy manifests without packs). */
  base?: string
}

type Row = [string, 'f' | 'd' | 'l', number, (number | string)?, (string | number)?, number?]

/**
 * A manifest as stored (gzipped JSON). Version 2: `packs` names the directories (under the state
 * dir) that hold the objects, and each file or symlink row ends with the index of its pack:
 * `[path, 'f', mode, size, sha256, pack]`, `[path, 'l', mode, link, pack]`, `[path, 'd', mode]`.
 * Version 1 (hard-link trees, before packs): no `v`, every object in the backup's own tree.
 */
interface ManifestFile {
  v?: 2
  packs?: string[]
  entries: Row[]
  /**
   * A delta: the backup whose manifest it changes, and the paths it deleted from it; `entries`
   * are the rows it adds or changes. A tree as deployed is a delta from the backup taken before
   * the deploy. A backup's manifest may be a delta from an earlier backup's full manifest, whose
   * sha256 it names (`baseSha`: that backup's metadata may be pruned, its manifest is not);
   * stored as `<id>.delta.json.gz`, a name hotctl versions before deltas do not read.
   */
  base?: string
  baseSha?: string
  deleted?: string[]
}

/** A manifest with the pack (directory under the state dir) holding each file's and symlink's copy. */
interface Snap {
  manifest: Manifest
  packs: Map<string, string>
  /** A backup's: the full manifest it is, or is a delta from (its backup id and sha256). */
  full?: {id: string; sha: string; snap: Snap}
}

const PACK = /^(?:backups|deployed)\/\d{14}$/
const sha256 = (s: string | Buffer) => crypto.createHash('sha256').update(s).digest('hex')
const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Backups on the host, in the state dir beside the target, stored once per content change: each
 * backup has a pack (`backups/<id>/`: copies of the entries no earlier backup holds as they are,
 * at their paths; never links to live files), a manifest (`<id>.manifest.json.gz`: per path its
 * type, mode, size, sha256 or link, and the pack holding it) and its metadata (`<id>.json`, written
 * last: the commit point; `root['']` is the manifest's sha256). A backup reuses the previous
 * backup's copy of a file whose path, mode and content (by the host's hash record, checked by
 * stat) are unchanged, so it copies O(changed) files; the first stores everything once. A file's
 * copy is used by a run of consecutive backups; prune removes the copies that no kept backup
 * uses. Restores are planned here (only what differs from live), checked against the manifest
 * before anything is written, and run by rsync on the host; nothing a restore needs exists only on
 * a controller. Legacy backups (hard-link trees, manifests without packs) are packs that hold
 * their whole tree: they restore, and later backups reuse their files.
 */
export class SshBackupStore implements BackupStore {
  private readonly dir: string
  private readonly deployedDir: string
  private readonly recordFile: string
  /** What a snapshot leaves out: excluded and protected paths, the maintenance marker (as planning does). */
  private readonly skip: PathMatcher
  /** Where on the host a file of a manifest read in this run may be, by content hash (tried in order). */
  private readonly where = new Map<string, string[]>()
  /** `list` as last read, kept current by snapshot and prune (one listing per run, not one per call). */
  private listed?: BackupMeta[]
  /** `list`'s read of the host while it is under way (a caller that asks meanwhile waits for it). */
  private reading?: Promise<BackupMeta[]>
  /** Manifests read or written in this run, by backup id (a restore's verify, the tree as deployed). */
  private readonly snaps = new Map<string, Snap>()
  /** The backup this process took last (the newest: ids only grow). */
  private lastSnapshot?: {id: string; snap: Snap}
  private readonly cache = new ManifestCache()
  /** The full manifest the newest backup likely uses, parsed ahead (prepare): used when the host's metadata names it. */
  private ahead?: {id: string; sha: string; snap: Snap}

  constructor(
    private readonly conn: SshConnection,
    private readonly config: ResolvedConfig,
    private readonly readMarker: () => Promise<ReleaseMarker | null>,
  ) {
    this.dir = `${config.stateDir}/backups`
    this.deployedDir = `${config.stateDir}/deployed`
    // The host's hash record, as SshTarget keeps it (planning and the verify after a sync).
    this.recordFile = `${config.stateDir}/target-hashes.json.gz`
    this.skip = compilePatterns([...config.exclude, ...config.protect, `/${MAINTENANCE_NAME}`])
  }

  /** Where this host's state dir is, for the manifest cache's hint of the full manifest in use. */
  private get cacheKey(): string {
    return `${this.conn.destination}:${this.conn.host.port ?? 22}:${this.config.stateDir}`
  }

  /**
   * A backup follows (a deploy): the full manifest the newest backup used (this controller's hint
   * and cached copy, checked by sha256) is parsed now, while the connection is made, not after
   * planning. Used only if the host's metadata names that very manifest (fullManifest, snap).
   */
  prepare(): void {
    const last = this.cache.last(this.cacheKey)
    const text = last && this.cache.get(last.sha)
    if (!last || text === undefined || !ID_PATTERN.test(last.id)) return
    try {
      const own = parseManifest(text, [`backups/${last.id}`], () => new Error('unreadable'))
      if (own.base !== undefined) return
      const snap: Snap = {manifest: own.manifest, packs: own.packs}
      snap.full = {id: last.id, sha: last.sha, snap}
      this.ahead = {id: last.id, sha: last.sha, snap}
    } catch {
      // only a head start: read as usual
    }
  }

  /** The manifest parsed ahead when it is backup `id`'s full manifest with this sha256 (only for a cached read). */
  private parsedAhead(id: string, sha: string | undefined, opts: {cached?: boolean}): Snap | undefined {
    const a = this.ahead
    if (!opts.cached || !a || a.id !== id || a.sha !== sha) return undefined
    this.ahead = undefined // taken: held by `snaps` from now on
    return a.snap
  }

  async list(): Promise<BackupMeta[]> {
    if (!this.listed) {
      const reading = (this.reading ??= this.readAll().then((r) => r.metas.flatMap((m) => (m.meta ? [m.meta] : []))))
      try {
        const metas = await reading
        if (this.reading === reading) this.listed ??= metas
      } finally {
        if (this.reading === reading) this.reading = undefined
      }
      if (!this.listed) return this.list() // invalidated while it was read: read again
    }
    return [...this.listed]
  }

  /** Forgets what `list` read: others may have changed the backups since (the target calls it when it takes the lock). */
  invalidate(): void {
    this.listed = undefined
    this.reading = undefined
  }

  async ids(): Promise<string[]> {
    return (await this.readAll()).metas.map((r) => r.id)
  }

  async snapshot(id: string, reason: BackupMeta['reason'], plan?: TargetPlan): Promise<BackupMeta> {
    const [walk, prev, marker] = await Promise.all([
      (plan?.walk as RemotePlanWalk | undefined) ?? this.walkLive(this.skip),
      this.list().then((all) => all.at(-1)),
      this.readMarker(),
    ])
    // The previous backup's copies are reused; without its manifest everything is copied again.
    const base = prev ? await this.snap(prev, {cached: true}).catch(() => undefined) : undefined
    const captured = await this.capture(this.dir, id, `backups/${id}`, walk, base, marker?.id)
    // Stored as a delta from the full manifest the previous backup is (or patches) while the delta
    // stays small, as the host's hash record is patched: O(changed), not the whole tree per deploy.
    const full = base?.full
    // Written into this controller's manifest cache as it is encoded; kept once committed.
    const cached = this.cache.writer()
    const tree = (full && encodeDelta(captured.snap, full, cached.write)) ?? encodeFull(captured.snap, cached.write)
    captured.snap.full = tree.base ? full : {id, sha: tree.sha, snap: captured.snap}
    const meta: BackupMeta = {
      id,
      time: new Date().toISOString(),
      reason,
      release: marker?.id ?? null,
      gitSha: marker?.gitSha ?? null,
      files: captured.files,
      bytes: captured.bytes,
      added: captured.added + tree.gz.length,
      protect: this.config.protect,
      // `base`: the backup whose full manifest this one's (a delta) changes.
      root: tree.base ? {'': tree.sha, base: tree.base} : {'': tree.sha},
    }
    const listed = this.listed
    this.listed = undefined
    try {
      await this.commit(
        'backup (commit)',
        this.dir,
        id,
        meta,
        tree.gz,
        captured.copies,
        tree.base ? 'delta' : 'manifest',
      )
    } catch (err) {
      cached.drop()
      throw err
    }
    if (listed) this.listed = [...listed, meta].sort((a, b) => (a.id < b.id ? -1 : 1))
    this.snaps.set(id, captured.snap)
    this.lastSnapshot = {id, snap: captured.snap}
    cached.done(tree.sha)
    // The full manifest the next backup will likely read: parsed ahead by the next deploy (prepare).
    const used = captured.snap.full
    if (used) this.cache.remember(this.cacheKey, used.id, used.sha)
    return meta
  }

  /** The live tree (stat to the nanosecond) with the host's hash record, for a snapshot or restore without planning's walk. */
  private async walkLive(skip: PathMatcher, protect?: PathMatcher): Promise<RemotePlanWalk> {
    const {tree, record} = await walkRemoteWithRecord(this.conn, this.config.target, this.recordFile, skip, protect)
    return {dst: tree, record}
  }

  /**
   * Records the walked tree as `<dir>/<name>`: entries whose path, mode and content (the hash
   * record, while it vouches for the file's stat) match `base` keep base's pack; the rest are
   * copied into `<dir>/<name>.part` and hashed as copied (one round trip per batch of names).
   * When many are to be copied (the first backup after a first deploy: its predecessor was
   * empty), the files the tree as deployed of release `linkFrom` holds as they are live (path,
   * mode, size, and the hash record's hash) are hard-linked from its pack instead: no copy, no
   * hash, no listing of them back. The caller commits it (COMMIT) with its manifest (encodeFull,
   * encodeDelta).
   */
  private async capture(
    dir: string,
    name: string,
    pack: string,
    walk: RemotePlanWalk,
    base: Snap | undefined,
    linkFrom?: string,
  ): Promise<{files: number; bytes: number; added: number; copies: number; snap: Snap}> {
    const {dst, record} = walk
    // In the listing's order (a directory before what it holds): the manifest's order is not its meaning.
    const live = [...dst.entries]
    // Per entry (by index): the base's entry and pack it keeps; neither for a copy or a directory.
    const keptEntry: (ManifestEntry | undefined)[] = new Array(live.length)
    const keptAt: (string | undefined)[] = new Array(live.length)
    // Indexes of the entries to copy.
    let toCopy: number[] = []
    for (let i = 0; i < live.length; i++) {
      const [rel, e] = live[i]!
      if (e.type === 'dir') continue
      const b = base?.manifest.get(rel)
      const from = b && base!.packs.get(rel)
      const same =
        b?.type === e.type &&
        (e.type === 'symlink'
          ? b.link === e.link
          : b.mode === e.mode && b.size === e.size && b.hash === record.peek(rel, e as RemoteTreeEntry))
      if (same && from) {
        keptEntry[i] = b
        keptAt[i] = from
      } else toCopy.push(i)
    }
    const part = `${dir}/${name}.part`
    let linked = 0
    const deployed = linkFrom && toCopy.length > LINK_MIN ? await this.deployedCopies(linkFrom) : undefined
    if (deployed) {
      // Linked: kept as the tree as deployed records it, in this backup's own pack.
      const toLink = toCopy.filter((i) => {
        const [rel, e] = live[i]!
        const d = deployed.get(rel)
        return e.type === 'file' && d?.mode === e.mode && d.size === e.size && d.hash === record.peek(rel, e)
      })
      const failed = new Set(await this.linkIn(part, `${this.config.stateDir}/deployed/${linkFrom}`, toLink, live))
      for (const i of toLink)
        if (!failed.has(i)) {
          keptEntry[i] = deployed.get(live[i]![0])
          keptAt[i] = pack
          linked++
        }
      toCopy = toCopy.filter((i) => keptEntry[i] === undefined)
    }
    const copies = await this.copyIn(
      part,
      toCopy.map((i) => live[i]![0]),
      !deployed,
    )
    const snap: Snap = {manifest: new Map(), packs: new Map()}
    let files = 0
    let bytes = 0
    let added = 0
    for (let i = 0; i < live.length; i++) {
      const [rel, l] = live[i]!
      const kept = keptEntry[i]
      const copy = kept || l.type === 'dir' ? undefined : copies.get(rel)
      const e = copy ?? l
      if (l.type !== 'dir' && !kept && !copy)
        throw new Error(
          `backup: ${rel} vanished from ${this.config.target} on ${this.conn.host.name} while it was copied`,
        )
      const at = keptAt[i] ?? pack
      if (e.type === 'dir') {
        // The base's entry where it says the same (most of them): one object per entry, not two.
        const b = base?.manifest.get(rel)
        snap.manifest.set(rel, b?.type === 'dir' && b.mode === e.mode ? b : {type: 'dir', mode: e.mode})
      } else if (e.type === 'symlink') {
        const same = kept?.type === 'symlink' && kept.mode === e.mode && kept.link === e.link
        snap.manifest.set(rel, same ? kept : {type: 'symlink', mode: e.mode, link: e.link})
        snap.packs.set(rel, at)
      } else {
        const hash = copy ? copy.hash : kept!.hash
        if (!hash) throw new Error(`backup: ${rel} could not be read on ${this.conn.host.name}`)
        const same = !copy && kept!.mode === e.mode && kept!.size === e.size
        snap.manifest.set(rel, same ? kept! : {type: 'file', mode: e.mode, size: e.size, hash})
        snap.packs.set(rel, at)
        files++
        bytes += e.size
        if (copy) added += e.size
      }
    }
    return {files, bytes, added, copies: toCopy.length + linked, snap}
  }

  /**
   * The files of the tree as deployed of `release` whose copies its own pack holds (the files
   * that deploy wrote), by path; undefined when it cannot be read as written (then nothing is
   * linked from it: the files are copied).
   */
  private async deployedCopies(release: string): Promise<Map<string, ManifestEntry> | undefined> {
    if (!ID_PATTERN.test(release)) return undefined
    const r = await this.conn.run(DEPLOYED_READ, [`${this.deployedDir}/${release}`], {exact: true})
    const nul = r.stdout.indexOf(0)
    if (r.exitCode !== 0 || nul === -1) return undefined
    try {
      const meta = JSON.parse(r.stdout.toString('utf8', 0, nul)) as DeployedMeta
      const sha = meta?.release === release ? meta.root?.[''] : undefined
      const json = zlib.gunzipSync(r.stdout.subarray(nul + 1))
      if (typeof sha !== 'string' || sha256(json) !== sha) return undefined
      return ownFileRows(json, `deployed/${release}`)
    } catch {
      return undefined
    }
  }

  /**
   * Hard links of `from`'s copies of live entries (by index) into the pack `part` (made afresh),
   * a round trip per batch (LINK_IN); the indexes of those that could not be linked, to copy.
   */
  private async linkIn(part: string, from: string, indexes: number[], live: [string, unknown][]): Promise<number[]> {
    const failed: number[] = []
    let at = 0
    for (const [i, batch] of (indexes.length ? batches(indexes.map((k) => live[k]![0])) : [[]]).entries()) {
      const r = await this.conn.run(LINK_IN, [from, part, i === 0 ? '1' : '0', ...batch], {
        timeoutMs: Math.max(this.conn.settings.timeoutMs, 600_000),
      })
      if (r.exitCode === 3) failed.push(...indexes.slice(at, at + batch.length))
      else if (r.exitCode !== 0)
        throw new Error(
          `backup (linking copies on the host) on ${this.conn.host.name} failed (exit ${r.exitCode}): ${r.stderr.trim()}`,
        )
      at += batch.length
    }
    return failed
  }

  /**
   * Copies of live entries into the pack `part` (made afresh when `fresh`), as copied: stat and
   * sha256 (COPY_IN, a round trip per batch).
   */
  private async copyIn(
    part: string,
    rels: string[],
    fresh = true,
  ): Promise<Map<string, RemoteTreeEntry & {hash?: string}>> {
    const copies = new Map<string, RemoteTreeEntry & {hash?: string}>()
    for (const [i, batch] of (rels.length ? batches(rels) : [[]]).entries()) {
      if (!fresh && batch.length === 0) break // the pack was made (linkIn)
      const out = await this.conn.must(
        'backup (copying changed files on the host)',
        COPY_IN,
        [this.config.target, part, i === 0 && fresh ? '1' : '0', ...batch.map((p) => `./${p}`)],
        {timeoutMs: Math.max(this.conn.settings.timeoutMs, 600_000), exact: true},
      )
      if (batch.length)
        for (const [rel, e] of parseStatAndHash(out, `${part} on ${this.conn.host.name}`)) copies.set(rel, e)
    }
    return copies
  }

  async files(id: string): Promise<Manifest> {
    const {manifest, packs} = (await this.checked(id)).snap
    this.remember(packs, manifest)
    return manifest
  }

  /**
   * The tree as deployed: its manifest (from the deploy's walk of the host, brought up to date by
   * its verify, hashes from the host's hash record) and, in `deployed/<release>/`, copies of the
   * files the deploy wrote (hashed as copied): a later hand edit of a live file cannot reach
   * them. Unwritten files' content is in the packs of the backup taken before the deploy, so this
   * is O(changed) (a backup pruned since takes that content with it). Without the deploy's walk, or
   * when its hashes do not match that backup: the tree is captured like a backup.
   * The newest `keep` of them survive a prune.
   */
  async recordDeployed(release: string, plan?: TargetPlan): Promise<void> {
    // The deploy's own backup, taken by this process, is the newest one.
    const prev = this.lastSnapshot ? undefined : (await this.list()).at(-1)
    const base =
      this.lastSnapshot ??
      (prev
        ? await this.snap(prev).then(
            (snap) => ({id: prev.id, snap}),
            () => undefined,
          )
        : undefined)
    const walked = plan?.walk as RemotePlanWalk | undefined
    const captured = async () => {
      const live = await this.walkLive(this.skip)
      const c = await this.capture(this.deployedDir, release, `deployed/${release}`, live, base?.snap)
      return {...encodeFull(c.snap), copies: c.copies}
    }
    const tree =
      (walked && plan && base ? await this.deployedFromWalk(release, plan, walked, base) : undefined) ??
      (await captured())
    const meta: DeployedMeta = {release, time: new Date().toISOString(), root: {'': tree.sha}}
    await this.commit(
      'recording the tree as deployed',
      this.deployedDir,
      release,
      meta,
      tree.gz,
      tree.copies,
      'manifest',
    )
  }

  /**
   * Writes `<dir>/<id>` (its gzipped manifest or delta, then its metadata) on the host with COMMIT:
   * a pack of up to FLUSH_EACH_MAX copies is flushed file by file, a bigger one by one syncfs.
   */
  private commit(
    what: string,
    dir: string,
    id: string,
    meta: object,
    gz: Buffer,
    copies: number,
    kind: 'manifest' | 'delta',
  ): Promise<unknown> {
    return this.conn.must(what, COMMIT, [
      dir,
      id,
      JSON.stringify(meta),
      base64Bytes(gz),
      copies <= FLUSH_EACH_MAX ? '1' : '0',
      kind,
    ])
  }

  /**
   * The manifest of the tree as deployed, the written files copied, as a delta from the backup
   * taken before the deploy (`base`): what the deploy wrote or changed, and what it deleted; the
   * rest is that backup's, copies included. O(changed) in size. Undefined when the walk cannot
   * vouch for every unwritten file being as that backup holds it.
   */
  private async deployedFromWalk(
    release: string,
    plan: TargetPlan,
    walked: RemotePlanWalk,
    base: {id: string; snap: Snap},
  ): Promise<{sha: string; gz: Buffer; copies: number} | undefined> {
    const {dst, record} = walked
    const written = [...plan.changes.added, ...plan.changes.changed].filter(
      (rel) => dst.entries.get(rel)?.type === 'file',
    )
    const copies = await this.copyIn(`${this.deployedDir}/${release}.part`, written)
    const entries: Row[] = []
    for (const [rel, e] of dst.entries) {
      if (rel === MARKER_NAME) continue
      const c = copies.get(rel)
      if (c) {
        if (!c.hash || c.type !== 'file') return undefined
        entries.push([rel, 'f', c.mode, c.size, c.hash, 0])
        continue
      }
      const b = base.snap.manifest.get(rel)
      if (e.type === 'dir') {
        if (b?.type !== 'dir' || b.mode !== e.mode) entries.push([rel, 'd', e.mode])
      } else if (e.type === 'symlink') {
        // A link's content is its target: a changed one needs no copy.
        if (b?.type !== 'symlink' || b.link !== e.link) entries.push([rel, 'l', e.mode, e.link, 0])
      } else {
        // Not written: the backup taken before the deploy must hold it as it is.
        const hash = record.peek(rel, e)
        if (b?.type !== 'file' || !hash || hash !== b.hash || b.size !== e.size || b.mode !== e.mode) return undefined
      }
    }
    const deleted = [...base.snap.manifest.keys()].filter((rel) => rel !== MARKER_NAME && !dst.entries.has(rel))
    // As JSON.stringify({v, base, packs, entries, deleted}) writes it, a row at a time (ManifestOut).
    const out = new ManifestOut()
    const head: ManifestFile = {v: 2, base: base.id, packs: [`deployed/${release}`], entries: []}
    out.write(`${JSON.stringify(head).slice(0, -3)}[`)
    for (let i = 0; i < entries.length; i++) out.write((i ? ',' : '') + JSON.stringify(entries[i]))
    out.write(`],"deleted":${JSON.stringify(deleted)}}`)
    return {...out.end(), copies: written.length}
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
    const own = await this.readManifest(`${this.deployedDir}/${release}`, release, meta.root[''], [
      `deployed/${release}`,
      // Legacy: files it did not write are in the backup taken before the deploy (a whole tree).
      ...(meta.base && ID_PATTERN.test(meta.base) ? [`backups/${meta.base}`] : []),
    ])
    let {manifest, packs} = own
    if (own.base) {
      // A delta from the backup taken before the deploy: without that backup (pruned) there is no tree.
      const baseMeta = (await this.list()).find((b) => b.id === own.base)
      const base = baseMeta ? await this.snap(baseMeta).catch(() => undefined) : undefined
      if (!base) return undefined
      manifest = new Map(base.manifest)
      packs = new Map(base.packs)
      for (const rel of [MARKER_NAME, ...own.deleted]) {
        manifest.delete(rel)
        packs.delete(rel)
      }
      for (const [rel, e] of own.manifest) manifest.set(rel, e)
      for (const [rel, p] of own.packs) packs.set(rel, p)
    }
    this.remember(packs, manifest)
    return manifest
  }

  async content(hash: string): Promise<Buffer> {
    const files = this.where.get(hash)
    if (!files) throw new Error(`no tree read in this run lists content ${hash}`)
    let r = await this.conn.run(CAT, [files[0]!], {exact: true})
    for (const f of files.slice(1)) {
      if (r.exitCode === 0 && sha256(r.stdout) === hash) break
      r = await this.conn.run(CAT, [f], {exact: true})
    }
    const file = files.at(-1)
    if (r.exitCode !== 0) throw new Error(`${file} on ${this.conn.host.name} is missing`)
    if (sha256(r.stdout) !== hash)
      throw new Error(`${file} on ${this.conn.host.name} is not the content its manifest records`)
    return r.stdout
  }

  /** Where on the host each file of a manifest read in this run is, by content hash (for `content`). */
  private remember(packs: Map<string, string>, manifest: Manifest): void {
    for (const [rel, e] of manifest) {
      if (e.type !== 'file' || !e.hash) continue
      const at = this.where.get(e.hash) ?? []
      for (const p of (packs.get(rel) ?? '').split('\0').filter(Boolean)) at.push(`${this.config.stateDir}/${p}/${rel}`)
      this.where.set(e.hash, at)
    }
  }

  /**
   * Only what differs from live is written: the live tree is walked (with the host's hash record,
   * files it does not vouch for hashed on the host), the objects to copy are checked against the
   * manifest (a damaged backup is refused with the target untouched), then one script on the host
   * removes extras, makes directories and copies from the packs with rsync.
   */
  async restore(id: string): Promise<{written: string[]; removed: string[]}> {
    const {meta, snap} = await this.checked(id)
    const d = await this.differences(meta, snap.manifest)
    const objects = d.writes.filter(([, e]) => e.type !== 'dir')
    const at = (rel: string) => packOf(snap, rel)
    const found = await statAndHash(
      this.conn,
      this.config.stateDir,
      objects.map(([rel]) => `${at(rel)}/${rel}`),
    )
    const damage = objects.flatMap(([rel, want]) => this.damage(id, rel, want, found.get(`${at(rel)}/${rel}`)))
    if (damage.length > 0) throw new BackupDamagedError(id, damage)
    const dirs = d.writes.filter(([, e]) => e.type === 'dir')
    const byMode = groupBy(
      dirs,
      ([, e]) => e.mode.toString(8),
      ([rel]) => `./${rel}`,
    )
    const byPack = groupBy(
      objects,
      ([rel]) => at(rel),
      ([rel]) => rel,
    )
    await this.conn.must(
      'restore (rsync on the host)',
      RESTORE,
      [
        this.config.target,
        this.config.stateDir,
        ...count([...d.extras, ...d.inTheWay]),
        ...count(dirs.filter(([rel]) => d.live.entries.get(rel)?.type !== 'dir').map(([rel]) => `./${rel}`)),
        String(byPack.size),
        ...[...byPack].flatMap(([pack, rels]) => [pack, ...count(rels)]),
        ...[...byMode].flatMap(([mode, rels]) => [mode, ...count(rels)]),
      ],
      {timeoutMs: Math.max(this.conn.settings.timeoutMs, 600_000)},
    )
    return {written: objects.map(([rel]) => rel), removed: d.extras}
  }

  /** By content: the live tree against the manifest (hash record checked by stat; what it does not vouch for hashed on the host). */
  async verify(id: string): Promise<string[]> {
    const {meta, snap} = await this.checked(id)
    const d = await this.differences(meta, snap.manifest)
    return [...new Set([...d.writes.map(([rel]) => rel), ...d.extras])].sort()
  }

  /**
   * How the live tree differs from a manifest, protected paths (now or when the backup was taken)
   * and excluded ones left alone: entries to write (parents first), extras to remove (a directory
   * that holds protected content is kept), and live entries of another type in the way of a write.
   */
  private async differences(
    meta: BackupMeta,
    manifest: Manifest,
  ): Promise<{live: RemoteTree; writes: [string, ManifestEntry][]; extras: string[]; inTheWay: string[]}> {
    const protect = [...this.config.protect, ...(meta.protect ?? [])]
    const skip = compilePatterns([...this.config.exclude, ...protect, `/${MAINTENANCE_NAME}`])
    const {dst: live, record} = await this.walkLive(skip, compilePatterns(protect))
    const skipped = (rel: string) => {
      for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) if (skip(rel.slice(0, i), true)) return true
      return skip(rel, manifest.get(rel)?.type === 'dir')
    }
    const wanted = [...manifest].filter(([rel]) => !skipped(rel))
    const entries = live.entries as Map<string, RemoteTreeEntry>
    // Files whose content decides and the record does not vouch for: hashed on the host.
    const unknown = wanted.flatMap(([rel, want]) => {
      const have = entries.get(rel)
      return want.type === 'file' &&
        have?.type === 'file' &&
        have.size === want.size &&
        have.mode === want.mode &&
        !record.peek(rel, have)
        ? [rel]
        : []
    })
    const hashed = unknown.length ? await hashRemote(this.conn, this.config.target, unknown) : new Map<string, string>()
    const holdsProtected = (rel: string) =>
      [...live.dirsWithProtected].some((p) => p === rel || p.startsWith(`${rel}/`))
    const writes: [string, ManifestEntry][] = []
    const inTheWay: string[] = []
    for (const [rel, want] of wanted) {
      const have = entries.get(rel)
      if (have && sameEntry(want, have, () => hashed.get(rel) ?? record.peek(rel, have))) continue
      writes.push([rel, want])
      if (have && have.type !== want.type) inTheWay.push(rel)
      if (have?.type === 'dir' && want.type !== 'dir' && holdsProtected(rel))
        throw new HotctlError(
          `cannot restore ${rel} on ${this.conn.host.name}: a directory there holds protected paths`,
          EXIT.failed,
          'Move the protected content out of the way (or change `protect`), then run the rollback again; nothing was written.',
        )
    }
    writes.sort(([a], [b]) => byPath(a, b))
    const extras = [...live.entries]
      .filter(([rel, e]) => !manifest.has(rel) && !(e.type === 'dir' && holdsProtected(rel)))
      .map(([rel]) => rel)
      .sort(byPath)
    return {live, writes, extras, inTheWay}
  }

  async check(id?: string): Promise<IntegrityReport> {
    const {metas, incomplete} = await this.readAll()
    const report: IntegrityReport = {
      backups: [],
      damage: [],
      checked: {backups: 0, chunks: 0, objects: 0, bytes: 0},
      info: {orphanObjects: 0, orphanBytes: 0, tempFiles: [], incompleteBackups: id ? [] : incomplete, strayFiles: []},
    }
    const read: {id: string; files: number | null; damage: Damage[]; snap?: Snap}[] = []
    for (const r of metas.filter((m) => id === undefined || m.id === id)) {
      report.checked.backups++
      if (!r.meta) {
        const message = `metadata backups/${r.id}.json ${r.error}`
        read.push({id: r.id, files: null, damage: [{backup: r.id, what: 'metadata', problem: r.problem!, message}]})
        continue
      }
      try {
        const snap = await this.snap(r.meta)
        report.checked.chunks++
        read.push({id: r.id, files: r.meta.files, damage: [], snap})
      } catch (err) {
        const damage =
          err instanceof BackupDamagedError
            ? err.damage[0]!
            : {backup: r.id, what: 'chunk' as const, problem: 'unreadable' as const, message: String(err)}
        read.push({id: r.id, files: null, damage: [damage]})
      }
    }
    // Every object once, however many backups use it.
    const objects = new Map<string, ManifestEntry>()
    for (const {snap} of read)
      for (const [rel, e] of snap?.manifest ?? []) if (e.type !== 'dir') objects.set(`${packOf(snap!, rel)}/${rel}`, e)
    for (const e of objects.values())
      if (e.type === 'file') {
        report.checked.objects++
        report.checked.bytes += e.size ?? 0
      }
    const found = await statAndHash(this.conn, this.config.stateDir, [...objects.keys()])
    for (const r of read) {
      for (const [rel, e] of r.snap?.manifest ?? [])
        if (e.type !== 'dir') {
          const at = `${packOf(r.snap!, rel)}/${rel}`
          r.damage.push(...this.damage(r.id, rel, e, found.get(at)))
        }
      report.damage.push(...r.damage)
      report.backups.push({id: r.id, ok: r.damage.length === 0, files: r.files, damage: r.damage.length})
    }
    return report
  }

  /**
   * Removes backups beyond `keep` (and pinned ones stay), trees as deployed beyond `keep`, and the
   * objects no kept backup uses. A copy is used by consecutive backups only (each reuses its
   * predecessor's), so an object a removed backup used is still needed only if the nearest kept
   * backup before or after it uses it: two manifests per removed backup, never the whole store.
   */
  async prune(
    keep: number,
    pinned: string[],
    opts: {dryRun?: boolean} = {},
  ): Promise<{removed: string[]; freedBytes: number}> {
    const all = await this.list()
    const kept = new Set(all.slice(-keep).map((b) => b.id))
    for (const id of pinned) kept.add(id)
    const removed = all.filter((b) => !kept.has(b.id))
    // Trees as deployed (hotctl diff) of the newest `keep` releases stay.
    const deployed = (await this.conn.must('listing trees as deployed', DEPLOYED_LIST, [this.deployedDir]))
      .toString('utf8')
      .split('\n')
      .filter((r) => ID_PATTERN.test(r))
      .sort()
      .slice(0, -keep || undefined)
    if (removed.length === 0 && deployed.length === 0) return {removed: [], freedBytes: 0}
    const objects = new Set<string>()
    const objectsOf = async (m: BackupMeta | undefined) => {
      if (!m) return new Set<string>()
      const {manifest, packs} = await this.snap(m, {cached: true})
      const out = new Set<string>()
      for (const [rel, e] of manifest) if (e.type !== 'dir') out.add(`${packOf({manifest, packs}, rel)}/${rel}`)
      return out
    }
    for (const r of removed) {
      const i = all.indexOf(r)
      const before = all
        .slice(0, i)
        .reverse()
        .find((b) => kept.has(b.id))
      const after = all.slice(i + 1).find((b) => kept.has(b.id))
      try {
        const [own, prev, next] = await Promise.all([objectsOf(r), objectsOf(before), objectsOf(after)])
        for (const o of own) if (!prev.has(o) && !next.has(o)) objects.add(o)
      } catch {
        // A manifest that cannot be read: its objects stay (`backups verify` names the damage).
      }
    }
    // A full manifest stays while a kept backup's manifest is a delta from it (its metadata goes);
    // one no backup needs any more goes with the last backup that did.
    const bases = new Set(all.flatMap((b) => (kept.has(b.id) && b.root.base ? [b.root.base] : [])))
    const listed = new Set(all.map((b) => b.id))
    const manifests = new Set<string>()
    for (const b of removed) {
      if (!bases.has(b.id)) manifests.add(b.root.base ? `${b.id}.delta` : `${b.id}.manifest`)
      const base = b.root.base
      if (base && ID_PATTERN.test(base) && !listed.has(base) && !bases.has(base)) manifests.add(`${base}.manifest`)
    }
    if (!opts.dryRun) this.listed = undefined
    const out = await this.conn.must('prune', PRUNE, [
      this.config.stateDir,
      opts.dryRun ? '1' : '0',
      ...count([
        ...removed.map((b) => `./backups/${b.id}.json`),
        ...[...manifests].map((name) => `./backups/${name}.json.gz`),
        ...deployed.flatMap((r) => [`./deployed/${r}.json`, `./deployed/${r}.manifest.json.gz`]),
      ]),
      ...count(deployed.map((r) => `./deployed/${r}`)),
      ...count([...objects].map((o) => `./${o}`)),
      ...removed.map((b) => `./backups/${b.id}`),
    ])
    if (!opts.dryRun) this.listed = all.filter((b) => kept.has(b.id))
    return {removed: removed.map((b) => b.id), freedBytes: Number(out.toString().trim()) || 0}
  }

  /** A missing or different object of backup `id`, as damage. */
  private damage(
    id: string,
    rel: string,
    want: ManifestEntry,
    got: (RemoteTreeEntry & {hash?: string}) | undefined,
  ): Damage[] {
    if (got && sameEntry(want, got, () => got.hash)) return []
    const problem: Damage['problem'] = !got
      ? 'missing'
      : want.type === 'file' && got.size !== want.size
        ? 'size-mismatch'
        : 'hash-mismatch'
    return [
      {
        backup: id,
        what: 'object',
        problem,
        path: rel,
        hash: want.hash,
        message: `${rel} in backup ${id} on ${this.conn.host.name} is ${problem === 'missing' ? 'missing' : 'not what its manifest records'}`,
      },
    ]
  }

  /** A backup's metadata and manifest, the manifest checked against the metadata's sha256; throws when damaged. */
  private async checked(id: string): Promise<{meta: BackupMeta; snap: Snap}> {
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
    return {meta: r.meta, snap: await this.snap(r.meta)}
  }

  /**
   * A backup's manifest, read once per run. `cached`: from this controller's manifest cache when it
   * holds the one the metadata names (a backup reusing its predecessor's copies); `backups
   * verify` and restores always read the host's.
   */
  private async snap(meta: BackupMeta, opts: {cached?: boolean} = {}): Promise<Snap> {
    const known = this.snaps.get(meta.id)
    if (known) return known
    const sha = meta.root['']!
    const ahead = meta.root.base === undefined ? this.parsedAhead(meta.id, sha, opts) : undefined
    if (ahead) {
      this.snaps.set(meta.id, ahead)
      return ahead
    }
    // A delta has a name of its own: a hotctl that predates deltas finds no manifest (damage, never a partial tree).
    const own = await this.readManifest(`${this.dir}/${meta.id}`, meta.id, sha, [`backups/${meta.id}`], {
      ...opts,
      delta: meta.root.base !== undefined,
    })
    let snap: Snap
    if (own.base === undefined) snap = {manifest: own.manifest, packs: own.packs}
    else {
      // A delta from an earlier backup's full manifest, read (and checked) too.
      if (own.baseSha === undefined || own.base !== meta.root.base)
        throw damagedManifest(meta.id, sha, 'invalid', `${meta.id}.delta.json.gz does not name the manifest it changes`)
      const full = await this.fullManifest(meta.id, own.base, own.baseSha, opts)
      snap = {manifest: new Map(full.manifest), packs: new Map(full.packs)}
      for (const rel of own.deleted) {
        snap.manifest.delete(rel)
        snap.packs.delete(rel)
      }
      for (const [rel, e] of own.manifest) snap.manifest.set(rel, e)
      for (const [rel, p] of own.packs) snap.packs.set(rel, p)
      snap.full = full.full
    }
    snap.full ??= {id: meta.id, sha, snap}
    this.snaps.set(meta.id, snap)
    return snap
  }

  /**
   * The full manifest of backup `base` (its metadata may be pruned: the manifest stays while a kept
   * backup's delta needs it), checked against `sha`; damage is `id`'s, the backup that needs it.
   */
  private async fullManifest(id: string, base: string, sha: string, opts: {cached?: boolean}): Promise<Snap> {
    const known = this.snaps.get(base)
    if (known?.full?.sha === sha && known.full.snap === known) return known
    const ahead = this.parsedAhead(base, sha, opts)
    if (ahead) {
      if (!this.snaps.has(base)) this.snaps.set(base, ahead)
      return ahead
    }
    try {
      const own = await this.readManifest(`${this.dir}/${base}`, base, sha, [`backups/${base}`], opts)
      if (own.base !== undefined)
        throw damagedManifest(base, sha, 'invalid', `${base}.manifest.json.gz is a delta, not a full manifest`)
      const snap: Snap = {manifest: own.manifest, packs: own.packs}
      snap.full = {id: base, sha, snap}
      if (!this.snaps.has(base)) this.snaps.set(base, snap)
      return snap
    } catch (err) {
      if (!(err instanceof BackupDamagedError)) throw err
      throw new BackupDamagedError(
        id,
        err.damage.map((d) => ({...d, backup: id, message: `${d.message} (the base of backup ${id})`})),
      )
    }
  }

  /**
   * `<tree>.manifest.json.gz` (`delta`: `<tree>.delta.json.gz`, a backup's delta), checked against the sha256 its metadata records; throws
   * BackupDamagedError. A legacy manifest (no packs) has its objects in `legacy` (tried in order).
   */
  private async readManifest(
    tree: string,
    id: string,
    sha: string | undefined,
    legacy: string[],
    opts: {cached?: boolean; delta?: boolean} = {},
  ): Promise<Snap & {base?: string; baseSha?: string; deleted: string[]}> {
    const name = tree.slice(tree.lastIndexOf('/', tree.lastIndexOf('/') - 1) + 1)
    const kind = opts.delta ? 'delta' : 'manifest'
    const damaged = (problem: Damage['problem'], message: string) =>
      new BackupDamagedError(id, [
        {backup: id, what: 'chunk', problem, hash: sha, message: `manifest ${name}.${kind}.json.gz ${message}`},
      ])
    let text = opts.cached && sha ? this.cache.get(sha) : undefined
    if (text === undefined) {
      const r = await this.conn.run(CAT, [`${tree}.${kind}.json.gz`], {exact: true})
      if (r.exitCode !== 0) throw damaged('missing', 'is missing')
      try {
        text = zlib.gunzipSync(r.stdout).toString('utf8')
      } catch (err) {
        throw damaged('unreadable', `cannot be decompressed (${(err as Error).message})`)
      }
      if (sha256(text) !== sha) throw damaged('hash-mismatch', 'does not match the sha256 its metadata records')
      if (opts.cached) this.cache.put(sha, text)
    }
    return parseManifest(text, legacy, damaged)
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

/**
 * A manifest's JSON (`text`, already checked against its sha256) as a Snap, with a delta's base and
 * deletions; `damaged(problem, message)` is what a manifest that names no valid pack throws. A
 * legacy manifest (no packs) has its objects in `legacy` (tried in order).
 */
function parseManifest(
  text: string,
  legacy: string[],
  damaged: (problem: Damage['problem'], message: string) => Error,
): Snap & {base?: string; baseSha?: string; deleted: string[]} {
  const file = JSON.parse(text) as ManifestFile
  const packs = file.v === 2 ? (file.packs ?? []) : undefined
  if (packs && !packs.every((p) => PACK.test(p))) throw damaged('invalid', 'names a pack outside the state dir')
  const legacyAt = legacy.join('\0')
  if (file.base !== undefined && !ID_PATTERN.test(file.base)) throw damaged('invalid', 'names no backup it is based on')
  if (file.baseSha !== undefined && !/^[0-9a-f]{64}$/.test(file.baseSha))
    throw damaged('invalid', 'names no manifest it is based on')
  const snap = {
    manifest: new Map(),
    packs: new Map(),
    base: file.base,
    baseSha: file.baseSha,
    deleted: file.deleted ?? [],
  }
  for (const [p, t, mode, x, y, z] of file.entries) {
    if (t === 'd') {
      snap.manifest.set(p, {type: 'dir', mode})
      continue
    }
    const at = packs ? packs[(t === 'f' ? z : y) as number] : legacyAt
    if (at === undefined) throw damaged('invalid', `names no pack for ${p}`)
    snap.packs.set(p, at)
    if (t === 'f') snap.manifest.set(p, {type: 'file', mode, size: x as number, hash: y as string})
    else snap.manifest.set(p, {type: 'symlink', mode, link: x as string})
  }
  return snap
}

/**
 * The file rows `[path, 'f', mode, size, sha256, pack]` of a version 2 manifest's JSON whose pack
 * is `pack`, read from its bytes (as JSON.stringify writes it): no string of the whole manifest and
 * no array per row, which for 20,000 rows is megabytes more at a deploy's peak. Undefined when it is
 * not such a manifest. `["` starts a row or an array of strings (never inside a string: a quote there
 * is escaped); what is not a file row is skipped.
 */
export function ownFileRows(json: Buffer, pack: string): Map<string, ManifestEntry> | undefined {
  const head = '{"v":2,'
  const packsAt = json.indexOf('"packs":[')
  if (json.toString('latin1', 0, head.length) !== head || packsAt === -1) return undefined
  const packsEnd = json.indexOf(']', packsAt)
  const packs = JSON.parse(json.toString('utf8', packsAt + 8, packsEnd + 1)) as string[]
  const own = packs.indexOf(pack)
  if (own === -1) return undefined
  const out = new Map<string, ManifestEntry>()
  let p = 0
  const int = () => {
    const from = p
    let v = 0
    while (json[p]! >= 0x30 && json[p]! <= 0x39) v = v * 10 + json[p++]! - 0x30
    return p > from && p - from < 16 ? v : -1
  }
  const skip = (text: string) => {
    for (let k = 0; k < text.length; k++) if (json[p + k] !== text.charCodeAt(k)) return false
    p += text.length
    return true
  }
  for (let at = json.indexOf('["', packsEnd); at !== -1; at = json.indexOf('["', p)) {
    p = at + 2
    let escaped = false
    while (p < json.length && json[p] !== 0x22) {
      if (json[p] === 0x5c) {
        escaped = true
        p++
      }
      p++
    }
    if (p >= json.length) break
    const rel = escaped
      ? (JSON.parse(json.toString('utf8', at + 1, p + 1)) as string)
      : json.toString('utf8', at + 2, p)
    p++
    if (!skip(',"f",')) continue
    const mode = int()
    if (mode < 0 || !skip(',')) continue
    const size = int()
    if (size < 0 || !skip(',"')) continue
    const hash = json.toString('latin1', p, p + 64)
    p += 64
    if (!/^[0-9a-f]{64}$/.test(hash) || !skip('",')) continue
    if (int() === own && skip(']')) out.set(rel, {type: 'file', mode, size, hash})
  }
  return out
}

/** A backup's manifest: the sha256 of its JSON (the metadata's `root['']`) and the JSON gzipped (as stored). */
interface Encoded {
  sha: string
  gz: Buffer
  /** A delta: the backup whose full manifest it changes. */
  base?: string
}

/** Characters of JSON per piece of ManifestOut: a string below V8's large-object size, gone at the next scavenge. */
const PIECE = 96 * 1024

/**
 * A manifest's JSON written in pieces: each is hashed, gzipped (a gzip member each: a gzip file
 * may hold several, and gunzip reads them as one) and handed to `sink` (the manifest cache) as it
 * comes. Neither the JSON nor an array of its rows is ever whole: at 20,000 entries they were
 * megabytes at a deploy's peak.
 */
class ManifestOut {
  private readonly hash = crypto.createHash('sha256')
  private readonly gz: Buffer[] = []
  private piece: string[] = []
  private size = 0

  constructor(private readonly sink?: (piece: string) => void) {}

  write(text: string): void {
    this.piece.push(text)
    this.size += text.length
    if (this.size >= PIECE) this.flush()
  }

  end(): {sha: string; gz: Buffer} {
    this.flush()
    return {sha: this.hash.digest('hex'), gz: Buffer.concat(this.gz)}
  }

  private flush(): void {
    const text = this.piece.join('')
    this.piece = []
    this.size = 0
    if (!text) return
    this.hash.update(text)
    this.gz.push(zlib.gzipSync(text, {level: 1}))
    this.sink?.(text)
  }
}

/** A manifest written whole: every entry, each file and symlink with the index of its pack. */
function encodeFull(snap: Snap, sink?: (piece: string) => void): Encoded {
  const packs = [...new Set(snap.packs.values())]
  const packIndex = new Map(packs.map((p, i) => [p, i]))
  // As JSON.stringify({v: 2, packs, entries}) writes it, a row at a time.
  const out = new ManifestOut(sink)
  out.write(`{"v":2,"packs":${JSON.stringify(packs)},"entries":[`)
  let sep = ''
  for (const [rel, e] of snap.manifest) {
    out.write(sep + JSON.stringify(row(rel, e, snap.packs.get(rel), packs, packIndex)))
    sep = ','
  }
  out.write(']}')
  return out.end()
}

/**
 * A manifest as a delta from `full` (what it adds or changes, what it deletes), or undefined when
 * the delta would outgrow the rule the host's hash record follows (patchOutgrows): then the
 * manifest is written whole, and later backups are deltas from it.
 */
function encodeDelta(
  snap: Snap,
  full: {id: string; sha: string; snap: Snap},
  sink?: (piece: string) => void,
): Encoded | undefined {
  const base = full.snap
  const limit = (n: number) => patchOutgrows(base.manifest.size, n)
  const packs: string[] = []
  const packIndex = new Map<string, number>()
  const entries: Row[] = []
  for (const [rel, e] of snap.manifest) {
    const b = base.manifest.get(rel)
    const at = snap.packs.get(rel)
    if (b && (b === e || sameManifestEntry(b, e)) && base.packs.get(rel) === at) continue
    entries.push(row(rel, e, at, packs, packIndex))
    if (limit(entries.length)) return undefined
  }
  const deleted: string[] = []
  for (const rel of base.manifest.keys()) if (!snap.manifest.has(rel)) deleted.push(rel)
  if (limit(entries.length + deleted.length)) return undefined
  return {...encode({v: 2, base: full.id, baseSha: full.sha, packs, entries, deleted}, sink), base: full.id}
}

function row(rel: string, e: ManifestEntry, at: string | undefined, packs: string[], index: Map<string, number>): Row {
  if (e.type === 'dir') return [rel, 'd', e.mode]
  let i = index.get(at!)
  if (i === undefined) index.set(at!, (i = packs.push(at!) - 1))
  return e.type === 'symlink' ? [rel, 'l', e.mode, e.link, i] : [rel, 'f', e.mode, e.size, e.hash, i]
}

function encode(file: ManifestFile, sink?: (piece: string) => void): Encoded {
  // The manifest travels gzipped; its sha256 is of the JSON.
  const out = new ManifestOut(sink)
  out.write(JSON.stringify(file))
  return out.end()
}

const sameManifestEntry = (a: ManifestEntry, b: ManifestEntry) =>
  a.type === b.type && a.mode === b.mode && a.size === b.size && a.hash === b.hash && a.link === b.link

const damagedManifest = (id: string, sha: string, problem: Damage['problem'], message: string) =>
  new BackupDamagedError(id, [{backup: id, what: 'chunk', problem, hash: sha, message: `manifest ${message}`}])

/** Does what the host has match a manifest entry (type, mode, size and sha256, link target)? */
function sameEntry(
  want: ManifestEntry,
  got: {type: string; mode?: number; size?: number; link?: string},
  hashOf: () => string | undefined,
): boolean {
  if (got.type !== want.type) return false
  if (want.type === 'symlink') return got.link === want.link
  if (got.mode !== want.mode) return false
  return want.type !== 'file' || (got.size === want.size && hashOf() === want.hash)
}

/** The pack holding a manifest entry's object (a legacy deployed tree lists candidates: the first is its own). */
const packOf = (snap: Snap, rel: string) => snap.packs.get(rel)!.split('\0')[0]!

/** A section of a script's arguments: its length, then its names. */
const count = (xs: string[]) => [String(xs.length), ...xs]

function groupBy<T>(xs: T[], key: (x: T) => string, value: (x: T) => string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const x of xs) {
    const k = key(x)
    const list = out.get(k)
    if (list) list.push(value(x))
    else out.set(k, [value(x)])
  }
  return out
}
