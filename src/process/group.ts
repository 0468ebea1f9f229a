import fs from 'node:fs'

/**
 * Children that write (rsync) or run long (checks, smoke, restart) get a process group of their
 * own (spawned detached), so hotctl can stop all of it — a shell's children included — and so a
 * later hotctl can find and stop what a killed one left running before it restores anything.
 */
export function killGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (!pgid) return
  try {
    process.kill(-pgid, signal)
  } catch {
    // already gone
  }
}

/** Has process `pid` exited (on this machine)? */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** SIGTERM, then SIGKILL after a grace period. */
export function stopGroup(pgid: number | undefined, graceMs = 3000): void {
  killGroup(pgid, 'SIGTERM')
  setTimeout(() => killGroup(pgid, 'SIGKILL'), graceMs).unref()
}

/** Stops the group when `signal` aborts; returns the function that stops listening. */
export function stopOnAbort(
  pgid: number | undefined,
  signal: AbortSignal | undefined,
  onStop?: () => void,
  graceMs?: number,
): () => void {
  if (!signal) return () => undefined
  const handler = () => {
    onStop?.()
    stopGroup(pgid, graceMs)
  }
  if (signal.aborted) handler()
  else signal.addEventListener('abort', handler, {once: true})
  return () => signal.removeEventListener('abort', handler)
}

/**
 * Kills a group left behind by a killed hotctl and waits until it is gone. Process ids get reused,
 * so on Linux it only kills a group where some member carries one of `signatures` in its command
 * line or environment (a release step's commands carry HOTCTL_STEP_BACKUP_DIR there).
 */
export async function reapGroup(pgid: number, signatures: string | string[], timeoutMs = 10_000): Promise<boolean> {
  if (!groupAlive(pgid)) return true
  const members = groupMembers(pgid)
  const marks = typeof signatures === 'string' ? [signatures] : signatures
  // A wrapper (HOTCTL_RSYNC) may hold helpers of its own in the group: one rsync-like member is enough.
  if (members && !members.some((m) => marks.some((s) => m.includes(s)))) return true // someone else's now
  killGroup(pgid, 'SIGKILL')
  const deadline = Date.now() + timeoutMs
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  return !groupAlive(pgid)
}

/** Command lines of the processes in a group (Linux /proc), or undefined where /proc is missing. */
function groupMembers(pgid: number): string[] | undefined {
  let pids: string[]
  try {
    pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))
  } catch {
    return undefined
  }
  const out: string[] = []
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
      if (pgrp !== pgid) continue
      let environ = ''
      try {
        environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8')
      } catch {
        // another user's process: its command line still tells
      }
      out.push(`${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')}\0${environ}`.replace(/\0/g, ' '))
    } catch {
      // exited meanwhile
    }
  }
  return out
}
