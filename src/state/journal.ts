import fs from 'node:fs'
import path from 'node:path'
import {redact} from '../secrets.js'

/**
 * The append-only journal (`journal.jsonl` in the state dir). Every phase is appended (and
 * fsync'd) *before* it starts, so a hotctl killed at any moment leaves enough to finish the job.
 */
export type JournalEvent =
  /** `backup`: the snapshot taken first (restored on failure); `restores`: the snapshot a rollback puts back. */
  | {
      event: 'start'
      op: 'deploy' | 'rollback' | 'recover'
      opId: string
      t: string
      backup?: string
      release?: string
      restores?: string
      from?: string | null
      user: string
      host: string
      pid: number
      argv: string[]
    }
  | {event: 'phase'; opId: string; t: string; phase: Phase}
  /** A child process group that writes to the target (rsync): stopped before any recovery. */
  | {event: 'child'; opId: string; t: string; pgid: number}
  | {
      event: 'end'
      opId: string
      t: string
      result: OpResult
      exitCode: number
      durationMs: number
      error?: string
      changes?: number
      recovered?: string
    }

/** Phases from `sync` on may have changed the target. */
export type Phase =
  | 'backup'
  | 'sync'
  | 'marker'
  | 'reload'
  | 'confirm'
  | 'smoke'
  | 'restore'
  | 'restore-reload'
  | 'restore-confirm'
  | 'restore-smoke'
export const TARGET_CHANGING: ReadonlySet<Phase> = new Set([
  'sync',
  'marker',
  'reload',
  'confirm',
  'smoke',
  'restore',
  'restore-reload',
  'restore-confirm',
  'restore-smoke',
])

export type OpResult = 'ok' | 'nothing' | 'failed' | 'restored' | 'attention' | 'interrupted' | 'recovered'

export class Journal {
  /** Called once per line that is not a journal event (torn by a crash, edited by hand). */
  onBadLine: (message: string) => void = () => {}
  private readonly reported = new Set<number>()

  constructor(readonly file: string) {}

  append(e: JournalEvent): void {
    fs.mkdirSync(path.dirname(this.file), {recursive: true})
    const fd = fs.openSync(this.file, 'a')
    try {
      fs.writeSync(fd, journalLine(e))
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  }

  read(): JournalEvent[] {
    let text: string
    try {
      text = fs.readFileSync(this.file, 'utf8')
    } catch {
      return []
    }
    return this.parse(text)
  }

  /** The events of a journal's text (read here, or from a host): bad lines reported once each. */
  parse(text: string): JournalEvent[] {
    const out: JournalEvent[] = []
    text.split('\n').forEach((line, i) => {
      if (!line.trim()) return
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        parsed = undefined // a line torn by a crash mid-write: the events before it still stand
      }
      const why = invalidEvent(parsed)
      if (!why) out.push(parsed as JournalEvent)
      else if (!this.reported.has(i)) {
        this.reported.add(i)
        const shown = line.length > 80 ? `${line.slice(0, 80)}…` : line
        this.onBadLine(`${this.file} line ${i + 1} skipped (${why}): ${redact(shown)}`)
      }
    })
    return out
  }
}

const OPS = new Set(['deploy', 'rollback', 'recover'])

/** Why a parsed line is not a journal event this version can use (undefined: it is one). */
function invalidEvent(v: unknown): string | undefined {
  if (v === undefined) return 'not JSON'
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    return `not an event object: ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`
  const e = v as Record<string, unknown>
  if (typeof e.opId !== 'string' || typeof e.t !== 'string') return 'no opId or t'
  switch (e.event) {
    case 'start':
      return typeof e.op === 'string' && OPS.has(e.op) ? undefined : `unknown op ${JSON.stringify(e.op)}`
    case 'phase':
      return typeof e.phase === 'string' ? undefined : 'phase is not a string'
    case 'child':
      return Number.isInteger(e.pgid) && (e.pgid as number) > 1 ? undefined : 'pgid is not a process group id'
    case 'end':
      return typeof e.result === 'string' && typeof e.exitCode === 'number'
        ? undefined
        : 'end without result or exitCode'
    default:
      return `unknown event ${JSON.stringify(e.event)}`
  }
}

/** An event as its journal line: secrets masked, newline-terminated. */
export const journalLine = (e: JournalEvent): string => `${JSON.stringify(masked(e))}\n`

/** Only free text can carry a secret (an error message, the command line); ids, ops and phases never. */
function masked(e: JournalEvent): JournalEvent {
  if (e.event === 'start') return {...e, argv: e.argv.map(redact)}
  if (e.event === 'end' && e.error) return {...e, error: redact(e.error)}
  return e
}

export interface Operation {
  opId: string
  op: 'deploy' | 'rollback' | 'recover'
  start: Extract<JournalEvent, {event: 'start'}>
  phases: Phase[]
  children: number[]
  end?: Extract<JournalEvent, {event: 'end'}>
}

/** Folds the journal into operations, oldest first. */
export function operations(events: JournalEvent[]): Operation[] {
  const byId = new Map<string, Operation>()
  const order: Operation[] = []
  for (const e of events) {
    if (e.event === 'start') {
      const op: Operation = {opId: e.opId, op: e.op, start: e, phases: [], children: []}
      byId.set(`${e.op}:${e.opId}`, op)
      byId.set(e.opId, op)
      order.push(op)
    } else {
      const op = byId.get(e.opId)
      if (!op) continue
      if (e.event === 'phase') op.phases.push(e.phase)
      else if (e.event === 'child') op.children.push(e.pgid)
      else op.end = e
    }
  }
  return order
}

/** The operation that started and never ended (hotctl was killed), if any. */
export function interruptedOperation(events: JournalEvent[]): Operation | undefined {
  return operations(events)
    .filter((o) => !o.end && o.op !== 'recover')
    .at(-1)
}
