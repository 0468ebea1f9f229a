import {ListrTaskEventType, type ListrRenderer, type ListrTaskObject} from 'listr2'
import {redact} from '../secrets.js'
import type {Ui} from './ui.js'

/** What happened to one step of a task tree: what the log and --events are made of. */
export interface StepEvent {
  type: 'step-start' | 'step-end' | 'step-progress'
  /** Pairs a step's start, progress and end (its title may change while it runs). */
  id?: string
  /** The step's title (as it reads when the event happens). */
  step: string
  /** Titles of the enclosing groups, outermost first (e.g. ["Checks"] for one check). */
  group?: string[]
  /** The host the step runs for, when it runs for one (a task def's `host`, inherited by subtasks). */
  host?: string
  result?: 'ok' | 'failed' | 'skipped'
  durationMs?: number
  elapsedMs?: number
  /** Why it failed or was skipped; or for progress, the step's latest output line. */
  message?: string
  /** The step's last output lines (bounded), on step-end. */
  output?: string[]
}

/** Output lines a finished step shows under its line (its full output stays where the step put it). */
export const OUTPUT_LINES_SHOWN = 20
/** How often a running step says it is still running (HOTCTL_PROGRESS_INTERVAL in ms overrides, for tests). */
const PROGRESS_EVERY_MS = 10_000

type Task = ListrTaskObject<unknown, typeof StepRenderer, typeof StepRenderer>

/**
 * listr2 renderer for logs (no TTY, CI, --json's stderr) and for --events: each step is reported
 * once, when it ends, with its duration (a group's steps are printed under the group's line);
 * a step still running after 10 s reports progress every 10 s, so a CI job never looks hung.
 * It only produces StepEvents: `ui.step` prints them as text lines or NDJSON.
 */
export class StepRenderer implements ListrRenderer {
  static nonTTY = true
  static rendererOptions: {ui?: Ui} = {}
  static rendererTaskOptions: Record<string, never> = {}

  private readonly ui: Ui
  private readonly started = new Map<string, number>()
  private readonly ended = new Set<string>()
  /** When each running step next reports progress. */
  private readonly reported = new Map<string, number>()
  private readonly output = new Map<string, string[]>()
  /** Events of a group's finished steps, held until the group's own line is printed. */
  private readonly held = new Map<string, StepEvent[]>()
  private ticker?: NodeJS.Timeout

  constructor(
    private readonly tasks: Task[],
    options: {ui?: Ui},
  ) {
    if (!options.ui) throw new Error('StepRenderer needs rendererOptions.ui')
    this.ui = options.ui
  }

  render(): void {
    this.watch(this.tasks)
    const every = Number(process.env.HOTCTL_PROGRESS_INTERVAL) || PROGRESS_EVERY_MS
    // Checked often, reported per step every `every` ms of its own running time (10 s, 20 s, …).
    this.ticker = setInterval(() => this.tick(every), Math.min(every, 1000))
    this.ticker.unref()
  }

  end(): void {
    clearInterval(this.ticker)
  }

  private watch(tasks: Task[]): void {
    for (const task of tasks) {
      task.on(ListrTaskEventType.SUBTASK, (sub) => this.watch(sub as Task[]))
      task.on(ListrTaskEventType.STATE, (state) => {
        // listr2 never closes a task its `skip` skipped: its end is this state (the reason is set just
        // after it when the task skips itself, hence the microtask).
        if (state === 'SKIPPED') return queueMicrotask(() => this.closed(task))
        if (state !== 'STARTED' || this.started.has(task.id)) return
        this.started.set(task.id, Date.now())
        if (task.hasTitle()) this.ui.step?.({type: 'step-start', id: task.id, step: title(task), ...where(task)})
      })
      task.on(ListrTaskEventType.OUTPUT, (data) => {
        const lines = redact(String(data)).split('\n')
        this.output.set(task.id, [...(this.output.get(task.id) ?? []), ...lines].slice(-OUTPUT_LINES_SHOWN))
      })
      task.on(ListrTaskEventType.CLOSED, () => this.closed(task))
    }
  }

  private closed(task: Task): void {
    if (this.ended.has(task.id)) return
    this.ended.add(task.id)
    const start = this.started.get(task.id) ?? Date.now()
    const held = this.held.get(task.id) ?? []
    this.held.delete(task.id)
    if (!task.hasTitle()) {
      // An untitled wrapper: its steps belong to the nearest titled ancestor (or print now).
      this.emitOrHold(task, held)
      return
    }
    const failed = task.hasFailed()
    const event: StepEvent = {
      type: 'step-end',
      id: task.id,
      step: title(task),
      ...where(task),
      result: failed ? 'failed' : task.isSkipped() ? 'skipped' : 'ok',
      durationMs: Date.now() - start,
    }
    const why = failed ? task.message.error : task.isSkipped() ? task.message.skip : undefined
    // A group's failure is told by its steps' lines.
    if (why && why !== task.title && !task.hasSubtasks()) event.message = redact(why)
    const out = this.output.get(task.id)
    if (out?.length) event.output = out
    this.emitOrHold(task, [event, ...held])
  }

  /** A step inside a titled group waits for the group's line; the others are reported now. */
  private emitOrHold(task: Task, events: StepEvent[]): void {
    const parent = titledAncestor(task)
    if (parent && !this.ended.has(parent.id)) {
      this.held.set(parent.id, [...(this.held.get(parent.id) ?? []), ...events])
      return
    }
    for (const e of events) this.ui.step?.(e)
  }

  private tick(every: number): void {
    const now = Date.now()
    for (const [id, start] of this.started) {
      const due = this.reported.get(id) ?? start + every
      if (this.ended.has(id) || now < due) continue
      this.reported.set(id, due + every * (Math.floor((now - due) / every) + 1)) // the next multiple of `every`
      const task = this.find(id)
      if (!task?.hasTitle() || task.hasSubtasks()) continue
      const last = (task.task as {progress?: () => string | undefined}).progress?.() ?? this.output.get(id)?.at(-1)
      this.ui.step?.({
        type: 'step-progress',
        id: task.id,
        step: title(task),
        ...where(task),
        elapsedMs: now - start,
        ...(last ? {message: last} : {}),
      })
    }
  }

  private find(id: string, tasks: Task[] = this.tasks): Task | undefined {
    for (const t of tasks) {
      if (t.id === id) return t
      const sub = t.subtasks?.length ? this.find(id, t.subtasks as Task[]) : undefined
      if (sub) return sub
    }
    return undefined
  }
}

const title = (task: Task) => redact(task.title ?? '')

function titledAncestor(task: Task): Task | undefined {
  let p = task.parent as Task | undefined
  while (p && !p.hasTitle()) p = p.parent as Task | undefined
  return p
}

/** The enclosing groups' titles and the host the step runs for (a task def's `host`, inherited). */
function where(task: Task): Pick<StepEvent, 'group' | 'host'> {
  const group: string[] = []
  let host: string | undefined
  for (let t: Task | undefined = task; t; t = t.parent as Task | undefined) {
    host ??= (t.task as {host?: string}).host
    if (t !== task && t.hasTitle()) group.unshift(title(t))
  }
  return {...(group.length ? {group} : {}), ...(host ? {host} : {})}
}
