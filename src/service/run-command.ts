import fs from 'node:fs'
import path from 'node:path'
import type {Command} from '../config/schema.js'
import {stopGroup, stopOnAbort} from '../process/group.js'
import {redact} from '../secrets.js'
import {showArgv, verbose} from '../ui/verbose.js'
import {OutputTail} from './output-tail.js'
import type {ServiceCommandOptions} from '../target/target.js'

export interface CommandResult {
  ok: boolean
  exitCode: number | undefined
  /** Last lines of combined stdout+stderr (each line bounded), secrets masked. */
  tail: string
  /** The file holding the full output (secrets masked), when one was asked for. */
  log?: string
  /** Characters of output in all. */
  outputChars: number
  canceled: boolean
  timedOut: boolean
  /** Set when the command never started (binary missing or not executable): the whole story. */
  notRun?: string
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
  opts: {
    cwd: string
    env?: Record<string, string>
    signal?: AbortSignal
    timeoutMs?: number
    tailLines?: number
    onChild?: (pgid: number) => Promise<void>
    /** Write the full output here (the terminal and JSON only get the tail). */
    logFile?: string
  },
): Promise<CommandResult> {
  verbose(`run: ${typeof cmd === 'string' ? `sh -c ${showArgv([cmd])}` : showArgv(cmd.argv)} (in ${opts.cwd})`)
  // Its own process group (detached), so an interrupt or timeout stops the whole command — a
  // shell's children included — instead of waiting for them to let go of the output pipe.
  // Not buffered: output is streamed into a bounded tail (and the log file), never held whole.
  const common = {
    cwd: opts.cwd,
    env: opts.env,
    reject: false,
    all: true,
    buffer: false,
    detached: true,
    stdin: 'ignore',
  } as const
  const {execa} = await import('execa') // loaded when a command runs, not at every start
  const sub =
    typeof cmd === 'string' ? execa(cmd, {...common, shell: true}) : execa(cmd.argv[0]!, cmd.argv.slice(1), common)
  const tail = new OutputTail(opts.tailLines ?? 15)
  // Opened with the first output: a silent command leaves no file (nor a directory) behind.
  let log: fs.WriteStream | undefined
  sub.all?.setEncoding('utf8')
  sub.all?.on('data', (chunk: string) => {
    tail.push(chunk)
    if (opts.logFile) log ??= openLog(opts.logFile)
    log?.write(redact(chunk))
  })
  try {
    if (sub.pid) await opts.onChild?.(sub.pid) // journaled before it is waited for: recovery can stop it
  } catch (err) {
    stopGroup(sub.pid) // not journaled: it must not go on running unrecorded
    await sub
    throw err
  }
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
  verbose(`run: ${describeCommand(cmd)} → ${timedOut ? 'timed out' : canceled ? 'stopped' : `exit ${r.exitCode}`}`)
  const written = log
  if (written) await new Promise((resolve) => written.end(resolve))
  return {
    ok: r.exitCode === 0 && !canceled && !timedOut,
    exitCode: r.exitCode,
    tail: redact(tail.text()),
    ...(log ? {log: opts.logFile} : {}),
    outputChars: tail.total,
    canceled,
    timedOut,
    ...(r.failed && r.exitCode === undefined && !canceled && !timedOut ? {notRun: notRunReason(r, cmd)} : {}),
  }
}

/** How a command ended, in words: "exited 2", "timed out", "not found: NAME (not on PATH)". */
export function describeEnd(r: CommandResult): string {
  if (r.notRun) return r.notRun
  if (r.timedOut) return 'timed out'
  if (r.canceled) return 'was stopped'
  return r.exitCode === undefined ? 'was killed' : `exited ${r.exitCode}`
}

function openLog(file: string): fs.WriteStream {
  fs.mkdirSync(path.dirname(file), {recursive: true})
  return fs.createWriteStream(file, {mode: 0o600, flags: 'a'}) // a check's commands share its file
}

/** Why a command never started: its binary is missing or not executable (not "exited undefined"). */
function notRunReason(r: {code?: string; message?: string}, cmd: Command): string {
  const name = typeof cmd === 'string' ? cmd.split(/\s+/)[0]! : cmd.argv[0]!
  if (r.code === 'ENOENT') return `not found: ${name} (not on PATH)`
  if (r.code === 'EACCES') return `not executable: ${name} (permission denied)`
  return `could not start ${name}: ${r.code ?? r.message ?? 'unknown error'}`
}
