import fs from 'node:fs'
import path from 'node:path'
import type {ResolvedConfig} from '../config/resolve.js'
import {notADirectory} from '../errors.js'
import {rsyncBinary} from '../rsync/binary.js'
import type {PreflightItem, PreflightOptions} from './target.js'

/** What a local deploy needs before anything is touched: rsync, the source, the target, the state dir. */
export async function localPreflight(config: ResolvedConfig, opts: PreflightOptions): Promise<PreflightItem[]> {
  const {source, target, stateDir} = config
  const items: PreflightItem[] = [await rsyncCheck(stateDir, opts.record ?? false)]
  if (opts.source) items.push(dirCheck('source', source, fs.constants.R_OK))
  const targetExists = fs.existsSync(target)
  if (targetExists || !opts.createTarget) {
    const item = dirCheck('target', target, fs.constants.W_OK)
    if (!targetExists)
      item.hint = 'Check the `target` path in the config; to deploy into a new directory, pass --create-target.'
    items.push(item)
  } else
    items.push({
      ...dirCheck('target (to be created)', nearestExisting(target), fs.constants.W_OK),
      name: 'target (to be created)',
    })
  items.push(
    fs.existsSync(stateDir)
      ? dirCheck('state dir', stateDir, fs.constants.W_OK)
      : {...dirCheck('state dir', nearestExisting(stateDir), fs.constants.W_OK), name: 'state dir (to be created)'},
  )
  const stateParent = nearestExisting(stateDir)
  const targetParent = nearestExisting(target)
  if (fs.existsSync(stateParent) && fs.existsSync(targetParent)) {
    const same = fs.statSync(targetParent).dev === fs.statSync(stateParent).dev
    items.push({
      name: 'same filesystem',
      ok: same,
      detail: same
        ? `${stateDir} is on the target's filesystem`
        : `${stateDir} is on another filesystem than ${target}`,
      hint: same
        ? undefined
        : 'Set `stateDir` to a directory beside the target (on its filesystem), or leave it out for the default.',
    })
  }
  return items
}

export function dirCheck(name: string, dir: string, mode: number): PreflightItem {
  const want = mode === fs.constants.W_OK ? 'writable' : 'readable'
  try {
    if (!fs.statSync(dir).isDirectory()) return {name, ok: false, detail: notADirectory(dir, isFile)}
    fs.accessSync(dir, mode)
    return {name, ok: true, detail: `${dir} ${want}`}
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EROFS'
          ? 'is on a read-only filesystem'
          : `is not ${want} (${code})`
    if (code === 'ENOTDIR') return {name, ok: false, detail: notADirectory(dir, isFile)}
    return {name, ok: false, detail: `${dir} ${why}`}
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile()
  } catch {
    return false
  }
}

/** The path itself, or its closest ancestor that exists (where a missing directory would be created). */
function nearestExisting(p: string): string {
  let cur = p
  while (!fs.existsSync(cur) && path.dirname(cur) !== cur) cur = path.dirname(cur)
  return cur
}

const rsyncChecks = new Map<string, Promise<PreflightItem>>()

/**
 * The rsync hotctl will run (HOTCTL_RSYNC or `rsync` on PATH): present, and 3.1 or newer. Without
 * `stateDir` (a fleet's preflight asks for every host) it runs once per binary and process. With `stateDir`, a binary that passed before (same path, size, mtime, ctime and inode, recorded
 * there) is not run again: spawning `rsync --version` (and loading execa for it) was a sixth of a
 * no-change deploy's CPU. Replacing or upgrading the binary changes its stat, so it is asked again.
 */
export function rsyncCheck(stateDir?: string, record = true): Promise<PreflightItem> {
  const bin = rsyncBinary()
  if (stateDir) return checkRsync(bin, stateDir, record) // the record in the state dir decides
  let check = rsyncChecks.get(bin)
  if (!check) rsyncChecks.set(bin, (check = checkRsync(bin, undefined, false)))
  return check
}

async function checkRsync(bin: string, stateDir: string | undefined, record: boolean): Promise<PreflightItem> {
  const named = process.env.HOTCTL_RSYNC ? `${bin} (from HOTCTL_RSYNC)` : bin
  const stamp = stateDir ? binaryStamp(bin) : undefined
  const recordFile = stateDir && path.join(stateDir, RSYNC_RECORD)
  if (stamp && recordFile) {
    const line = recordedVersion(recordFile, stamp)
    if (line) return {name: 'rsync', ok: true, detail: `${named}: ${line}`}
  }
  const {execa} = await import('execa')
  const r = await execa(bin, ['--version'], {reject: false})
  const version = /version\s+(\d+)\.(\d+)\.(\d+)/.exec(String(r.stdout))
  if (r.exitCode !== 0 || !version) {
    const why =
      r.exitCode === undefined
        ? 'cannot be run (not found or not executable)'
        : `\`--version\` failed (exit ${r.exitCode})`
    const hint = process.env.HOTCTL_RSYNC
      ? 'Point HOTCTL_RSYNC at a working rsync, or unset it.'
      : 'Install rsync 3.1 or newer (apt-get install rsync).'
    return {name: 'rsync', ok: false, detail: `${named} ${why}`, hint}
  }
  const [major, minor] = [Number(version[1]), Number(version[2])]
  if (major < 3 || (major === 3 && minor < 1)) {
    return {
      name: 'rsync',
      ok: false,
      detail: `${named} is version ${version.slice(1).join('.')}; hotctl needs 3.1 or newer`,
      hint: 'Install a newer rsync.',
    }
  }
  const line = String(r.stdout).split('\n')[0]!
  if (record && stamp && recordFile && fs.existsSync(stateDir)) {
    try {
      fs.writeFileSync(recordFile, `${JSON.stringify({...stamp, line})}\n`)
    } catch {
      // Only a shortcut: without the record the next run asks rsync again.
    }
  }
  return {name: 'rsync', ok: true, detail: `${named}: ${line}`}
}

/** In the state dir: the rsync binary that last passed the check, by stat, with its version line. */
export const RSYNC_RECORD = 'rsync-checked.json'

interface BinaryStamp {
  path: string
  size: number
  mtimeMs: number
  ctimeMs: number
  ino: number
}

/** The file `bin` runs (a path, or the first executable of that name on PATH), by stat; undefined if none. */
function binaryStamp(bin: string): BinaryStamp | undefined {
  const candidates = bin.includes('/')
    ? [path.resolve(bin)]
    : (process.env.PATH ?? '')
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.resolve(dir, bin))
  for (const file of candidates) {
    try {
      const real = fs.realpathSync(file)
      const st = fs.statSync(real)
      if (!st.isFile()) continue
      fs.accessSync(real, fs.constants.X_OK)
      // A script (a HOTCTL_RSYNC wrapper) runs an rsync its own stat does not show: always asked.
      if (startsWithShebang(real)) return undefined
      return {path: real, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino}
    } catch {
      // not here: the next PATH entry, as execvp looks
    }
  }
  return undefined
}

/** True for a script, and for a file that cannot be read (then it is simply run, as before). */
function startsWithShebang(file: string): boolean {
  let fd: number | undefined
  try {
    fd = fs.openSync(file, 'r')
    const head = Buffer.alloc(2)
    return fs.readSync(fd, head, 0, 2, 0) !== 2 || head.toString('latin1') === '#!'
  } catch {
    return true
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

function recordedVersion(file: string, stamp: BinaryStamp): string | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<BinaryStamp> & {line?: unknown}
    const same = (Object.keys(stamp) as (keyof BinaryStamp)[]).every((k) => r[k] === stamp[k])
    return same && typeof r.line === 'string' ? r.line : undefined
  } catch {
    return undefined
  }
}
