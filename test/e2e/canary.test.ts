/**
 * `deploy --canary` against the real reference agent under real traffic: a release that fails 20 %
 * of its calls is aborted at the first step (exit 3, the figures in the error, no error after it),
 * a good release is promoted step by step without a single failed call.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, removeWorkspaces, requireBuild, runCli, writeFiles} from './helpers.js'
import {agentConfig, startAgent, stopAgents, traffic, why} from './steps-support.js'

/** handlers.py whose calc raises on every `failEvery`-th call of its own generation (0: never). */
const handlers = (v: string, failEvery = 0) => `VERSION = ${JSON.stringify(v)}
_calls = [0]


def hello():
    return "hello " + VERSION


def calc(a, b):
    _calls[0] += 1
    if ${failEvery} and _calls[0] % ${failEvery} == 0:
        raise RuntimeError("flaky " + VERSION)
    return a + b
`

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

beforeAll(requireBuild)
afterEach(stopAgents)
afterAll(removeWorkspaces)

describe('deploy --canary', {timeout: 180_000}, () => {
  it('a release failing 20 % of its calls is aborted at the first step: exit 3 with the figures, no error after', async () => {
    const ws = makeWorkspace()
    const agent = await startAgent(ws.live)
    ws.writeConfig(agentConfig(agent))
    writeFiles(ws.src, {'app/handlers.py': handlers('v2', 5)})
    const load = traffic(agent)
    await sleep(300)
    const r = await runCli(
      ['deploy', '--canary', '10,50,100', '--canary-interval', '2s', '--max-error-rate', '1%', '--json'],
      {
        cwd: ws.src,
      },
    )
    const exited = Date.now()
    await sleep(1500)
    await load.stop()
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.canary.outcome).toBe('aborted')
    expect(r.json.canary.steps).toHaveLength(1)
    const step = r.json.canary.steps[0]
    expect(step.percent).toBe(10)
    expect(step.canaryCalls).toBeGreaterThan(4)
    expect(step.canaryErrorRate).toBeGreaterThan(0.1)
    expect(step.canaryErrorRate).toBeLessThan(0.3)
    expect(step.currentErrorRate).toBe(0)
    expect(r.json.error).toMatch(
      /^canary at 10 %: the new release failed \d+ of \d+ calls \(error rate \d+\.\d% > 1\.0%/,
    )
    const errors = load.seen.filter((s) => s.status !== 200)
    expect(errors.length).toBeGreaterThan(0) // real traffic met the bad release ...
    expect(errors.every((e) => e.status === 500)).toBe(true)
    expect(load.seen.filter((s) => s.t > exited)).not.toHaveLength(0)
    expect(load.seen.filter((s) => s.t > exited && s.status !== 200)).toEqual([]) // ... and none after
    expect((await (await fetch(`${agent.base}/api/v1/hello`)).text()).trim()).toBe('hello v1')
    const metrics = await (await fetch(`${agent.base}/api/v1/hot-reload/metrics`)).json()
    expect(metrics.canary).toBeNull()
  })

  it('a good release is promoted step by step without one failed call', async () => {
    const ws = makeWorkspace()
    const agent = await startAgent(ws.live)
    ws.writeConfig(agentConfig(agent))
    writeFiles(ws.src, {'app/handlers.py': handlers('v2')})
    const load = traffic(agent)
    await sleep(300)
    const r = await runCli(['deploy', '--canary', '10,50', '--canary-interval', '1s', '--json'], {cwd: ws.src})
    await load.stop()
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.canary.outcome).toBe('promoted')
    expect(r.json.canary.steps.map((s: {percent: number}) => s.percent)).toEqual([10, 50])
    for (const s of r.json.canary.steps) expect(s.canaryCalls).toBeGreaterThan(0)
    expect(load.seen.filter((s) => s.status !== 200)).toEqual([])
    expect((await (await fetch(`${agent.base}/api/v1/hello`)).text()).trim()).toBe('hello v2')
    const status = await (await fetch(`${agent.base}/api/v1/hot-reload/status`)).json()
    expect([status.state, status.version]).toEqual(['live', r.json.release])
  })

  it('a step no call reached proves nothing: restored (exit 3), unless --canary-min-calls 0', async () => {
    const ws = makeWorkspace()
    const agent = await startAgent(ws.live)
    ws.writeConfig(agentConfig(agent))
    writeFiles(ws.src, {'app/handlers.py': handlers('v2')})
    const r = await runCli(['deploy', '--canary', '10', '--canary-interval', '1s', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.error).toMatch(/only 0 calls reached the new release, fewer than --canary-min-calls 1/)
    expect((await (await fetch(`${agent.base}/api/v1/hello`)).text()).trim()).toBe('hello v1')
    const ok = await runCli(
      ['deploy', '--canary', '10', '--canary-interval', '1s', '--canary-min-calls', '0', '--json'],
      {
        cwd: ws.src,
      },
    )
    expect(ok.exitCode, why(ok)).toBe(0)
    expect(ok.json.canary.outcome).toBe('promoted')
    expect((await (await fetch(`${agent.base}/api/v1/hello`)).text()).trim()).toBe('hello v2')
  })

  it('bad flags are usage errors naming the flag, before anything is touched', async () => {
    const ws = makeWorkspace()
    const agent = await startAgent(ws.live)
    ws.writeConfig(agentConfig(agent))
    for (const [args, msg] of [
      [['--canary', '50,10'], /--canary 50,10: the percentages must go up/],
      [['--canary', '10,abc'], /not a list of percentages/],
      [['--canary', '10', '--max-error-rate', 'lots'], /--max-error-rate lots: not a percentage/],
      [['--canary-interval', '5s'], /go with --canary/],
    ] as const) {
      const r = await runCli(['deploy', ...args], {cwd: ws.src})
      expect(r.exitCode, why(r)).toBe(2)
      expect(r.stderr).toMatch(msg)
    }
    ws.writeConfig({...agentConfig(agent), reload: undefined})
    const noAgent = await runCli(['deploy', '--canary', '10'], {cwd: ws.src})
    expect(noAgent.exitCode).toBe(2)
    expect(noAgent.stderr).toMatch(/--canary needs one service whose reload.trigger is the agent check URL/)
    expect(ws.journal()).toEqual([])
  })
})
