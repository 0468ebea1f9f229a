import type {ServiceSpec} from '../config/resolve.js'
import type {StatusSpec} from '../config/schema.js'
import {parseDuration} from '../durations.js'
import type {Interrupt} from '../interrupt.js'
import {atPath, NoAnswerError, request, sleep} from './http.js'
import {describeCommand, type ServiceRunner} from './run-command.js'
import {formatDuration} from '../ui/format.js'

const httpOf = (
  spec: {url: string; method: string; headers: Record<string, string>; timeout: string | number; retries: number},
  field: string,
) => ({
  url: spec.url,
  method: spec.method,
  headers: spec.headers,
  timeoutMs: parseDuration(spec.timeout, field),
  retries: spec.retries,
})

/**
 * Asks one service to hot-reload: an HTTP call (retried; 409 = tree not yet consistent) or a command.
 * `short`: after an interrupt, with the short limits of src/interrupt.ts.
 */
export async function triggerReload(
  svc: ServiceSpec,
  opts: {run: ServiceRunner; env: Record<string, string>; signal?: AbortSignal; short?: Interrupt},
): Promise<string> {
  const t = svc.trigger
  if (!t) return 'no trigger configured (the service watches by itself)'
  if ('command' in t) {
    const r = await opts.run(t.command, {
      env: opts.env,
      on: t.on,
      signal: opts.signal,
      timeoutMs: opts.short?.shortCommandMs(),
    })
    const how = r.notRun ?? (r.timedOut ? 'timed out' : r.canceled ? 'was stopped' : `failed (exit ${r.exitCode})`)
    if (!r.ok) throw new Error(`reload trigger \`${describeCommand(t.command)}\` ${how}:\n${r.tail}`)
    return 'trigger command ran'
  }
  const req = httpOf(t, `reload.trigger.timeout`)
  const res = await request(opts.short ? opts.short.shortHttp(req) : req, {signal: opts.signal, retryOn: [409]})
  if (res.status >= 400)
    throw new Error(`reload trigger ${t.method} ${t.url} answered ${res.status}: ${res.text.slice(0, 300)}`)
  return `trigger answered ${res.status}`
}

/** What one status request said. */
export interface StatusReading {
  /** The release id at `status.version` (only from an answer below 400). */
  version: string | null
  /** HTTP status; undefined when no answer came. */
  http?: number
  /** Why no answer came. */
  noAnswer?: NoAnswerError['reason']
  /** The value at `status.state`, as text. */
  state?: string
  /** The service's last error (at `status.lastError`), one line. */
  serviceError?: string
  /** Why there is no version: the HTTP status or the transport error. */
  error?: string
  raw?: unknown
}

/**
 * Reads a service's status once. `retries` overrides the spec's: a poll loop is its own retry.
 * Never throws.
 */
export async function reportedVersion(
  status: StatusSpec,
  signal?: AbortSignal,
  retries = status.retries,
): Promise<StatusReading> {
  let res
  try {
    // A new connection per poll: a kept-alive one stays with one worker (pm2 cluster, Node servers).
    const headers = {connection: 'close', ...status.headers}
    res = await request({...httpOf(status, 'reload.status.timeout'), headers, retries}, {signal})
  } catch (err) {
    return {
      version: null,
      error: (err as Error).message,
      noAnswer: err instanceof NoAnswerError ? err.reason : 'refused',
    }
  }
  const state = atPath(res.json, status.state)
  const reading: StatusReading = {
    version: null,
    http: res.status,
    raw: res.json,
    state: state === undefined || state === null ? undefined : String(state),
    serviceError: oneLine(atPath(res.json, status.lastError)),
  }
  if (res.status >= 400) return {...reading, error: `status answered HTTP ${res.status}`}
  const v = atPath(res.json, status.version)
  return {...reading, version: v === undefined || v === null ? null : String(v)}
}

/** One line of an error a service reports: a string (a traceback's last line), or {type, message}. */
export function oneLine(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined
  let text: string
  if (typeof value === 'string') text = value
  else if (typeof value === 'object' && typeof (value as {message?: unknown}).message === 'string') {
    const {type, message} = value as {type?: unknown; message: string}
    text = typeof type === 'string' && type && !message.startsWith(type) ? `${type}: ${message}` : message
  } else text = JSON.stringify(value)
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
  const line = (/^Traceback \(most recent call last\)/.test(lines[0] ?? '') ? lines.at(-1) : lines[0]) ?? ''
  return line.length > 300 ? `${line.slice(0, 297)}...` : line
}

/**
 * `n` status requests sent at once (reportedVersion's, in order). One at a time, a server whose
 * workers share one socket (uWSGI) hands every connection to the same idle worker; requests that
 * overlap reach the others. Never throws.
 */
export function reportedVersions(
  status: StatusSpec,
  n: number,
  signal?: AbortSignal,
  retries = status.retries,
): Promise<StatusReading[]> {
  return Promise.all(Array.from({length: n}, () => reportedVersion(status, signal, retries)))
}

/** How one status answer counts towards "the expected release is live". */
export type Verdict =
  | {kind: 'match'}
  /** `noAnswer`: no answer came in time (neither ends nor starts the grace period). */
  | {kind: 'waiting'; why: string; noAnswer?: boolean; other?: boolean}
  /** HTTP 5xx, or no connection: fails once it lasts longer than the grace period. */
  | {kind: 'down'; why: string}
  /** The service says the reload failed (a fail state): fails at once. */
  | {kind: 'failed'; why: string}
  /** The service says the changes need a restart (a restart state): fails at once, or restarts. */
  | {kind: 'restart'; why: string}

/** Pure: what a reading means for a service expected to report `expected`. */
export function judge(r: StatusReading, spec: StatusSpec, expected: string): Verdict {
  if (r.version === expected) return {kind: 'match'}
  const said = r.serviceError ? `: ${r.serviceError}` : ''
  if (r.state !== undefined && spec.restartStates.includes(r.state)) {
    // The reference agent says "changes need a process restart: requirements.txt".
    const files = /^.*restart[^:]*:\s*(.+)$/i.exec(r.serviceError ?? '')?.[1]
    return {
      kind: 'restart',
      why: `the service says these changes need a restart: ${files ?? r.serviceError ?? `state "${r.state}"`}`,
    }
  }
  if (r.state !== undefined && spec.failStates.includes(r.state))
    return {kind: 'failed', why: `the service reports state "${r.state}"${said}`}
  if (r.http !== undefined && r.http >= 500) return {kind: 'down', why: `status answered HTTP ${r.http}`}
  if (r.noAnswer === 'refused') return {kind: 'down', why: `status refused the connection (${r.error})`}
  if (r.noAnswer) return {kind: 'waiting', why: r.error ?? 'no answer', noAnswer: true}
  if (r.error) return {kind: 'waiting', why: r.error}
  return {
    kind: 'waiting',
    why: `reports version ${JSON.stringify(r.version)}${r.state !== undefined ? ` (state "${r.state}"${said})` : ''}`,
    other: true,
  }
}

export interface ConfirmTiming {
  /** A matching answer counts only once matching answers have spanned this long without a miss. */
  settleMs: number
  /** Nothing but 5xx or refused connections for this long fails the reload. */
  graceMs: number
}

export const timingOf = (status: StatusSpec): ConfirmTiming => ({
  settleMs: parseDuration(status.settle, 'reload.status.settle'),
  graceMs: parseDuration(status.grace, 'reload.status.grace'),
})

/** With a settle window, at least this many matching answers in a row. */
const MIN_SETTLE_POLLS = 3

export type Step = {kind: 'confirmed'} | {kind: 'pending'} | {kind: 'failed' | 'restart' | 'down'; message: string}

/**
 * One service's way to "live", fed one verdict per poll (pure, clock passed in). Multi-worker
 * servers (gunicorn, uWSGI, pm2) replace workers one by one and each answers from the code it
 * loaded, so the first matching answer proves nothing about the rest: confirmed only when
 * consecutive matching answers span the settle window.
 */
export class LiveConfirmation {
  private streakStart: number | undefined
  private streak = 0
  private downSince: number | undefined
  /** What the service said last, for "not live" messages. */
  last = 'no answer yet'

  constructor(
    private readonly timing: ConfirmTiming,
    private readonly started: number,
  ) {}

  step(v: Verdict, now: number): Step {
    if (v.kind === 'match') {
      this.streakStart ??= now
      this.streak++
      this.downSince = undefined
      this.last = `reported the release ${this.streak} time(s) in a row over ${formatDuration(now - this.streakStart)}`
      const settled =
        this.timing.settleMs === 0 ||
        (now - this.streakStart >= this.timing.settleMs && this.streak >= MIN_SETTLE_POLLS)
      return settled ? {kind: 'confirmed'} : {kind: 'pending'}
    }
    if (this.streak > 0) v = {...v, why: `${v.why} after reporting the release ${this.streak} time(s)`}
    this.streakStart = undefined
    this.streak = 0
    this.last = v.why
    if (v.kind === 'failed' || v.kind === 'restart') return {kind: v.kind, message: v.why}
    if (v.kind === 'down') {
      this.downSince ??= now
      if (now - this.downSince >= this.timing.graceMs) {
        return {
          kind: 'down',
          message: `${v.why} for ${formatDuration(now - this.downSince)} (reload.status.grace ${formatDuration(this.timing.graceMs)})`,
        }
      }
    } else if (v.kind === 'waiting' && !v.noAnswer) {
      // Any answer ends it: an old worker still answering means the server is still swapping workers
      // (uWSGI ignores a new reload until its chain is done, so failing now would doom the restore).
      this.downSince = undefined
    }
    return {kind: 'pending'}
  }

  get settling(): boolean {
    return this.streak > 0
  }

  /** Past the timeout; a settle window already under way may finish. */
  expired(now: number, timeoutMs: number): boolean {
    return now - this.started >= timeoutMs + (this.streak > 0 ? this.timing.settleMs : 0)
  }
}

/**
 * When to fire a service's trigger again (pure, clock passed in): at an answer naming another
 * release once `intervalMs` has passed since the trigger, then twice as long, and so on. uWSGI
 * drops a chain reload asked for while one still runs (a deploy right after another, or after a
 * reload someone else asked for): the trigger never takes effect, or a worker respawned before the
 * sync keeps the old code while the others load the new. 5xx and unanswered polls (workers
 * restarting) start the wait again; the release answering does not, but fires nothing either.
 */
export class RetriggerClock {
  private since: number
  /** How many times the trigger was fired again. */
  fired = 0

  constructor(
    private intervalMs: number,
    started: number,
  ) {
    this.since = started
  }

  due(v: Verdict, now: number): boolean {
    if (this.intervalMs <= 0 || v.kind === 'match') return false
    if (v.kind !== 'waiting' || !v.other) {
      this.since = now
      return false
    }
    if (now - this.since < this.intervalMs) return false
    this.since = now
    this.intervalMs *= 2
    this.fired++
    return true
  }
}

/** How much a verdict says against "live" (see worstOf). */
function weigh(v: Verdict): number {
  if (v.kind === 'failed' || v.kind === 'restart') return 4
  if (v.kind === 'waiting') return v.other && !v.noAnswer ? 3 : 1
  return v.kind === 'down' ? 2 : 0
}

/**
 * The answer of a burst of polls: a failed or restart state first; then another release (a worker
 * on the old code, which also ends the grace period, as a lone poll's would); then 5xx or refused;
 * then no answer; a match only when every answer matched.
 */
export function worstOf(verdicts: Verdict[]): Verdict {
  return verdicts.reduce((worst, v) => (weigh(v) > weigh(worst) ? v : worst))
}

export interface ConfirmFailure {
  name: string
  kind: 'failed' | 'restart' | 'down' | 'timeout' | 'interrupted'
  message: string
}

/** Poll every 250 ms until the release shows up, then every 100 ms: more answers, more workers seen. */
const POLL_MS = 250
const SETTLE_POLL_MS = 100

export interface ConfirmOpts {
  timeoutMs: number
  signal?: AbortSignal
  onPoll?: (service: string, last: string) => void
  /** Fires a service's trigger again (see RetriggerClock); absent: never. */
  retrigger?: (svc: ServiceSpec) => Promise<string>
}

/**
 * Polls every service's status until each has settled on `expected`. Returns [] when all have;
 * else the failure that ended it (a fail or restart state, persistent 5xx/refused: at once, the
 * other services are not waited for) or every service still not live at the timeout.
 */
export async function confirmLive(
  services: ServiceSpec[],
  expected: string,
  opts: ConfirmOpts,
): Promise<ConfirmFailure[]> {
  const stop = new AbortController()
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal
  const failures: ConfirmFailure[] = []
  await Promise.all(
    services
      .filter((s) => s.status)
      .map(async (svc) => {
        const failure = await confirmOne(svc, expected, {...opts, signal})
        if (!failure || stop.signal.aborted) return
        failures.push(failure)
        if (failure.kind !== 'timeout') stop.abort() // one failed reload fails them all
      }),
  )
  if (opts.signal?.aborted)
    return [{name: services.map((s) => s.name).join(', '), kind: 'interrupted', message: 'interrupted'}]
  // The failure that ended the wait first; services that merely timed out before it after.
  return failures.sort((a, b) => Number(a.kind === 'timeout') - Number(b.kind === 'timeout'))
}

async function confirmOne(
  svc: ServiceSpec,
  expected: string,
  opts: ConfirmOpts & {signal: AbortSignal},
): Promise<ConfirmFailure | undefined> {
  const {timeoutMs, signal} = opts
  const status = svc.status!
  const started = Date.now()
  const track = new LiveConfirmation(timingOf(status), started)
  const again = new RetriggerClock(
    opts.retrigger && svc.trigger ? parseDuration(status.retrigger, 'reload.status.retrigger') : 0,
    started,
  )
  let note = ''
  for (;;) {
    // Settling, a poll is a burst: a worker left on the old code (a dropped chain reload) answers.
    const readings = await reportedVersions(status, track.settling ? status.probes : 1, signal, 0)
    if (signal.aborted) return {name: svc.name, kind: 'interrupted', message: 'interrupted'}
    const now = Date.now()
    const verdict = worstOf(readings.map((r) => judge(r, status, expected)))
    const step = track.step(verdict, now)
    if (step.kind === 'confirmed') return undefined
    if (step.kind !== 'pending') return {name: svc.name, kind: step.kind, message: step.message}
    if (track.expired(now, timeoutMs)) return {name: svc.name, kind: 'timeout', message: `${track.last}${note}`}
    if (again.due(verdict, now)) {
      const said = await opts.retrigger!(svc).then(
        () => 'ran',
        (err: Error) => `failed: ${err.message.split('\n')[0]}`,
      )
      note = ` (no sign of a reload, so the trigger was fired again ${again.fired} time(s); last ${said})`
    }
    opts.onPoll?.(svc.name, `${track.last}${note}`)
    await sleep(track.settling ? SETTLE_POLL_MS : POLL_MS, signal)
  }
}
