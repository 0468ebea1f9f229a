import {describe, expect, it} from 'vitest'
import {breach, type CanaryStep, parseCanaryFlags} from '../../src/pipeline/canary.js'
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
    })
    expect(parseCanaryFlags({canary: '5%,25%,100', interval: '2m', maxErrorRate: '0.5%', maxP95Ratio: '1.5'})).toEqual({
      steps: [5, 25, 100],
      intervalMs: 120_000,
      maxErrorRate: 0.005,
      maxP95Ratio: 1.5,
    })
  })

  it('refuses bad values as usage errors naming the flag', () => {
    const msg = (f: Parameters<typeof parseCanaryFlags>[0]) => catchHotctl(() => parseCanaryFlags(f)).message
    expect(msg({canary: '0,50'})).toMatch(/^--canary 0,50: not a list of percentages/)
    expect(msg({canary: '50,50'})).toMatch(/must go up/)
    expect(msg({canary: '10', interval: 'soon'})).toMatch(/--canary-interval: "soon" is not a duration/)
    expect(msg({canary: '10', maxErrorRate: '1'})).toMatch(/--max-error-rate 1: not a percentage/)
    expect(msg({canary: '10', maxP95Ratio: '0.5'})).toMatch(/--max-p95-ratio 0.5: not a ratio of at least 1/)
    expect(msg({maxP95Ratio: '2'})).toMatch(/go with --canary/)
  })
})

describe('canary rule', () => {
  const plan = {steps: [10, 100], intervalMs: 1000, maxErrorRate: 0.01}
  it('the error rate over the interval decides; latency only with --max-p95-ratio', () => {
    expect(breach(step({canaryErrorRate: 0.01}), plan)).toBeUndefined()
    expect(breach(step({canaryErrorRate: 0.2}), plan)).toBe('error rate 20.0% > 1.0%')
    expect(breach(step({canaryP95Ms: 100}), plan)).toBeUndefined()
    expect(breach(step({canaryP95Ms: 100}), {...plan, maxP95Ratio: 2})).toBe('p95 100 ms > 2 × 10 ms')
    expect(breach(step({canaryP95Ms: 19}), {...plan, maxP95Ratio: 2})).toBeUndefined()
    expect(breach(step({canaryP95Ms: 100, currentP95Ms: null}), {...plan, maxP95Ratio: 2})).toBeUndefined()
  })
})
