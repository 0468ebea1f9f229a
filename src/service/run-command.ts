import {execa} from 'execa'
import type {Command} from '../config/schema.js'
import {redact} from '../secrets.js'

export interface CommandResult {
  ok: boolean
  exitCode: number | undefined
  /** Last lines of combined stdout+stderr, secrets masked. */
  tail: string
  canceled: boolean
  timedOut: boolean
}

export const describeCommand = (c: Command) => (typeof c === 'string' ? c : c.argv.join(' '))

/**
 * Runs a command the user wrote in the config: a string through the shell (like an npm script),
 * `{argv}` without one. Never used for anything built from CLI input.
 */
export async function runCommand(cmd: Command, opts: {cwd: string; env?: Record<string, string>; signal?: AbortSignal; timeoutMs?: number; tailLines?: number}): Promise<CommandResult> {
  const common = {cwd: opts.cwd, env: opts.env, reject: false, all: true, cancelSignal: opts.signal, timeout: opts.timeoutMs, forceKillAfterDelay: 3000, stdin: 'ignore'} as const
  const r = typeof cmd === 'string' ? await execa(cmd, {...common, shell: true}) : await execa(cmd.argv[0]!, cmd.argv.slice(1), common)
  const lines = String(r.all ?? '').trimEnd().split('\n')
  return {
    ok: r.exitCode === 0 && !r.isCanceled && !r.timedOut,
    exitCode: r.exitCode,
    tail: redact(lines.slice(-(opts.tailLines ?? 15)).join('\n')),
    canceled: r.isCanceled,
    timedOut: r.timedOut,
  }
}
