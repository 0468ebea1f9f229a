import fs from 'node:fs'
import path from 'node:path'
import {redact} from '../secrets.js'

/**
 * The append-only journal (`journal.jsonl` in the state dir). Every phase is appended (and
 * fsync'd) *before* it starts, so a hotctl killed at any moment leaves enough to finish the job.
 */
export type JournalEvent =
  /** `backup`: the snapshot taken first (restored on failure); `restores`: the snapshot a rollback puts back. */
  | {event: 'start'; op: 'deploy' | 'rollback' | 'recover'; opId: string; t: string; backup?: string; release?: string; restores?: string; from?: string | null; user: string; host: string; pid: number; argv: string[]}
  | {event: 'phase'; opId: string; t: string; phase: Phase}
  /** A child process group that writes to the target (rsync): stopped before any recovery. */
  | {event: 'child'; opId: string; t: string; pgid: number}
  | {event: 'end'; opId: string; t: string; result: OpResult; exitCode: number; durationMs: number; error?: string; changes?: number; recovered?: string}

/** Phases from `sync` on may have changed the target. */
export type Phase = 'backup' | 'sync' | 'marker' | 'reload' | 'confirm' | 'smoke' | 'restore' | 'restore-reload' | 'restore-confirm' | 'restore-smoke'
export const TARGET_CHANGING: ReadonlySet<Phase> = new Set(['sync', 'marker', 'reload', 'confirm', 'smoke', 'restore', 'restore-reload', 'restore-confirm', 'restore-smoke'])

export type OpResult = 'ok' | 'nothing' | 'failed' | 'restored' | 'attention' | 'interrupted' | 'recovered'

export class Journal {
  constructor(readonly file: string) {}

  append(e: JournalEvent): void {
    fs.mkdirSync(path.dirname(this.file), {recursive: true})
    const fd = fs.openSync(this.file, 'a')
    try {
      fs.writeSync(fd, `${JSON.stringify(masked(e))}\n`)
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
    const out: JournalEvent[] = []
    for (const line of text.split('\n')) {
      if (!line.trim()) continue
      try {
        out.push(JSON.parse(line) as JournalEvent)
      } catch {
        // a line torn by a crash mid-write: the events before it still stand
      }
    }
    return out
  }
}

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
  return operations(events).filter((o) => !o.end && o.op !== 'recover').at(-1)
}
