/**
 * `deploy --canary` on a fleet: the built hotctl against four test-bed hosts (real sshd, each with
 * the demo service and its reference agent), under real traffic through every host's agent proxy.
 * Each wave's hosts are synced, then one canary steps through the shares on all of them at once;
 * a breach on one host aborts it on every host of the wave.
 */
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {requireBuild, runCli} from '../e2e/helpers.js'
import {traffic} from '../e2e/steps-support.js'
import {type Controller, controller, endsOf, markerOf, removeControllers, servedBy} from './fleet-helpers.js'
import {type Bed, startHosts} from './harness.js'

requireBuild()

const FOUR = ['h1', 'h2', 'h3', 'h4']
const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

/**
 * The demo app's handlers at `version`. A `flaky` release's calc raises on every 5th call of its
 * generation on a host that has /srv/flaky (each host's /srv is its own): bad on one host only.
 */
const handlers = (version: string, flaky = false) => `import os

from .util import GREETING, add

VERSION_TEXT = GREETING + " from ${version}"
_calls = [0]


def calc(a, b):
    _calls[0] += 1
    if ${flaky ? 'True' : 'False'} and _calls[0] % 5 == 0 and os.path.exists("/srv/flaky"):
        raise RuntimeError("flaky " + VERSION_TEXT)
    return add(a, b)


def hello():
    return VERSION_TEXT
`

interface StepEvent {
  type: string
  step?: string
  host?: string
  result?: string
  message?: string
  time: string
}

const eventsOf = (stderr: string): StepEvent[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as StepEvent)

interface HostJson {
  name: string
  wave?: number
  live: string | null
  outcome: string
  error?: string
  result?: {canary?: {outcome: string; steps: {percent: number; canaryCalls: number; canaryErrorRate: number}[]}}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('fleet deploy --canary, four hosts in two waves', {timeout: 600_000}, () => {
  let bed: Bed
  beforeAll(async () => {
    bed = await startHosts({count: 4, service: true, proxy: false})
  }, 120_000)
  afterAll(async () => {
    await bed?.stop()
    removeControllers()
  })

  /** Three clients per host calling calc through its agent until stopped. */
  const load = () => FOUR.map((h) => ({host: h, ...traffic({base: bed.host(h).serviceUrl!}, 3)}))
  const stopAll = (l: ReturnType<typeof load>) => Promise.all(l.map((x) => x.stop()))
  const deploy = (c: Controller, ...args: string[]) =>
    runCli(['deploy', '--canary', ...args, '--json', '--events', '--config', c.config], {
      cwd: c.dir,
      env: c.env,
      timeoutMs: 300_000,
    })
  const canaryController = (version: string, flaky: boolean, over: Record<string, unknown> = {}) => {
    const c = controller(bed, {waves: [2, '100%'], parallel: 1, ...over})
    fs.writeFileSync(path.join(c.src, 'app', 'handlers.py'), handlers(version, flaky))
    return c
  }
  const markers = () => Object.fromEntries(FOUR.map((h) => [h, markerOf(bed, h)]))
  const served = async () =>
    Object.fromEntries(await Promise.all(FOUR.map(async (h) => [h, (await servedBy(bed, h)).version])))

  it('a good release goes through the canary wave by wave, every host of a wave at once, then is promoted: not one failed call', async () => {
    const c = canaryController('v2', false)
    const l = load()
    await sleep(300)
    const r = await deploy(c, '10,50', '--canary-interval', '1s')
    await stopAll(l)
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.waves).toEqual([
      ['h1', 'h2'],
      ['h3', 'h4'],
    ])
    const id = r.json.release
    for (const h of r.json.hosts as HostJson[]) {
      expect(h.result?.canary?.outcome, h.name).toBe('promoted')
      expect(h.result!.canary!.steps.map((s) => s.percent)).toEqual([10, 50])
      for (const s of h.result!.canary!.steps) expect(s.canaryCalls, h.name).toBeGreaterThan(0)
      expect(markerOf(bed, h.name)).toBe(id)
      expect(await servedBy(bed, h.name), h.name).toEqual({version: id, hello: expect.stringMatching(/from v2/)})
      expect(endsOf(bed, h.name).at(-1), h.name).toBe('deploy ok')
    }
    for (const x of l) {
      expect(x.seen.length, x.host).toBeGreaterThan(20)
      expect(
        x.seen.filter((s) => s.status !== 200),
        x.host,
      ).toEqual([])
    }
    // --events: each host's canary steps, naming the host, with its own figures.
    const ev = eventsOf(r.stderr).filter((e) => e.type === 'step-end' && /^At \d+ %|^Promoted/.test(e.step ?? ''))
    for (const h of FOUR) {
      const mine = ev.filter((e) => e.host === h)
      expect(
        mine.map((e) => e.step!.replace(/:.*/, '')),
        h,
      ).toEqual(['At 10 %', 'At 50 %', 'Promoted'])
      expect(mine[0]!.step).toMatch(/^At 10 %: 0 of \d+ calls failed \(0\.0%\), p95 /)
      expect(mine.every((e) => e.result === 'ok')).toBe(true)
    }
    expect(r.json.hosts.map((h: HostJson) => [h.name, h.wave])).toEqual([
      ['h1', 1],
      ['h2', 1],
      ['h3', 2],
      ['h4', 2],
    ])
  })

  it('a release that fails 20 % of its calls on one host is aborted at the first step on every host of wave 1: all back on the old release (exit 3), no error after the abort', async () => {
    const before = markers()
    expect(new Set(Object.values(before)).size).toBe(1)
    fs.writeFileSync(path.join(bed.host('h2').root, 'flaky'), '')
    try {
      const c = canaryController('v3', true)
      const l = load()
      await sleep(300)
      const r = await deploy(c, '10,50,100', '--canary-interval', '2s', '--max-error-rate', '1%')
      const exited = Date.now()
      await sleep(1500)
      await stopAll(l)
      expect(r.exitCode, why(r)).toBe(3)
      expect(r.json).toMatchObject({outcome: 'restored', failedHost: 'h2'})
      expect(r.json.error).toMatch(
        /failed on h2: canary at 10 %: the new release failed \d+ of \d+ calls \(error rate \d+\.\d% > 1\.0%.*aborted on h1, h2/,
      )
      const hosts = Object.fromEntries((r.json.hosts as HostJson[]).map((h) => [h.name, h]))
      // Both hosts of wave 1 ran one step, each judged on its own figures; wave 2 was never reached.
      const h2 = hosts.h2!.result!.canary!
      expect(h2.outcome).toBe('aborted')
      expect(h2.steps).toHaveLength(1)
      expect(h2.steps[0]!.canaryCalls).toBeGreaterThan(4)
      expect(h2.steps[0]!.canaryErrorRate).toBeGreaterThan(0.1)
      expect(h2.steps[0]!.canaryErrorRate).toBeLessThan(0.3)
      const h1 = hosts.h1!.result!.canary!
      expect(h1.outcome).toBe('aborted')
      expect(h1.steps.map((s) => s.canaryErrorRate)).toEqual([0])
      expect(hosts.h1!.error).toMatch(/^put back with the fleet: h2 failed: canary at 10 %|^canary aborted with h2/)
      expect([hosts.h3!.outcome, hosts.h4!.outcome]).toEqual(['untouched', 'untouched'])
      // Every host back on the old release: markers, what the services report, `hotctl status`.
      expect(markers()).toEqual(before)
      expect(await served()).toEqual(before)
      for (const h of FOUR) expect((await servedBy(bed, h)).hello, h).toMatch(/from v2/)
      const st = await runCli(['status', '--json', '--config', c.config], {cwd: c.dir, env: c.env, timeoutMs: 120_000})
      expect(st.exitCode, why(st)).toBe(0)
      expect(st.json.consistent).toBe(true)
      expect(
        st.json.hosts.map((h: {name: string; status: {release: {id: string}}}) => [h.name, h.status.release.id]),
      ).toEqual(Object.entries(before))
      expect(['h1', 'h2'].map((h) => endsOf(bed, h).at(-1))).toEqual(['deploy restored', 'deploy restored'])
      expect(['h3', 'h4'].map((h) => endsOf(bed, h).at(-1))).toEqual(['deploy ok', 'deploy ok']) // the earlier deploy
      // Real traffic met the bad release on h2 only, and no call started after the abort failed.
      const errors = l.flatMap((x) => x.seen.filter((s) => s.status !== 200).map((s) => ({...s, host: x.host})))
      expect(errors.length).toBeGreaterThan(0)
      expect(errors.every((e) => e.host === 'h2' && e.status === 500)).toBe(true)
      const failedStep = eventsOf(r.stderr).find(
        (e) => e.type === 'step-end' && e.host === 'h2' && e.result === 'failed' && /^At 10 %/.test(e.step ?? ''),
      )
      expect(failedStep, why(r)).toBeDefined()
      const aborted = Date.parse(failedStep!.time)
      for (const x of l) {
        expect(x.seen.filter((s) => s.start > aborted).length, x.host).toBeGreaterThan(0)
        expect(
          x.seen.filter((s) => s.start > aborted && s.status !== 200),
          x.host,
        ).toEqual([])
        expect(
          x.seen.filter((s) => s.t > exited),
          x.host,
        ).not.toHaveLength(0)
      }
    } finally {
      fs.rmSync(path.join(bed.host('h2').root, 'flaky'), {force: true})
    }
  })

  it('a fleet whose reload trigger is not the agent is refused before any host is touched (exit 2)', async () => {
    const before = FOUR.map((h) => endsOf(bed, h).length)
    const c = controller(bed, {reload: {trigger: {command: 'true'}}})
    const r = await deploy(c, '10')
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.json.error.message).toMatch(/--canary needs one service whose reload.trigger is the agent check URL/)
    expect(FOUR.map((h) => endsOf(bed, h).length)).toEqual(before)
  })

  it('onFailure halt: a breach in wave 2 puts that whole wave back; wave 1 keeps the new release', async () => {
    const before = markers()
    fs.writeFileSync(path.join(bed.host('h4').root, 'flaky'), '')
    try {
      const c = canaryController('v4', true, {onFailure: 'halt'})
      const l = load()
      await sleep(300)
      const r = await deploy(c, '20', '--canary-interval', '2s')
      await stopAll(l)
      expect(r.exitCode, why(r)).toBe(3)
      expect(r.json).toMatchObject({outcome: 'halted', failedHost: 'h4'})
      const id = r.json.release
      const holds = Object.fromEntries((r.json.hosts as HostJson[]).map((h) => [h.name, h.live]))
      expect(holds).toEqual({h1: id, h2: id, h3: before.h3, h4: before.h4})
      expect(markers()).toEqual(holds)
      expect(await served()).toEqual(holds)
      expect(endsOf(bed, 'h3').at(-1)).toBe('deploy restored') // its own canary was fine: restored with its wave
      const errors = l.flatMap((x) => x.seen.filter((s) => s.status !== 200).map(() => x.host))
      expect(new Set(errors)).toEqual(new Set(['h4']))
    } finally {
      fs.rmSync(path.join(bed.host('h4').root, 'flaky'), {force: true})
    }
  })
})
