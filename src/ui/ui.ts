import {stripVTControlCharacters} from 'node:util'
import chalk from 'chalk'
import {redact} from '../secrets.js'
import {formatDuration} from './format.js'
import type {StepEvent} from './step-renderer.js'

export interface Ui {
  json: boolean
  /** A line for humans, on stderr (kept out of --json's stdout); an NDJSON `message` under --events. */
  say(message: string): void
  /** A step's start, end or progress (StepRenderer): a log line, or NDJSON under --events. */
  step?(event: StepEvent): void
  /** Anything else --events reports (the run's start and end); nothing otherwise. */
  event?(event: {type: string} & Record<string, unknown>): void
  /** Steps render as NDJSON (--events). */
  events?: boolean
  /** Lines on stderr start with the UTC time (--timestamps, on by default when CI is set). */
  timestamps?: boolean
}

export interface UiOptions {
  json: boolean
  events?: boolean
  timestamps?: boolean
  /** Where the lines go (stderr). */
  write?: (text: string) => void
}

/** The one writer of stderr: human lines (optionally timestamped) or, under --events, NDJSON. */
export function createUi(opts: UiOptions | boolean): Ui {
  const {
    json,
    events = false,
    timestamps = false,
    write = (t: string) => void process.stderr.write(t),
  } = typeof opts === 'boolean' ? {json: opts} : opts
  const stamp = () => (timestamps ? `${chalk.dim(new Date().toISOString().slice(11, 19))} ` : '')
  const line = (text: string) =>
    write(
      redact(text)
        .split('\n')
        .map((l) => `${stamp()}${l}`)
        .join('\n') + '\n',
    )
  const ndjson = (e: Record<string, unknown>) =>
    write(`${redact(JSON.stringify({...e, time: new Date().toISOString()}))}\n`)
  return {
    json,
    events,
    timestamps,
    say: (m) => (events ? ndjson({type: 'message', text: stripVTControlCharacters(m)}) : line(m)),
    step: (e) => {
      if (events) ndjson({...e})
      else if (e.type !== 'step-start') line(stepLine(e))
    },
    event: (e) => {
      if (events) ndjson(e)
    },
  }
}

/** How much of a failure's message a step's line shows. */
const MESSAGE_CHARS = 160

/** One step as a log line: `✔ Sync 10 added, 0 changed, 0 deleted (55ms)`, its output indented under it. */
export function stepLine(e: StepEvent): string {
  const indent = '  '.repeat(e.group?.length ?? 0)
  // A host's own line (a wave's "h1") is titled with its name already.
  const host = e.host && e.host !== e.step ? `${chalk.cyan(`[${e.host}]`)} ` : ''
  if (e.type === 'step-progress') {
    const what = e.message ? `: ${e.message}` : ''
    return `${indent}${chalk.dim('…')} ${host}${e.step}${what} ${chalk.dim(`(still running, ${formatDuration(e.elapsedMs ?? 0)})`)}`
  }
  const mark = e.result === 'failed' ? chalk.red('✖') : e.result === 'skipped' ? chalk.yellow('↓') : chalk.green('✔')
  // The whole message is in the result (and in --events); a log line keeps its start.
  const first = e.message?.split('\n')[0]
  const msg =
    first && (first.length > MESSAGE_CHARS || first !== e.message) ? `${first.slice(0, MESSAGE_CHARS)}…` : first
  const why = msg ? (e.result === 'skipped' ? ` [skipped: ${msg}]` : ` [${e.result}: ${msg}]`) : ''
  const head = `${indent}${mark} ${host}${e.step}${e.result === 'failed' ? chalk.red(why) : chalk.dim(why)} ${chalk.dim(`(${formatDuration(e.durationMs ?? 0)})`)}`
  const out = (e.output ?? []).map((l) => `${indent}  ${chalk.dim('│')} ${l}`)
  return [head, ...out].join('\n')
}
