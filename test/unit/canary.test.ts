import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterEach, describe, expect, it} from 'vitest'
import {errorMessage} from '../../src/errors.js'
import {breach, type CanaryHost, CanaryRun, type CanaryStep, parseCanaryFlags} from '../../src/pipeline/canary.js'
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

/**
 * A fake reference agent on loopback: `/check {"canary": p}` loads a canary, `/metrics` serves
 * figures that grow by 100 calls per read (the canary failing `failRate` of them), `/abort` and
 * `/promote` end it. `calls` records what hotctl asked, in order, named by host.
 */
async function fakeAgent(name: string, calls: string[], opts: {failRate?: number; noCanary?: boolean; slowMs?: number} = {}) {
  let canary: number | null = null
  let reads = 0
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += String(d)))
    req.on('end', () => {
      const path = req.url!.replace('/api/v1/hot-reload', '')
      const send = (status: number, json: unknown) =>
        res.writeHead(status, {'content-type': 'application/json'}).end(JSON.stringify(json))
      if (path === '/metrics' && opts.slowMs && !req.headers['x-slowed']) {
        req.headers['x-slowed'] = '1'
        return void setTimeout(() => req.emit('end'), opts.slowMs)
      }
      if (path === '/metrics') {
        reads++
        const n = reads * 100
        return send(200, {
          generations: [
            {generation: 1, role: 'current', calls: n, errors: 0, p95_ms: 1},
            ...(canary === null
              ? []
              : [{generation: 2, role: 'canary', calls: n, errors: Math.round(n * (opts.failRate ?? 0)), p95_ms: 1}]),
          ],
        })
      }
      calls.push(`${name} ${path}${body ? ` ${body}` : ''}`)
      if (path === '/check') {
        canary = opts.noCanary ? null : JSON.parse(body).canary
        return send(200, {
          state: opts.noCanary ? 'rejected' : 'canary',
          canary: canary === null ? null : {generation: 2, version: 'R1', percent: canary},
          last_error: opts.noCanary ? {message: 'SyntaxError in handlers.py'} : null,
        })
      }
      if (canary === null) return send(409, {error: 'no canary'})
      canary = null
      return send(200, {state: 'live'})
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const {port} = server.address() as AddressInfo
  servers.push(server)
  return `http://127.0.0.1:${port}/api/v1/hot-reload/check`
}

const servers: http.Server[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.close()
})

function host(name: string, url: string): CanaryHost {
  const config = fakeConfig({services: [{name: 'app', trigger: {url, method: 'POST', headers: {}}}]} as never)
  const ctx = {config, target: undefined as never, ui: {json: true, say: () => undefined}, signal: new AbortController().signal, env: {}}
  return {name, ctx, report: {steps: [], outcome: 'running'}, expected: () => 'R1'}
}

describe('CanaryRun: one canary on every host of a wave', () => {
  const plan = {steps: [10, 50, 100], intervalMs: 10, maxErrorRate: 0.01}

  it('moves every host to the next share only once all were judged at this one, then promotes each', async () => {
    const calls: string[] = []
    // h2 answers slowly: h1 must still wait for h2's figures before it goes to 50 %.
    const hosts = [host('h1', await fakeAgent('h1', calls)), host('h2', await fakeAgent('h2', calls, {slowMs: 150}))]
    const run = new CanaryRun(hosts, plan, new AbortController().signal)
    await Promise.all(hosts.map(async () => {
      for (let i = 0; i < plan.steps.length; i++) await run.step(i)
    }))
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
    await expect(run.step(0)).rejects.toThrow(/^canary at 10 %: the new release failed 20 of 100 calls \(error rate 20.0% > 1.0%.*aborted on h1, h2, h3$/)
    expect(run.failure?.host.name).toBe('h2')
    expect(calls.filter((c) => c.endsWith('/abort')).sort()).toEqual(['h1 /abort', 'h2 /abort', 'h3 /abort'])
    expect(hosts.map((h) => h.report.outcome)).toEqual(['aborted', 'aborted', 'aborted'])
    expect(hosts.map((h) => h.report.steps.map((s) => s.canaryErrorRate))).toEqual([[0], [0.2], [0]])
    expect(errorMessage(run.errorFor(hosts[0]!))).toMatch(/^canary aborted with h2: canary at 10 %.*\(here: 0 of 100 calls failed\)$/)
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
