import type {ResolvedConfig} from '../config/resolve.js'
import {parseDuration} from '../durations.js'
import {errorMessage, EXIT, HotctlError, usageError} from '../errors.js'
import {request, sleep} from '../service/http.js'
import type {OpContext} from './context.js'
import type {Step} from './steps.js'

/**
 * `deploy --canary 10,50,100` (issue 9): the reference agent keeps old and new code side by side in
 * one process, so a share of calls can go to the new generation before it takes all of them.
 * After the sync, `POST …/check {"canary": p}` loads the new generation at p %; after each interval
 * the new generation's error rate over that interval (from `…/metrics`) is compared with the rule;
 * a breach aborts (`…/abort`: the agent drops the new generation) and fails the deploy with the
 * figures, so the files are restored and the old release proven live (exit 3). The last step
 * promotes (`…/promote`); the normal confirm and smoke follow.
 */

export interface CanaryPlan {
  /** Ascending percentages; the last is 100 (promote). */
  steps: number[]
  intervalMs: number
  /** Highest error rate (0..1) the new generation may show over an interval. */
  maxErrorRate: number
  /** When set: the new generation's p95 may be at most this many times the old one's. */
  maxP95Ratio?: number
  /** Fewest calls the new generation must serve in a step for it to count as judged (0: none needed). */
  minCalls: number
}

/** Parses the three flags; a bad value is a usage error naming the flag. */
export function parseCanaryFlags(flags: {
  canary?: string
  interval?: string
  maxErrorRate?: string
  maxP95Ratio?: string
  minCalls?: string
}): CanaryPlan | undefined {
  if (flags.canary === undefined) {
    if (
      flags.interval !== undefined ||
      flags.maxErrorRate !== undefined ||
      flags.maxP95Ratio !== undefined ||
      flags.minCalls !== undefined
    )
      throw usageError(
        '--canary-interval, --max-error-rate, --max-p95-ratio and --canary-min-calls go with --canary',
        'Add --canary 10,50,100.',
      )
    return undefined
  }
  const steps = flags.canary.split(',').map((s) => s.trim().replace(/%$/, ''))
  const nums = steps.map(Number)
  if (steps.some((s) => !/^\d+$/.test(s)) || nums.some((n) => n < 1 || n > 100))
    throw usageError(`--canary ${flags.canary}: not a list of percentages 1..100`, 'Write e.g. --canary 10,50,100.')
  if (nums.some((n, i) => i > 0 && n <= nums[i - 1]!))
    throw usageError(`--canary ${flags.canary}: the percentages must go up`, 'Write e.g. --canary 10,50,100.')
  if (nums.at(-1) !== 100) nums.push(100)
  const intervalMs = parseDuration(flags.interval ?? '30s', '--canary-interval')
  const rate = (flags.maxErrorRate ?? '1%').trim()
  const m = /^(\d+(?:\.\d+)?)\s*%$/.exec(rate)
  if (!m || Number(m[1]) > 100)
    throw usageError(`--max-error-rate ${rate}: not a percentage`, 'Write e.g. --max-error-rate 1% (or 0.5%).')
  let maxP95Ratio: number | undefined
  if (flags.maxP95Ratio !== undefined) {
    maxP95Ratio = Number(flags.maxP95Ratio)
    if (!/^\d+(\.\d+)?$/.test(flags.maxP95Ratio.trim()) || !(maxP95Ratio >= 1))
      throw usageError(
        `--max-p95-ratio ${flags.maxP95Ratio}: not a ratio of at least 1`,
        'Write e.g. --max-p95-ratio 2.',
      )
  }
  const minCalls = Number(flags.minCalls ?? '1')
  if (!/^\d+$/.test((flags.minCalls ?? '1').trim()))
    throw usageError(
      `--canary-min-calls ${flags.minCalls}: not a whole number`,
      'Write e.g. --canary-min-calls 20 (0 lets a step with no traffic pass).',
    )
  return {steps: nums, intervalMs, maxErrorRate: Number(m[1]) / 100, maxP95Ratio, minCalls}
}

/** Why a canary step breaks the plan's rules, or undefined when it keeps them. */
export function breach(step: CanaryStep, plan: CanaryPlan): string | undefined {
  // A step nobody called proves nothing: failing closed keeps an untested release from being promoted.
  if (step.canaryCalls < plan.minCalls)
    return (
      `only ${step.canaryCalls} calls reached the new release, fewer than --canary-min-calls ${plan.minCalls}: ` +
      'nothing proved it (send traffic, lengthen --canary-interval, or lower --canary-min-calls)'
    )
  if (step.canaryErrorRate > plan.maxErrorRate)
    return `error rate ${pct(step.canaryErrorRate)} > ${pct(plan.maxErrorRate)}`
  const {canaryP95Ms: c, currentP95Ms: o} = step
  if (plan.maxP95Ratio !== undefined && c !== null && o !== null && o > 0 && c > o * plan.maxP95Ratio)
    return `p95 ${fmtMs(c)} > ${plan.maxP95Ratio} × ${fmtMs(o)}`
  return undefined
}

/** The agent's endpoints, found from the one service's reload trigger (…/api/v1/hot-reload/check). */
export function agentEndpoints(config: ResolvedConfig): {base: string; headers: Record<string, string>} {
  const triggers = config.services.map((s) => s.trigger)
  const t = triggers[0]
  if (triggers.length !== 1 || !t || !('url' in t) || !/\/check\/?$/.test(new URL(t.url).pathname))
    throw usageError(
      '--canary needs one service whose reload.trigger is the agent check URL (…/api/v1/hot-reload/check)',
      'Point reload.trigger.url at the reference agent, or deploy without --canary.',
    )
  return {base: t.url.replace(/\/check\/?$/, ''), headers: t.headers}
}

interface GenerationFigures {
  generation: number
  role: string
  calls: number
  errors: number
  p95_ms: number | null
}

/** The generations' figures at one moment, as `…/metrics` serves them. */
interface Figures {
  canary?: GenerationFigures
  current?: GenerationFigures
}

/** What happened at each step, for the result and the error of a breach. */
export interface CanaryStep {
  percent: number
  canaryCalls: number
  canaryErrors: number
  canaryErrorRate: number
  canaryP95Ms: number | null
  currentErrorRate: number
  currentP95Ms: number | null
}

export interface CanaryReport {
  steps: CanaryStep[]
  outcome: 'promoted' | 'aborted' | 'running'
}

const pct = (r: number) => `${(r * 100).toFixed(1)}%`

/**
 * One host's agent, as a canary drives it: load the new release at a share, read the
 * generations' figures, abort, promote. Its endpoints come from that host's reload trigger (a
 * fleet host's config has `${host}` filled in).
 */
export function agentClient(ctx: OpContext) {
  const agent = agentEndpoints(ctx.config)
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    signal: AbortSignal | undefined = ctx.signal,
    ok = [200],
  ) => {
    const r = await request(
      {
        url: `${agent.base}${path}`,
        method,
        headers: {...agent.headers, ...(body ? {'content-type': 'application/json'} : {})},
        body: body ? JSON.stringify(body) : undefined,
        timeoutMs: ctx.config.reloadTimeoutMs,
        retries: method === 'GET' ? 2 : 0,
      },
      {signal},
    )
    if (!ok.includes(r.status)) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.text.slice(0, 300)}`)
    return r.json as Record<string, unknown>
  }
  return {
    /** `…/check {"canary": percent}`: the new generation takes that share; its version must be `expected`. */
    async load(percent: number, expected: string): Promise<void> {
      const status = await call('POST', '/check', {canary: percent})
      const info = status.canary as {generation: number; version: string | null} | null
      if (!info) {
        const err = status.last_error as {message?: string} | null
        throw new Error(
          `the service did not load a canary (state ${String(status.state)}${err?.message ? `: ${err.message}` : ''})`,
        )
      }
      if (info.version !== expected) throw new Error(`the canary reports release ${info.version}, expected ${expected}`)
    },
    async figures(): Promise<Figures> {
      const m = (await call('GET', '/metrics')) as {generations: GenerationFigures[]}
      return {
        canary: m.generations.find((g) => g.role === 'canary'),
        current: m.generations.find((g) => g.role === 'current'),
      }
    },
    // Not under the interrupt's signal: an interrupted canary is dropped too. 409: none was loaded.
    abort: async () => void (await call('POST', '/abort', undefined, undefined, [200, 409])),
    promote: async () => void (await call('POST', '/promote')),
  }
}

type Agent = ReturnType<typeof agentClient>

/** A host the canary runs on (the single target, or one host of a fleet's wave). */
export interface CanaryHost {
  /** The host's name in a fleet; undefined for a single target. */
  name?: string
  ctx: OpContext
  /** Its figures, step by step, and the outcome (the host's deploy result holds it). */
  report: CanaryReport
  /** The release the canary must report. */
  expected: () => string
  /** Runs once, before the canary first loads there (the deploy journals its reload phase). */
  begin?: () => Promise<void>
}

/**
 * The canary of one target, or of every host of a fleet's wave at once: each step loads the new
 * release at its share on every host, waits the interval, and judges every host on its own
 * figures (its old generation is its baseline). A breach, or any failure, on one host aborts the
 * canary on all of them; the last step promotes everywhere. Steps are shared: each host's task
 * awaits the same step, so the hosts move from one share to the next together.
 */
export class CanaryRun {
  /** The first failure: the host it happened on and the error (with the figures, for a breach). */
  failure?: {host: CanaryHost; error: unknown}
  private readonly agents: Map<CanaryHost, Agent>
  private readonly started = new Set<CanaryHost>()
  private readonly running = new Map<number, Promise<void>>()
  private aborted?: Promise<void>

  constructor(
    readonly hosts: CanaryHost[],
    readonly plan: CanaryPlan,
    private readonly signal: AbortSignal,
  ) {
    this.agents = new Map(hosts.map((h) => [h, agentClient(h.ctx)]))
  }

  /** Step `i` of the plan (`plan.steps[i]` %; the last one promotes) on every host, run once. */
  step(i: number): Promise<void> {
    let p = this.running.get(i)
    if (!p) {
      p = (i > 0 ? this.step(i - 1) : Promise.resolve()).then(() => this.runStep(i))
      this.running.set(i, p)
    }
    return p
  }

  /** The error a host's task fails with: the failure itself on its host, "aborted with …" on the others. */
  errorFor(host: CanaryHost): unknown {
    const f = this.failure
    if (!f || f.host === host) return f?.error
    const mine = host.report.steps.at(-1)
    const own = mine ? ` (here: ${mine.canaryErrors} of ${mine.canaryCalls} calls failed)` : ''
    return new Error(`canary aborted with ${f.host.name ?? 'the target'}: ${errorMessage(f.error)}${own}`)
  }

  private async runStep(i: number): Promise<void> {
    const percent = this.plan.steps[i]!
    try {
      if (this.failure) throw this.failure.error
      if (i === this.plan.steps.length - 1) {
        await this.each((_h, a) => a.promote())
        for (const h of this.hosts) h.report.outcome = 'promoted'
        return
      }
      await this.each(async (h, a) => {
        if (!this.started.has(h)) await h.begin?.()
        this.started.add(h)
        await a.load(percent, h.expected())
      })
      const start = await this.each((_h, a) => a.figures())
      await sleep(this.plan.intervalMs, this.signal)
      if (this.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
      const end = await this.each((_h, a) => a.figures())
      const judged = this.hosts.map((h, k) => {
        const step = compare(percent, start[k]!, end[k]!)
        h.report.steps.push(step)
        return {h, step, why: breach(step, this.plan)}
      })
      const broke = judged.find((j) => j.why)
      if (broke) {
        const {step, why} = broke
        const on = this.hosts.length > 1 ? ` on ${this.hosts.map((h) => h.name).join(', ')}` : ''
        this.failure = {
          host: broke.h,
          error: new Error(
            `canary at ${percent} %: the new release failed ${step.canaryErrors} of ${step.canaryCalls} calls ` +
              `(${why}; the old release: ${pct(step.currentErrorRate)} errors; ` +
              `p95 ${fmtMs(step.canaryP95Ms)} vs ${fmtMs(step.currentP95Ms)}); aborted${on}`,
          ),
        }
        throw this.failure.error
      }
    } catch (err) {
      this.failure ??= {host: this.hosts[0]!, error: err}
      // Any failure with a canary loaded anywhere: drop it everywhere, so only the old code serves while restoring.
      await this.abortAll()
      throw this.failure.error
    }
  }

  /** `fn` on every host at once; the first host that fails is the run's failure. */
  private async each<T>(fn: (h: CanaryHost, a: Agent) => Promise<T>): Promise<T[]> {
    const out = await Promise.allSettled(this.hosts.map((h) => fn(h, this.agents.get(h)!)))
    const k = out.findIndex((o) => o.status === 'rejected')
    if (k >= 0) {
      this.failure ??= {host: this.hosts[k]!, error: (out[k] as PromiseRejectedResult).reason}
      throw this.failure.error
    }
    return out.map((o) => (o as PromiseFulfilledResult<T>).value)
  }

  private abortAll(): Promise<void> {
    this.aborted ??= Promise.all(
      [...this.started].map(async (h) => {
        if (h.report.outcome !== 'running') return
        h.report.outcome = 'aborted'
        await this.agents
          .get(h)!
          .abort()
          .catch((err) => h.ctx.ui.say(`hotctl: warning: could not abort the canary: ${errorMessage(err)}`))
      }),
    ).then(() => undefined)
    return this.aborted
  }
}

/** One host's canary steps as tasks: each awaits the run's shared step, then shows that host's figures. */
export function canaryHostSteps(run: CanaryRun, host: CanaryHost): Step[] {
  const {steps, intervalMs} = run.plan
  return steps.map((percent, i): Step => {
    const last = i === steps.length - 1
    return {
      title: last ? 'Promote: 100 %' : `At ${percent} %: watching for ${intervalMs / 1000} s`,
      task: async (_c, task) => {
        try {
          await run.step(i)
        } catch {
          throw run.errorFor(host)
        }
        const s = host.report.steps[i]
        task.title = last ? 'Promoted: 100 %' : s ? `At ${percent} %: ${describeStep(s)}` : `At ${percent} %`
      },
    }
  })
}

/** A step's figures in words, e.g. `0 of 52 calls failed (0.0%), p95 1.2 ms (old 1.0 ms)`. */
export function describeStep(s: CanaryStep): string {
  return (
    `${s.canaryErrors} of ${s.canaryCalls} calls failed (${pct(s.canaryErrorRate)}), ` +
    `p95 ${fmtMs(s.canaryP95Ms)} (old ${fmtMs(s.currentP95Ms)})`
  )
}

/** What the canary step of a task tree is called. */
export const canaryTitle = (plan: CanaryPlan) =>
  `Canary ${plan.steps.join(' → ')} % (interval ${plan.intervalMs / 1000} s, max error rate ${pct(plan.maxErrorRate)})`

/** The single target's canary task, run where the reload trigger would (the deploy disables that one). */
export function canaryTasks(host: CanaryHost, plan: CanaryPlan): Step[] {
  const run = new CanaryRun([host], plan, host.ctx.signal)
  return [
    {
      title: canaryTitle(plan),
      does: `canary: ${plan.steps.join(', ')} % of calls to the new release, then promote`,
      task: (_c, task) => task.newListr(canaryHostSteps(run, host), {concurrent: false, exitOnError: true}),
    },
  ]
}

const fmtMs = (ms: number | null) => (ms === null ? 'n/a' : `${ms} ms`)

/** The interval's figures: counts as differences, so each step is judged on its own traffic. */
function compare(percent: number, start: Figures, end: Figures): CanaryStep {
  const delta = (a: GenerationFigures | undefined, b: GenerationFigures | undefined) => ({
    calls: (b?.calls ?? 0) - (a?.calls ?? 0),
    errors: (b?.errors ?? 0) - (a?.errors ?? 0),
  })
  const c = delta(start.canary, end.canary)
  const o = delta(start.current, end.current)
  return {
    percent,
    canaryCalls: c.calls,
    canaryErrors: c.errors,
    canaryErrorRate: c.calls ? c.errors / c.calls : 0,
    canaryP95Ms: end.canary?.p95_ms ?? null,
    currentErrorRate: o.calls ? o.errors / o.calls : 0,
    currentP95Ms: end.current?.p95_ms ?? null,
  }
}
