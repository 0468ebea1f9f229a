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
  /** A release step's backup, run or undo (src/pipeline/release-steps.ts): appended before it starts, then with `ok`. */
  | StepEvent
  /** The maintenance window opened (`on`) or closed: a killed run's window is closed by recovery. */
  | {event: 'maintenance'; opId: string; t: string; on: boolean}
  | {
      event: 'end'
      opId: string
      t: string
      result: OpResult
      exitCode: number
      durationMs: number
      error?: string
      changes?: number
      /** Files the operation added, changed and deleted in the target (`hotctl log`). */
      files?: FileCounts
      recovered?: string
    }

export interface FileCounts {
  added: number
  changed: number
  deleted: number
}

export interface StepEvent {
  event: 'step'
  opId: string
  t: string
  /** The step's name in the config. */
  step: string
  action: 'backup' | 'run' | 'undo'
  /** The release whose step it is (for an undo in a rollback: the release being undone). */
  release: string
  /** Its backup directory ($HOTCTL_STEP_BACKUP_DIR), in the state dir. */
  dir: string
  /** Absent on the record written before the command starts. */
  ok?: boolean
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
    case 'step':
      return typeof e.step === 'string' && typeof e.release === 'string' && typeof e.dir === 'string'
        ? undefined
        : 'step without step, release or dir'
    case 'maintenance':
      return typeof e.on === 'boolean' ? undefined : 'maintenance without on'
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
  /** Its release steps' records, in order. */
  steps: StepEvent[]
  /** Whether its last maintenance record opened the window. */
  maintenance: boolean
  end?: Extract<JournalEvent, {event: 'end'}>
}

/** Folds the journal into operations, oldest first. */
export function operations(events: JournalEvent[]): Operation[] {
  const byId = new Map<string, Operation>()
  const order: Operation[] = []
  for (const e of events) {
    if (e.event === 'start') {
      const op: Operation = {opId: e.opId, op: e.op, start: e, phases: [], children: [], steps: [], maintenance: false}
      byId.set(`${e.op}:${e.opId}`, op)
      byId.set(e.opId, op)
      order.push(op)
    } else {
      const op = byId.get(e.opId)
      if (!op) continue
      if (e.event === 'phase') op.phases.push(e.phase)
      else if (e.event === 'child') op.children.push(e.pgid)
      else if (e.event === 'step') op.steps.push(e)
      else if (e.event === 'maintenance') op.maintenance = e.on
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
