import crypto from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import type {HostSpec, ResolvedConfig} from '../config/resolve.js'
import {MAINTENANCE_NAME, MARKER_NAME, OWN_FILES, STEP_BACKUP_DIR_ENV, syncExcludes} from '../config/resolve.js'
import type {Command} from '../config/schema.js'
import {EXIT, HotctlError} from '../errors.js'
import type {ChangeSet} from '../plan/changeset.js'
import {diffTrees} from '../plan/diff-trees.js'
import {compilePatterns, type PathMatcher} from '../plan/patterns.js'
import {syncAroundDeletions} from '../plan/sync-order.js'
import {reapGroup, stopGroup, stopOnAbort} from '../process/group.js'
import {describeRsyncExit, filesFromInput, syncArgv} from '../rsync/argv.js'
import {rsyncBinary} from '../rsync/binary.js'
import {type ItemizedChange, parseItemize} from '../rsync/itemize.js'
import {type CommandResult, runCommand} from '../service/run-command.js'
import {redact} from '../secrets.js'
import {SshConnection, SshError} from '../ssh/connection.js'
import type {RemoteHashRecord} from '../ssh/hash-record.js'
import {shq} from '../ssh/quote.js'
import {hashRemote} from '../ssh/remote-files.js'
import {
  type RemotePlanWalk,
  type RemoteTree,
  type RemoteTreeEntry,
  recordCache,
  recordPatchFile,
  statAndHash,
  walkRemote,
  walkRemoteWithRecord,
} from '../ssh/remote-tree.js'
import {HashCache} from '../store/hash-cache.js'
import type {Manifest} from '../store/manifest.js'
import {statEntry, type Tree, type TreeEntry, walkTreeAsync} from '../store/walk.js'
import {verbose} from '../ui/verbose.js'
import {followItemized, refuseReplacingProtected, sourceProblem} from './local.js'
import {SshBackupStore} from './ssh-backups.js'
import {sshPreflight} from './ssh-preflight.js'
import {SshStateStore} from './ssh-state.js'
import type {
  MaintenanceMarker,
  PreflightItem,
  PreflightOptions,
  ReleaseMarker,
  ServiceCommandOptions,
  SyncProgress,
  Target,
  TargetPlan,
} from './target.js'

const READ_MARKER = `cat -- "$1/$2" 2>/dev/null
exit 0`
/** Writes one of hotctl's own files into the target: a temp file beside it, then a rename. */
const WRITE_OWN = `f="$1/$2"
printf '%s' "$3" > "$f.tmp" && mv -f -- "$f.tmp" "$f"`
const REMOVE_OWN = `rm -f -- "$1/$2"`
/** A private file in the state dir: 0600 from the start, then renamed into place. */
const WRITE_STATE_FILE = `umask 077
printf '%s' "$2" > "$1.tmp" && mv -f -- "$1.tmp" "$1"`
const READ_STATE_FILE = `[ -f "$1" ] || exit 3
cat -- "$1"`
const CAT_LIVE = `cat -- "$1/$2"`
const REMOVE_PID = `rm -f -- "$1"`

/**
 * Removes exactly the given paths under the target, deepest first, and only where every parent
 * is a real directory: never through a symlink out of the target.
 */
const REMOVE = `[ -z "$2" ] || rm -f -- "$2"
cd -- "$1" || exit 3
shift 2
for p; do
  d=.; rest=$p; ok=1
  while case $rest in */*) true ;; *) false ;; esac; do
    d="$d/\${rest%%/*}"; rest=\${rest#*/}
    if [ -L "$d" ] || [ ! -d "$d" ]; then ok=0; break; fi
  done
  [ $ok = 1 ] && { rm -rf -- "./$p" || exit 4; }
done
exit 0`

/**
 * Runs a user's command in the target dir: $3 variables exported by the shell (builtins: values
 * never on a command line the host's process list shows), output merged. The session's process
 * group (sshd makes each session one) is recorded in $2, so a command that outlives its timeout
 * or an interrupt can be stopped on the host, not only its ssh client here.
 */
const SERVICE = `cd -- "$1" || exit 97
f=$2; n=$3; shift 3
read -r _ _ _ _ g _ < "/proc/$$/stat" 2>/dev/null && printf '%s' "$g" > "$f" 2>/dev/null
while [ "$n" -gt 0 ]; do export "$1=$2"; shift 2; n=$((n - 1)); done
command -v -- "$1" >/dev/null 2>&1 || { echo "hotctl-not-found" >&2; rm -f -- "$f"; exit 127; }
[ -n "$g" ] && echo "hotctl-pgid $g" >&2
exec 2>&1
"$@"
s=$?
rm -f -- "$f"
exit $s`

/** Stops a service command's process group on the host (TERM, then KILL after a second). */
const STOP_COMMAND = `f=$1
[ -f "$f" ] || exit 0
g=$(cat -- "$f")
case $g in ''|*[!0-9]*) ;; *) kill -s TERM -- "-$g" 2>/dev/null; sleep 1; kill -s KILL -- "-$g" 2>/dev/null ;; esac
rm -f -- "$f"
exit 0`

/**
 * Stops the remote rsync a killed controller left writing: its pid was recorded by the rsync-path
 * wrapper; only a process that still runs `rsync --server` is killed (pids get reused).
 * Prints the pid when it would not go.
 */
const REAP_WRITER = `f="$1/writer.pid"
[ -f "$f" ] || exit 0
pid=$(cat -- "$f")
case $pid in ''|*[!0-9]*) rm -f -- "$f"; exit 0 ;; esac
cmd=$(tr '\\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || cmd=
case $cmd in *'rsync --server'*) kill -KILL "$pid" 2>/dev/null ;; esac
i=0
while [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
  case $(tr '\\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) in *'rsync --server'*) ;; *) break ;; esac
  sleep 0.1; i=$((i + 1))
done
if [ $i -ge 50 ]; then echo "$pid"; exit 3; fi
rm -f -- "$f"`

/**
 * Stops release step commands a killed controller left running on the host: a journaled process
 * group is killed only while one of its processes carries ${STEP_BACKUP_DIR_ENV} in its environment
 * (process ids get reused). Prints the groups that would not go.
 */
const REAP_STEPS = `pgrp() { st=$(cat -- "/proc/$1/stat" 2>/dev/null) || return 1; set -- \${st##*) }; echo "$3"; }
ours() {
  for s in /proc/[0-9]*; do
    p=\${s#/proc/}
    [ "$(pgrp "$p")" = "$1" ] || continue
    tr '\\0' '\\n' < "$s/environ" 2>/dev/null | grep -q '^${STEP_BACKUP_DIR_ENV}=' && return 0
  done
  return 1
}
for g; do
  ours "$g" || continue
  kill -s KILL -- "-$g" 2>/dev/null
  i=0
  while [ $i -lt 50 ] && kill -0 -- "-$g" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
  kill -0 -- "-$g" 2>/dev/null && echo "$g"
done
exit 0`

/** Appends patch lines ($2) to the hash record's patch file ($1). */
const APPEND_RECORD = `printf '%s' "$2" >> "$1"`

/**
 * The source trees planning walks, by source and filters, shared by this process's targets (a
 * fleet's hosts plan against one walk) until the last target that asked for it (prepare) planned:
 * then it is let go (megabytes at 20k files that the backup and the sync never read).
 */
const sourceWalks = new Map<string, {walk: Promise<Tree>; users: number; key: string}>()

/** Source hash caches by file, shared by this process's targets (see SshTarget.sourceCache). */
const sourceCaches = new Map<string, HashCache>()

/** The host a config addresses: the one it was resolved for, or the only one of `target: user@host:/path`. */
export function remoteHost(config: ResolvedConfig): HostSpec | undefined {
  return config.host ?? (config.hosts.length === 1 ? config.hosts[0] : undefined)
}

/**
 * A target directory on a remote host, over the system OpenSSH client and rsync (one multiplexed
 * connection per host per run). The host needs sshd, a POSIX sh, rsync and coreutils; its lock,
 * journal, backups and release marker live there, beside the target. Every remote step is a fixed
 * sh script with quoted positional values (ssh/quote.ts); rsync sends paths with
 * --secluded-args, so no remote shell parses them.
 */
export class SshTarget implements Target {
  readonly description: string
  readonly state: SshStateStore
  readonly backups: SshBackupStore
  readonly conn: SshConnection
  private readonly syncExcludes: string[]
  /** What planning leaves out on both sides: excluded and protected paths, the maintenance marker. */
  private readonly skip: PathMatcher
  private readonly recordFile: string
  /**
   * The release marker as this run last read or wrote it, while it holds the lock; forgotten by
   * anything that may change it otherwise (a sync, a restore, a command on the host).
   */
  private marker?: {value: ReleaseMarker | null}

  constructor(
    private readonly config: ResolvedConfig,
    host: HostSpec,
    warn: (message: string) => void,
  ) {
    this.conn = new SshConnection(host, config.ssh)
    // Every operation on a target talks to its host first: the connection is made meanwhile.
    this.conn.connect()
    this.description = `${this.conn.destination}:${config.target}`
    this.state = new SshStateStore(this.conn, config.stateDir, warn, {
      file: `${config.target}/${MARKER_NAME}`,
      onLocked: (text) => {
        this.backups.invalidate() // read again under the lock: others may have changed them
        this.marker = {value: text === undefined ? null : parseMarker(text)}
      },
      onUnlocked: () => (this.marker = undefined),
    })
    this.backups = new MarkerAwareBackups(
      this.conn,
      config,
      () => this.readMarker(),
      () => (this.marker = undefined),
    )
    this.syncExcludes = syncExcludes(config)
    this.skip = compilePatterns([...config.exclude, ...config.protect, `/${MAINTENANCE_NAME}`])
    this.recordFile = `${config.stateDir}/target-hashes.json.gz`
  }

  /** Who runs the operation: the controller's user and machine (the host is in `description`). */
  async identity(): Promise<{user: string; host: string}> {
    return {user: os.userInfo().username, host: os.hostname()}
  }

  preflight(opts: PreflightOptions): Promise<PreflightItem[]> {
    return sshPreflight(this.conn, this.config, opts)
  }

  async readMarker(): Promise<ReleaseMarker | null> {
    if (this.marker) return this.marker.value
    const out = await this.conn.must('reading the release marker', READ_MARKER, [this.config.target, MARKER_NAME])
    return parseMarker(out.toString('utf8'))
  }

  async writeMarker(marker: ReleaseMarker): Promise<void> {
    const text = `${JSON.stringify(marker, null, 2)}\n`
    this.marker = undefined
    await this.conn.must('writing the release marker', WRITE_OWN, [this.config.target, MARKER_NAME, text])
    if (this.state.locked) this.marker = {value: parseMarker(text)}
  }

  async writeMaintenance(m: MaintenanceMarker): Promise<void> {
    await this.conn.must('writing the maintenance marker', WRITE_OWN, [
      this.config.target,
      MAINTENANCE_NAME,
      `${JSON.stringify(m)}\n`,
    ])
  }

  async clearMaintenance(): Promise<void> {
    await this.conn.must('removing the maintenance marker', REMOVE_OWN, [this.config.target, MAINTENANCE_NAME])
  }

  async writeStateFile(file: string, text: string): Promise<void> {
    await this.conn.must(`writing ${file}`, WRITE_STATE_FILE, [file, text])
  }

  async readStateFile(file: string): Promise<string | undefined> {
    const r = await this.conn.run(READ_STATE_FILE, [file], {exact: true})
    if (r.exitCode === 3) return undefined
    if (r.exitCode !== 0) throw new Error(`reading ${file} on ${this.conn.host.name} failed (exit ${r.exitCode})`)
    return r.stdout.toString('utf8')
  }

  /** The live tree as a backup lists it: one listing of the host's tree, then sha256 of its files on the host. */
  async liveFiles(): Promise<Manifest> {
    const tree = await walkRemote(this.conn, this.config.target, this.skip)
    const files = [...tree.entries].filter(([, e]) => e.type === 'file').map(([rel]) => rel)
    const hashes = files.length ? await hashRemote(this.conn, this.config.target, files) : new Map<string, string>()
    const out: Manifest = new Map()
    for (const [rel, e] of tree.entries) {
      if (e.type !== 'file') out.set(rel, {type: e.type, mode: e.mode, link: e.link})
      else {
        const hash = hashes.get(rel)
        if (!hash)
          throw new Error(`${rel} on ${this.conn.host.name} could not be read (or vanished while it was listed)`)
        out.set(rel, {type: 'file', mode: e.mode, size: e.size, hash})
      }
    }
    return out
  }

  async readLive(rel: string): Promise<Buffer> {
    return this.conn.must(`reading ${rel}`, CAT_LIVE, [this.config.target, rel], {exact: true})
  }

  /** rsync's options for this host: ssh over the shared connection, paths never parsed by a remote shell, bounded I/O. */
  private rsyncRemote(): string[] {
    return [
      '-e',
      this.conn.rsh(),
      '--secluded-args',
      `--timeout=${Math.max(1, Math.ceil(this.config.ssh.timeoutMs / 1000))}`,
    ]
  }

  /**
   * Starts the source walk (and opens the source hash cache) while the connection is made: the
   * controller is idle until the host answers. Walked once per process: every host of a fleet
   * plans against the same source tree.
   */
  prepare(source: string): void {
    if (sourceProblem(source) || this.walking) return // planning says what is wrong
    const walk = this.walkSource(source)
    walk.users++
    this.walking = true
    walk.walk.catch(() => undefined) // planning reports a failure
    this.sourceCache(source)
    this.backups.prepare()
  }

  /** This target counts among its source walk's users (see sourceWalks). */
  private walking = false

  private walkSource(source: string): {walk: Promise<Tree>; users: number; key: string} {
    const key = JSON.stringify([source, this.config.exclude, this.config.protect])
    let walk = sourceWalks.get(key)
    if (!walk) sourceWalks.set(key, (walk = {walk: walkTreeAsync(source, this.skip), users: 0, key}))
    return walk
  }

  /** The source walk for planning; let go once every target that asked for it has it. */
  private async plannedSource(source: string): Promise<Tree> {
    const walk = this.walkSource(source)
    if (this.walking) {
      this.walking = false
      walk.users--
    }
    if (walk.users <= 0) sourceWalks.delete(walk.key)
    return walk.walk
  }

  /**
   * Plans from one listing of the host's tree (stat to the nanosecond, with the host's hash record
   * in the same round trip) and a walk of the source here, as LocalTarget plans: content decides
   * wherever size or mtime differ. A host file's hash comes from the record while its size, mtime,
   * ctime and inode are the recorded ones; only the others are hashed, on the host. The source's
   * hashes come from a stat-validated cache on this machine.
   */
  async planChanges(source: string, opts: {dryRun: boolean}): Promise<TargetPlan> {
    const {target} = this.config
    const {tree: dst, record} = await walkRemoteWithRecord(
      this.conn,
      target,
      this.recordFile,
      this.skip,
      compilePatterns(this.config.protect),
      // The backup that follows lists the host's backups: asked now, answered right after the listing.
      () => void this.backups.list().catch(() => undefined),
    )
    const missing = sourceProblem(source)
    if (missing)
      throw new HotctlError(
        missing,
        EXIT.failed,
        'Fix `source` in the config (or the path it names); the target was not touched.',
      )
    let src: Tree
    try {
      src = await this.plannedSource(source)
    } catch (err) {
      throw new HotctlError(
        `planning: cannot read the source: ${(err as Error).message}`,
        EXIT.failed,
        'Check that the source tree is readable; the target was not touched.',
      )
    }
    refuseReplacingProtected(source, dst)
    const srcCache = this.sourceCache(source)
    const hashed = new Map<string, string>()
    // Which host files content must decide and the record cannot: the same rule in two passes
    // (the first only collects them), with one batch of hashing on the host between.
    const sameContent = (collect?: string[]) => (rel: string, s: TreeEntry, d: TreeEntry, mtimeEqual: boolean) => {
      const fresh = hashed.get(rel) // hashed on the host by this planning: content decides
      if (fresh !== undefined) return srcCache.hash(source, rel, s) === fresh
      const recorded = record.peek(rel, d as RemoteTreeEntry)
      if (mtimeEqual && recorded !== undefined) {
        // rsync's quick check holds while the host file is as the record has it (see LocalTarget).
        // A file the record does not vouch for is compared by content: after one deploy every
        // file of the tree is in the record.
        const slot = srcCache.validSlot(rel, s)
        return slot < 0 || srcCache.hashIs(slot, recorded)
      }
      if (recorded === undefined) {
        collect?.push(rel) // the first pass: hashed on the host, then decided by the second
        return !!collect
      }
      return srcCache.hash(source, rel, s) === recorded
    }
    const ignore = (rel: string) => OWN_FILES.includes(rel)
    const toHash: string[] = []
    const first = diffTrees(src, dst, sameContent(toHash), ignore)
    if (toHash.length > 0) {
      const some = toHash.slice(0, 5).join(', ') + (toHash.length > 5 ? ', …' : '')
      verbose(`planning: hashing ${toHash.length} file(s) on ${this.conn.host.name} (not in its hash record): ${some}`)
      for (const [rel, h] of await hashRemote(this.conn, target, toHash)) {
        hashed.set(rel, h)
        record.set(rel, dst.entries.get(rel)! as RemoteTreeEntry, h) // hashed after the listing took its stat
      }
    }
    // Nothing collected: the first pass decided every file as the second would.
    const changes = toHash.length > 0 ? diffTrees(src, dst, sameContent(), ignore) : first
    // Planning is read-only under --dry-run: what was hashed is kept only by a real deploy.
    if (!opts.dryRun) {
      // Written at the next turn of the event loop: while the host runs the next script, not
      // before it is sent (only a cache, checked by stat: a later write loses nothing).
      setImmediate(() => {
        try {
          srcCache.save()
        } catch (err) {
          verbose(`could not save the source hash cache: ${(err as Error).message}`) // the verify tries again
        }
      })
      if (hashed.size > 0) await this.saveRecord(record, dst)
    }
    return {changes, walk: {dst, record} satisfies RemotePlanWalk}
  }

  /**
   * The host's hash record, stored for the files of `tree`: what changed is appended to its patch
   * (a few lines for a few files), or now and then the whole record is written (uploaded, then
   * renamed into place) and the patch removed. Only a cache: when it cannot be written the next
   * deploy hashes more, nothing else.
   */
  private async saveRecord(record: RemoteHashRecord, tree: RemoteTree): Promise<void> {
    if (record.unsaved === 0) return
    const keep = (rel: string) => tree.entries.get(rel)?.type === 'file'
    const patchFile = recordPatchFile(this.recordFile)
    try {
      const patch = record.patch()
      if (patch !== undefined) {
        await this.conn.must('appending to the hash record', APPEND_RECORD, [patchFile, patch])
        record.saved(record.unsaved)
      } else {
        // This controller's copy is written as the record is made, put in place once the host has it.
        const copy = recordCache(this.conn, this.recordFile).writer()
        try {
          const gz = record.stored(keep, copy.add)
          await this.conn.upload(this.recordFile, gz, {atomic: true})
          await this.conn.must('removing the hash record patch', 'rm -f -- "$1"', [patchFile])
          record.saved()
          copy.commit(gz) // the next planning needs no copy of it from the host
        } finally {
          copy.abort()
        }
      }
    } catch (err) {
      verbose(`could not save the hash record on ${this.conn.host.name}: ${(err as Error).message}`)
    }
  }

  /**
   * Hashes of the source tree, on this machine (the state dir is on the host), one cache per source
   * path, opened once per process: every host of a fleet plans and verifies with the same one
   * (each hash is checked by stat before use, so sharing it never trusts a stale one).
   */
  private sourceCache(source: string): HashCache {
    const key = crypto.createHash('sha256').update(source).digest('hex').slice(0, 12)
    const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
    const file = path.join(base, 'hotctl', `source-${key}.json`)
    let cache = sourceCaches.get(file)
    if (!cache) sourceCaches.set(file, (cache = HashCache.open(file)))
    return cache
  }

  describeSync(source: string): string[] {
    return [
      rsyncBinary(),
      ...this.rsyncRemote(),
      ...syncArgv({source, target: this.conn.rsyncPath(this.config.target), excludes: this.syncExcludes}),
    ]
  }

  previewSync(source: string, plan: TargetPlan): Promise<ItemizedChange[]> {
    return this.rsync(source, plan.changes, true)
  }

  async sync(
    source: string,
    plan: TargetPlan,
    signal?: AbortSignal,
    onChild?: (pgid: number) => Promise<void>,
    onProgress?: (p: SyncProgress) => void,
  ): Promise<ItemizedChange[]> {
    const {changes} = plan
    const walked = plan.walk as RemotePlanWalk | undefined
    this.marker = undefined
    return syncAroundDeletions(source, changes, {
      isTargetDir: (rel) => walked?.dst.entries.get(rel)?.type === 'dir',
      remove: (paths, afterWrite) => this.remove(paths, afterWrite),
      write: () => this.rsync(source, changes, false, signal, onChild, onProgress),
    })
  }

  /**
   * Stat, then sha256, of every written path on the host (one round trip per batch), compared with
   * the source; what matches is written into the host's hash record with that stat, so the next
   * deploy plans without hashing it again.
   */
  async verifySynced(source: string, plan: TargetPlan): Promise<string[]> {
    const {changes} = plan
    const writes = [...changes.added, ...changes.changed]
    const written = new Set(writes)
    const gone = changes.deleted.filter((rel) => !written.has(rel))
    const remote = await statAndHash(this.conn, this.config.target, [...writes, ...gone])
    const srcCache = this.sourceCache(source)
    const walked = plan.walk as RemotePlanWalk | undefined
    const bad: string[] = []
    // A first deploy hashes the whole source here: room for its rows made once, not grown by steps.
    let unknown = 0
    for (const rel of writes) if (!srcCache.knows(rel)) unknown++
    if (unknown > 1024) srcCache.expect(unknown)
    for (const rel of writes) {
      const s = statEntry(path.join(source, rel))
      const d = remote.get(rel)
      if (!s || !d || s.type !== d.type || (s.type === 'symlink' ? s.link !== d.link : s.mode !== d.mode)) bad.push(rel)
      else if (s.type === 'file') {
        if (s.size !== d.size || !d.hash || srcCache.hash(source, rel, s) !== d.hash) bad.push(rel)
        else walked?.record.set(rel, d, d.hash)
      }
    }
    for (const rel of gone) if (remote.get(rel)) bad.push(rel)
    srcCache.save()
    if (walked && bad.length === 0) {
      for (const rel of gone) {
        walked.record.delete(rel)
        walked.dst.entries.delete(rel)
      }
      for (const [rel, d] of remote) walked.dst.entries.set(rel, d)
      await this.saveRecord(walked.record, walked.dst)
    }
    return bad
  }

  /**
   * `on: host` (the default for a remote target) runs over ssh in the target dir; `on: local` here,
   * in the config's directory. `onChild` gets the command's process group on the host (sshd makes
   * each session its own), which `reapChildren` stops on the host.
   */
  async runServiceCommand(cmd: Command, opts: ServiceCommandOptions): Promise<CommandResult> {
    this.marker = undefined
    if (opts.on === 'local') return runCommand(cmd, {...opts, cwd: path.dirname(this.config.file)})
    const argv = typeof cmd === 'string' ? ['sh', '-c', cmd] : cmd.argv
    const env = {...referencedEnv(argv), ...opts.env}
    const vars = Object.entries(env).flatMap(([k, v]) => [k, v])
    const timeoutMs = opts.timeoutMs ?? Math.max(this.config.ssh.timeoutMs, this.config.reloadTimeoutMs)
    const pgidFile = `${this.config.stateDir}/command-${process.pid}-${Date.now()}.pgid`
    const stop = () => this.conn.run(STOP_COMMAND, [pgidFile], {timeoutMs: 10_000}).catch(() => undefined)
    // The host's group is journaled while the command runs (as a local child's is once spawned).
    let journaled: Promise<void> | undefined
    let said = ''
    const onStderr = opts.onChild
      ? (chunk: Buffer) => {
          said += chunk.toString('latin1')
          const m = /^hotctl-pgid (\d+)$/m.exec(said)
          if (m && !journaled) journaled = opts.onChild!(Number(m[1]))
        }
      : undefined
    let r
    try {
      r = await this.conn.run(SERVICE, [this.config.target, pgidFile, String(vars.length / 2), ...vars, ...argv], {
        timeoutMs,
        signal: opts.signal,
        onStderr,
      })
    } catch (err) {
      const canceled = err instanceof HotctlError && err.exitCode === EXIT.interrupted
      const timedOut = err instanceof SshError && err.kind === 'timeout'
      // Only its ssh client ended here: stop the command on the host too (best effort: the host may be gone).
      if (canceled || timedOut) await stop()
      await journaled?.catch(() => undefined)
      return {ok: false, exitCode: undefined, tail: redact((err as Error).message), outputChars: 0, canceled, timedOut}
    }
    try {
      await journaled
    } catch (err) {
      await stop()
      throw err
    }
    const text = r.stdout.toString('utf8')
    if (r.exitCode === 127 && r.stderr.includes('hotctl-not-found')) {
      const notRun = `not found: ${argv[0]} (not on PATH on ${this.conn.host.name})`
      return {ok: false, exitCode: 127, tail: notRun, outputChars: 0, canceled: false, timedOut: false, notRun}
    }
    const lines = text.trimEnd().split('\n')
    if (r.exitCode === 97) lines.push(`hotctl: cannot cd into ${this.config.target} on ${this.conn.host.name}`)
    return {
      ok: r.exitCode === 0,
      exitCode: r.exitCode,
      tail: redact(lines.slice(-(opts.tailLines ?? 15)).join('\n')),
      outputChars: text.length,
      canceled: false,
      timedOut: false,
    }
  }

  async reapChildren(pgids: number[]): Promise<number[]> {
    this.marker = undefined
    const left: number[] = []
    // Journaled groups are this machine's (the rsync client, a step command run `on: local`) or the
    // host's (a step command run there): each side stops only groups that are provably hotctl's.
    for (const pgid of pgids)
      if (!(await reapGroup(pgid, ['--files-from=-', `${STEP_BACKUP_DIR_ENV}=`]))) left.push(pgid)
    if (pgids.length > 0) {
      const r = await this.conn.must('stopping release step commands left on the host', REAP_STEPS, pgids.map(String))
      left.push(...r.toString().split('\n').filter(Boolean).map(Number))
    }
    const r = await this.conn.run(REAP_WRITER, [this.config.stateDir])
    if (r.exitCode === 3) left.push(Number(r.stdout.toString().trim()))
    return left
  }

  /** Deletes planned paths; `synced`: the writer finished, its pid record goes too. */
  private async remove(paths: string[], synced = false): Promise<void> {
    if (paths.length === 0 && !synced) return
    const pidFile = synced ? `${this.config.stateDir}/writer.pid` : ''
    if (paths.length === 0) {
      // Only the pid record: it goes with the next script (a stale one is harmless: see REAP_WRITER).
      this.conn.defer('writer', () => ({script: REMOVE_PID, args: [pidFile], what: 'removing the writer pid record'}))
      return
    }
    const deepestFirst = [...paths].sort((a, b) => b.split('/').length - a.split('/').length)
    await this.conn.must('deleting planned paths', REMOVE, [this.config.target, pidFile, ...deepestFirst])
  }

  private async rsync(
    source: string,
    changes: ChangeSet,
    dryRun: boolean,
    signal?: AbortSignal,
    onChild?: (pgid: number) => Promise<void>,
    onProgress?: (p: SyncProgress) => void,
  ): Promise<ItemizedChange[]> {
    const writes = [...changes.added, ...changes.changed]
    if (writes.length === 0) return []
    const {target, stateDir} = this.config
    await this.conn.must('connecting', 'true')
    // The remote writer records its pid (the wrapper's shell execs rsync), so the next run can
    // stop it if this controller is killed; the directory exists (the journal is in it).
    const rsyncPath = dryRun
      ? []
      : [`--rsync-path=mkdir -p ${shq(target)} && printf %s $$ > ${shq(`${stateDir}/writer.pid`)} && exec rsync`]
    const argv = syncArgv({source, target: this.conn.rsyncPath(target), excludes: this.syncExcludes, dryRun})
    const {execa} = await import('execa') // loaded when rsync runs, not at every start
    const sub = execa(rsyncBinary(), [...this.rsyncRemote(), ...rsyncPath, ...argv], {
      input: filesFromInput(writes),
      reject: false,
      detached: true,
      encoding: 'buffer',
    })
    try {
      if (sub.pid) await onChild?.(sub.pid) // journaled before the writer is waited for: recovery can stop it
    } catch (err) {
      stopGroup(sub.pid)
      await sub
      throw err
    }
    if (onProgress) followItemized(sub.stdout, source, onProgress)
    let canceled = false
    const dispose = stopOnAbort(sub.pid, signal, () => (canceled = true))
    const r = await sub
    dispose()
    if (canceled) throw new HotctlError('sync interrupted', EXIT.interrupted)
    if (r.exitCode !== 0) {
      const what = `rsync${dryRun ? ' --dry-run' : ''} to ${this.conn.host.name} failed (exit ${r.exitCode}: ${describeRsyncExit(r.exitCode ?? -1)}): ${lastLines(r.stderr)}`
      throw new HotctlError(what, dryRun ? EXIT.failed : EXIT.restored)
    }
    return parseItemize(r.stdout)
  }
}

function parseMarker(text: string): ReleaseMarker | null {
  try {
    const m = JSON.parse(text) as ReleaseMarker | null
    return m && typeof m.id === 'string' ? m : null
  } catch {
    return null
  }
}

/** The host's backups, telling the target when a restore may change the release marker. */
class MarkerAwareBackups extends SshBackupStore {
  constructor(
    conn: SshConnection,
    config: ResolvedConfig,
    readMarker: () => Promise<ReleaseMarker | null>,
    private readonly changing: () => void,
  ) {
    super(conn, config, readMarker)
  }

  override async restore(id: string): Promise<{written: string[]; removed: string[]}> {
    this.changing()
    try {
      return await super.restore(id)
    } finally {
      this.changing()
    }
  }
}

/**
 * The controller's variables a command names as `${NAME}` (the config keeps them for the shell to
 * expand, see config/interpolate.ts): a command on the host sees them as it would here.
 */
function referencedEnv(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const a of argv)
    for (const m of a.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
      const v = process.env[m[1]!]
      if (v !== undefined) out[m[1]!] = v
    }
  return out
}

const lastLines = (text: string | Uint8Array) =>
  redact((typeof text === 'string' ? text : Buffer.from(text).toString()).trim().split('\n').slice(-3).join(' | '))
