import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type {ResolvedConfig} from '../config/resolve.js'
import {EXIT, HotctlError} from '../errors.js'
import {MAINTENANCE_NAME, MARKER_NAME} from '../config/resolve.js'
import {compilePatterns, type PathMatcher} from '../plan/patterns.js'
import {HashCache} from '../store/hash-cache.js'
import {type PackedTree, type Tree, walkTree, walkTreeAsync, walkTreeNode} from '../store/walk.js'
import type {ReleaseMarker} from './target.js'

/** Trees of fewer files than this are walked with lstat (see walkBoth). */
const FIND_FROM_FILES = 2000

/** walkTreeNode as a promise (an error as a rejection), to stand in for walkTreeAsync. */
const walkTreeSync = async (root: string, skip: PathMatcher, protect?: PathMatcher): Promise<PackedTree> =>
  walkTreeNode(root, skip, protect)

/**
 * The target directory on this machine as LocalTarget and LocalBackupStore both see it: its
 * walks (protected and excluded paths left out) and the hash caches kept in the state dir.
 */
export class LocalTree {
  readonly root: string
  readonly skip: PathMatcher
  readonly protected: PathMatcher
  private readonly caches = new Map<string, HashCache>()

  constructor(readonly config: ResolvedConfig) {
    this.root = config.target
    // The maintenance marker comes and goes during an operation: never part of a snapshot or restore.
    this.skip = compilePatterns([...config.exclude, ...config.protect, `/${MAINTENANCE_NAME}`])
    this.protected = compilePatterns(config.protect)
  }

  walk(): Tree {
    return walkTree(this.root, this.skip, this.protected)
  }

  /**
   * The target and the source as a deploy reads them, walked at once (a find child each):
   * excluded and protected paths left out. An unreadable source directory is an error naming it
   * (rsync's scan would fail with 23 on it).
   */
  async walkBoth(source: string): Promise<{src: PackedTree; dst: PackedTree}> {
    // Starting two finds costs ~10 ms of CPU and ~20 ms of waiting: a tree hotctl last saw small
    // (its records say how many files) is quicker walked here with lstat.
    const dstHint = this.targetCache().sizeHint()
    const srcHint = this.sourceCache(source).sizeHint()
    const known = Math.max(dstHint.entries, srcHint.entries)
    const walk = known > 0 && known < FIND_FROM_FILES ? walkTreeSync : walkTreeAsync
    const dst = walk(this.root, this.skip, this.protected, dstHint)
    // A source never seen here (a CI checkout in a new place) is expected to be the target's size.
    const src = walk(source, this.skip, undefined, srcHint.entries > 0 ? srcHint : dstHint).catch(
      (err: NodeJS.ErrnoException) => {
        throw new HotctlError(
          `planning: cannot read the source: ${err.message}`,
          EXIT.failed,
          'Check that the source tree is readable; the target was not touched.',
        )
      },
    )
    const [d, s] = await Promise.allSettled([dst, src])
    if (s.status === 'rejected') throw s.reason
    if (d.status === 'rejected') throw d.reason
    return {src: s.value, dst: d.value}
  }

  /** Paths protected now or when a backup was taken stay untouched (the config may have changed). */
  walkProtecting(extra: string[] = []): Tree {
    const protect = [...this.config.protect, ...extra]
    const skip = compilePatterns([...this.config.exclude, ...protect, `/${MAINTENANCE_NAME}`])
    return walkTree(this.root, skip, compilePatterns(protect))
  }

  targetCache(): HashCache {
    return this.cache(this.targetCacheFile())
  }

  /** The target's hash record if this process has read it already (it is not read for this). */
  openTargetCache(): HashCache | undefined {
    return this.caches.get(this.targetCacheFile())
  }

  private targetCacheFile(): string {
    return path.join(this.config.stateDir, 'cache', 'target-hashes.json')
  }

  /** One cache per source path: CI checkouts in different places do not mix. */
  sourceCache(source: string): HashCache {
    const key = crypto.createHash('sha256').update(source).digest('hex').slice(0, 12)
    return this.cache(path.join(this.config.stateDir, 'cache', `source-${key}.json`))
  }

  readMarker(): ReleaseMarker | null {
    try {
      const m = JSON.parse(fs.readFileSync(path.join(this.root, MARKER_NAME), 'utf8')) as ReleaseMarker | null
      return m && typeof m.id === 'string' ? m : null
    } catch {
      return null
    }
  }

  /** Each cache file is read once per process and written only when something was hashed. */
  private cache(file: string): HashCache {
    let c = this.caches.get(file)
    if (!c) this.caches.set(file, (c = HashCache.open(file)))
    return c
  }
}
