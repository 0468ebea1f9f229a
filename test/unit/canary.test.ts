import {afterEach, describe, expect, it} from 'vitest'
import {errorMessage} from '../../src/errors.js'
import {breach, type CanaryHost, CanaryRun, type CanaryStep, parseCanaryFlags} from '../../src/pipeline/canary.js'
import {fakeAgent, stopFakeAgents} from './fake-agent.js'
import {fakeConfig} from './fake-target.js'
import {catchHotctl} from './helpers.js'

const step = (over: Partial<CanaryStep> = {}): CanaryStep => ({
  percent: 10,
  canaryCalls: 100,
  canaryErrors: 0,
  canaryErrorRate: 0,
  canaryP95Ms: 10,
  currentErrorRate: 0,
  currentP95Ms: 10,
  ...over,
})

describe('canary flags', () => {
  it('parses percentages (100 added when left out), interval and rates', () => {
    expect(parseCanaryFlags({})).toBeUndefined()
    expect(parseCanaryFlags({canary: '10,50'})).toEqual({
      steps: [10, 50, 100],
      intervalMs: 30_000,
      maxErrorRate: 0.01,
      maxP95Ratio: undefined,
      minCalls: 1,
    })
    expect(parseCanaryFlags({canary: '5%,25%,100', interval: '2m', maxErrorRate: '0.5%', maxP95Ratio: '1.5'})).toEqual({
      steps: [5, 25, 100],
      intervalMs: 120_000,
      maxErrorRate: 0.005,
      maxP95Ratio: 1.5,
      minCalls: 1,
    })
    expect(parseCanaryFlags({canary: '10', minCalls: '0'})?.minCalls).toBe(0)
  })

  it('refuses bad values as usage errors naming the flag', () => {
    const msg = (f: Parameters<typeof parseCanaryFlags>[0]) => catchHotctl(() => parseCanaryFlags(f)).message
    expect(msg({canary: '0,50'})).toMatch(/^--canary 0,50: not a list of percentages/)
    expect(msg({canary: '50,50'})).toMatch(/must go up/)
    expect(msg({canary: '10', interval: 'soon'})).toMatch(/--canary-interval: "soon" is not a duration/)
    expect(msg({canary: '10', maxErrorRate: '1'})).toMatch(/--max-error-rate 1: not a percentage/)
    expect(msg({canary: '10', maxP95Ratio: '0.5'})).toMatch(/--max-p95-ratio 0.5: not a ratio of at least 1/)
    expect(msg({maxP95Ratio: '2'})).toMatch(/go with --canary/)
    expect(msg({canary: '10', minCalls: 'some'})).toMatch(/--canary-min-calls some: not a whole number/)
    expect(msg({minCalls: '5'})).toMatch(/go with --canary/)
  })
})

describe('canary rule', () => {
  const plan = {steps: [10, 100], intervalMs: 1000, maxErrorRate: 0.01, minCalls: 1}
  it('a step with fewer calls than --canary-min-calls is a breach (nothing proved the release)', () => {
    expect(breach(step({canaryCalls: 0}), plan)).toMatch(
      /^only 0 calls reached the new release, fewer than --canary-min-calls 1/,
    )
    expect(breach(step({canaryCalls: 19}), {...plan, minCalls: 20})).toMatch(/only 19 calls/)
    expect(breach(step({canaryCalls: 0}), {...plan, minCalls: 0})).toBeUndefined()
  })
  it('the error rate over the interval decides; latency only with --max-p95-ratio', () => {
    expect(breach(step({canaryErrorRate: 0.01}), plan)).toBeUndefined()
    expect(breach(step({canaryErrorRate: 0.2}), plan)).toBe('error rate 20.0% > 1.0%')
    expect(breach(step({canaryP95Ms: 100}), plan)).toBeUndefined()
    expect(breach(step({canaryP95Ms: 100}), {...plan, maxP95Ratio: 2})).toBe('p95 100 ms > 2 × 10 ms')
    expect(breach(step({canaryP95Ms: 19}), {...plan, maxP95Ratio: 2})).toBeUndefined()
    expect(breach(step({canaryP95Ms: 100, currentP95Ms: null}), {...plan, maxP95Ratio: 2})).toBeUndefined()
  })
})

afterEach(stopFakeAgents)

function host(name: string, url: string): CanaryHost {
  const config = fakeConfig({services: [{name: 'app', trigger: {url, method: 'POST', headers: {}}}]} as never)
  const ctx = {
    config,
    target: undefined as never,
    ui: {json: true, say: () => undefined},
    signal: new AbortController().signal,
    env: {},
  }
  return {name, ctx, report: {steps: [], outcome: 'running'}, expected: () => 'R1'}
}

describe('CanaryRun: one canary on every host of a wave', () => {
  const plan = {steps: [10, 50, 100], intervalMs: 10, maxErrorRate: 0.01, minCalls: 1}

  it('moves every host to the next share only once all were judged at this one, then promotes each', async () => {
    const calls: string[] = []
    // h2 answers slowly: h1 must still wait for h2's figures before it goes to 50 %.
    const hosts = [host('h1', await fakeAgent('h1', calls)), host('h2', await fakeAgent('h2', calls, {slowMs: 150}))]
    const run = new CanaryRun(hosts, plan, new AbortController().signal)
    await Promise.all(
      hosts.map(async () => {
        for (let i = 0; i < plan.steps.length; i++) await run.step(i)
      }),
    )
    const order = calls.map((c) => c.replace(/^h\d /, ''))
    expect(calls.slice(0, 2).sort()).toEqual(['h1 /check {"canary":10}', 'h2 /check {"canary":10}'])
    expect(order).toEqual([
      '/check {"canary":10}',
      '/check {"canary":10}',
      '/check {"canary":50}',
      '/check {"canary":50}',
      '/promote',
      '/promote',
    ])
    for (const h of hosts) {
      expect(h.report.outcome).toBe('promoted')
      expect(h.report.steps.map((s) => [s.percent, s.canaryCalls])).toEqual([
        [10, 100],
        [50, 100],
      ])
    }
  })

  it('a breach on one host aborts the canary on every host; that host is the failure, the others fail with it', async () => {
    const calls: string[] = []
    const hosts = [
      host('h1', await fakeAgent('h1', calls)),
      host('h2', await fakeAgent('h2', calls, {failRate: 0.2})),
      host('h3', await fakeAgent('h3', calls)),
    ]
    const run = new CanaryRun(hosts, plan, new AbortController().signal)
    await expect(run.step(0)).rejects.toThrow(
      /^canary at 10 %: the new release failed 20 of 100 calls \(error rate 20.0% > 1.0%.*aborted on h1, h2, h3$/,
    )
    expect(run.failure?.host.name).toBe('h2')
    expect(calls.filter((c) => c.endsWith('/abort')).sort()).toEqual(['h1 /abort', 'h2 /abort', 'h3 /abort'])
    expect(hosts.map((h) => h.report.outcome)).toEqual(['aborted', 'aborted', 'aborted'])
    expect(hosts.map((h) => h.report.steps.map((s) => s.canaryErrorRate))).toEqual([[0], [0.2], [0]])
    expect(errorMessage(run.errorFor(hosts[0]!))).toMatch(
      /^canary aborted with h2: canary at 10 %.*\(here: 0 of 100 calls failed\)$/,
    )
    expect(run.errorFor(hosts[1]!)).toBe(run.failure!.error)
    await expect(run.step(1)).rejects.toBe(run.failure!.error) // no later step runs
    expect(calls.some((c) => c.includes('"canary":50') || c.endsWith('/promote'))).toBe(false)
  })

  it('a host whose agent loads no canary fails the step; the canary loaded on the others is dropped', async () => {
    const calls: string[] = []
    const hosts = [host('h1', await fakeAgent('h1', calls)), host('h2', await fakeAgent('h2', calls, {noCanary: true}))]
    const run = new CanaryRun(hosts, plan, new AbortController().signal)
    await expect(run.step(0)).rejects.toThrow(/did not load a canary \(state rejected: SyntaxError in handlers.py\)/)
    expect(run.failure?.host.name).toBe('h2')
    expect(calls).toContain('h1 /abort')
    expect(hosts[0]!.report.outcome).toBe('aborted')
  })
})
