import {execa} from 'execa'
import type {Command} from '../config/schema.js'
import {stopGroup, stopOnAbort} from '../process/group.js'
import {redact} from '../secrets.js'
import type {ServiceCommandOptions} from '../target/target.js'

export interface CommandResult {
  ok: boolean
  exitCode: number | undefined
  /** Last lines of combined stdout+stderr, secrets masked. */
  tail: string
  canceled: boolean
  timedOut: boolean
}

const INTERRUPT_KILL_GRACE_MS = 1000

/** Runs a configured command where the service is (Target.runServiceCommand). */
export type ServiceRunner = (cmd: Command, opts: ServiceCommandOptions) => Promise<CommandResult>

export const describeCommand = (c: Command) => (typeof c === 'string' ? c : c.argv.join(' '))

/**
 * Runs a command the user wrote in the config: a string through the shell (like an npm script),
 * `{argv}` without one. Never used for anything built from CLI input.
 */
export async function runCommand(
  cmd: Command,
  opts: {cwd: string; env?: Record<string, string>; signal?: AbortSignal; timeoutMs?: number; tailLines?: number},
): Promise<CommandResult> {
  // Its own process group (detached), so an interrupt or timeout stops the whole command — a
  // shell's children included — instead of waiting for them to let go of the output pipe.
  const common = {cwd: opts.cwd, env: opts.env, reject: false, all: true, detached: true, stdin: 'ignore'} as const
  const sub =
    typeof cmd === 'string' ? execa(cmd, {...common, shell: true}) : execa(cmd.argv[0]!, cmd.argv.slice(1), common)
  let canceled = false
  let timedOut = false
  // On an interrupt the restore waits for this command to be gone: a command ignoring SIGTERM gets
  // 1 s, not 3, of the CI runner's grace period.
  const dispose = stopOnAbort(sub.pid, opts.signal, () => (canceled = true), INTERRUPT_KILL_GRACE_MS)
  const timer = opts.timeoutMs
    ? setTimeout(() => {
        timedOut = true
        stopGroup(sub.pid)
      }, opts.timeoutMs)
    : undefined
  const r = await sub
  clearTimeout(timer)
  dispose()
  const lines = String(r.all ?? '')
    .trimEnd()
    .split('\n')
  return {
    ok: r.exitCode === 0 && !canceled && !timedOut,
    exitCode: r.exitCode,
    tail: redact(lines.slice(-(opts.tailLines ?? 15)).join('\n')),
    canceled,
    timedOut,
  }
}
