import type {ResolvedConfig} from '../config/resolve.js'
import {parseDuration} from '../durations.js'
import {EXIT, HotctlError, usageError} from '../errors.js'
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
}

/** Parses the three flags; a bad value is a usage error naming the flag. */
export function parseCanaryFlags(flags: {
  canary?: string
  interval?: string
  maxErrorRate?: string
  maxP95Ratio?: string
}): CanaryPlan | undefined {
  if (flags.canary === undefined) {
    if (flags.interval !== undefined || flags.maxErrorRate !== undefined || flags.maxP95Ratio !== undefined)
      throw usageError(
        '--canary-interval, --max-error-rate and --max-p95-ratio go with --canary',
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
  return {steps: nums, intervalMs, maxErrorRate: Number(m[1]) / 100, maxP95Ratio}
}

/** Why a canary step breaks the plan's rules, or undefined when it keeps them. */
export function breach(step: CanaryStep, plan: CanaryPlan): string | undefined {
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

/** The canary task, run where the reload trigger would (the deploy disables that one). */
export function canaryTasks(ctx: OpContext, plan: CanaryPlan, report: CanaryReport, expected: () => string): Step[] {
  return [
    {
      title: `Canary ${plan.steps.join(' → ')} % (interval ${plan.intervalMs / 1000} s, max error rate ${pct(plan.maxErrorRate)})`,
      does: `canary: ${plan.steps.join(', ')} % of calls to the new release, then promote`,
      task: async (_c, task) => {
        const agent = agentEndpoints(ctx.config)
        const call = async (method: string, path: string, body?: unknown) => {
          const r = await request(
            {
              url: `${agent.base}${path}`,
              method,
              headers: {...agent.headers, ...(body ? {'content-type': 'application/json'} : {})},
              body: body ? JSON.stringify(body) : undefined,
              timeoutMs: ctx.config.reloadTimeoutMs,
              retries: method === 'GET' ? 2 : 0,
            },
            {signal: ctx.signal},
          )
          if (r.status !== 200) throw new Error(`${method} ${path}: HTTP ${r.status}: ${r.text.slice(0, 300)}`)
          return r.json as Record<string, unknown>
        }
        const figures = async () => {
          const m = (await call('GET', '/metrics')) as {generations: GenerationFigures[]}
          return {
            canary: m.generations.find((g) => g.role === 'canary'),
            current: m.generations.find((g) => g.role === 'current'),
          }
        }
        let canaryGen: number | undefined
        try {
          for (const percent of plan.steps.slice(0, -1)) {
            const status = await call('POST', '/check', {canary: percent})
            const info = status.canary as {generation: number; version: string | null} | null
            if (!info) {
              const err = status.last_error as {message?: string} | null
              throw new Error(
                `the service did not load a canary (state ${String(status.state)}${err?.message ? `: ${err.message}` : ''})`,
              )
            }
            if (info.version !== expected())
              throw new Error(`the canary reports release ${info.version}, expected ${expected()}`)
            canaryGen = info.generation
            task.title = `Canary at ${percent} %: watching for ${plan.intervalMs / 1000} s`
            const start = await figures()
            await sleep(plan.intervalMs, ctx.signal)
            if (ctx.signal.aborted) throw new HotctlError('interrupted', EXIT.interrupted)
            const end = await figures()
            const step = compare(percent, start, end)
            report.steps.push(step)
            const why = breach(step, plan)
            if (why) {
              await call('POST', '/abort')
              report.outcome = 'aborted'
              throw new Error(
                `canary at ${percent} %: the new release failed ${step.canaryErrors} of ${step.canaryCalls} calls ` +
                  `(${why}; the old release: ${pct(step.currentErrorRate)} errors; ` +
                  `p95 ${fmtMs(step.canaryP95Ms)} vs ${fmtMs(step.currentP95Ms)}); aborted`,
              )
            }
          }
          await call('POST', '/promote')
          report.outcome = 'promoted'
          task.title = `Canary ${plan.steps.join(' → ')} %: promoted`
        } catch (err) {
          // Any failure with a canary still loaded: drop it, so only the old code serves while restoring.
          if (canaryGen !== undefined && report.outcome === 'running')
            await call('POST', '/abort').catch(() => undefined)
          throw err
        }
      },
    },
  ]
}

const fmtMs = (ms: number | null) => (ms === null ? 'n/a' : `${ms} ms`)

/** The interval's figures: counts as differences, so each step is judged on its own traffic. */
function compare(
  percent: number,
  start: {canary?: GenerationFigures; current?: GenerationFigures},
  end: {canary?: GenerationFigures; current?: GenerationFigures},
): CanaryStep {
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
