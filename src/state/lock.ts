import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {EXIT, HotctlError} from '../errors.js'
import {processGone} from '../process/group.js'

export interface LockOwner {
  pid: number
  host: string
  user: string
  command: string
  started: string
}

export function currentOwner(command: string): LockOwner {
  return {
    pid: process.pid,
    host: os.hostname(),
    user: os.userInfo().username,
    command,
    started: new Date().toISOString(),
  }
}

export function readLock(file: string): LockOwner | undefined {
  try {
    return parseLock(fs.readFileSync(file, 'utf8'))
  } catch {
    return undefined
  }
}

/** A lock file's text as its owner; anything but an owner record counts as unreadable (stale only once old, see breakStaleLock). */
export function parseLock(text: string): LockOwner | undefined {
  try {
    const v = JSON.parse(text) as LockOwner | null
    return v && typeof v === 'object' && Number.isInteger(v.pid) && typeof v.host === 'string' ? v : undefined
  } catch {
    return undefined
  }
}

/** Is the owner's process gone? Only decidable for a lock taken on this host. */
export function isStale(owner: LockOwner): boolean {
  return owner.host === os.hostname() && processGone(owner.pid)
}

/**
 * Removes a stale lock without racing another hotctl doing the same: only the holder of
 * `<lock>.break` (exclusive create) may remove it, and only if it is still the stale lock that was
 * read — not a live lock someone else took in between.
 */
function breakStaleLock(file: string, stale: LockOwner | undefined): void {
  const breaker = `${file}.break`
  try {
    fs.closeSync(fs.openSync(breaker, 'wx'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    if (lockAgeMs(breaker) > 10_000) fs.rmSync(breaker, {force: true}) // its owner died mid-break
    throw new HotctlError(`another hotctl is taking over the stale lock ${file}`, EXIT.locked, 'Retry in a moment.')
  }
  try {
    const now = readLock(file)
    // An unreadable lock is only stale while it is old: a fresh one is being written by its owner.
    const same = stale
      ? now?.pid === stale.pid && now?.started === stale.started && now?.host === stale.host
      : !now && fs.existsSync(file) && lockAgeMs(file) >= 10_000
    if (same) fs.rmSync(file, {force: true})
  } finally {
    fs.rmSync(breaker, {force: true})
  }
}

function lockAgeMs(file: string): number {
  try {
    return Date.now() - fs.statSync(file).mtimeMs
  } catch {
    return Infinity
  }
}

export const describeOwner = (o: LockOwner) =>
  `pid ${o.pid} on ${o.host} (user ${o.user}, "${o.command}", since ${o.started})`

/**
 * Takes the lock by exclusive create (atomic on every local filesystem). A lock whose owner
 * process is gone is cleared, and `onStale` says so. Returns the release function.
 */
export function acquireLock(file: string, owner: LockOwner, onStale: (old: LockOwner) => void): () => void {
  fs.mkdirSync(path.dirname(file), {recursive: true})
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx')
      fs.writeSync(fd, JSON.stringify(owner))
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      return () => {
        const now = readLock(file)
        if (now && now.pid === owner.pid && now.started === owner.started) fs.rmSync(file, {force: true})
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const held = readLock(file)
      if (!held && !fs.existsSync(file)) continue // removed meanwhile: try to create it again
      if (!held && lockAgeMs(file) < 10_000) {
        throw new HotctlError(
          `target is being locked by another hotctl right now (${file})`,
          EXIT.locked,
          'Retry in a moment.',
        )
      }
      if (held && !isStale(held)) {
        throw new HotctlError(
          `target is locked by ${describeOwner(held)}`,
          EXIT.locked,
          'Wait for that operation to finish; if its process is really gone on another host, remove the lock file: ' +
            file,
          {lock: held},
        )
      }
      breakStaleLock(file, held)
      onStale(held ?? {pid: 0, host: '?', user: '?', command: '(unreadable lock)', started: '?'})
    }
  }
  throw new HotctlError(`could not take the lock ${file}`, EXIT.locked, 'Retry; another hotctl raced for it.')
}
