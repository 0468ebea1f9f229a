/**
 * What a fleet run tells machines: `--events` steps that name their host, and `notify:` webhooks
 * told the fleet's outcome once, naming every host. The built hotctl against two test-bed hosts.
 */
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {requireBuild, runCli} from '../e2e/helpers.js'
import {type Controller, controller, markerOf, removeControllers, setVersion} from './fleet-helpers.js'
import {type Bed, startHosts} from './harness.js'

requireBuild()

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

interface StepEvent {
  type: string
  step?: string
  host?: string
  group?: string[]
  result?: string
}

const eventsOf = (stderr: string): StepEvent[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as StepEvent)

/** A real webhook receiver on loopback: records every POST's body. */
async function receiver(): Promise<{url: string; bodies: any[]; close(): Promise<void>}> {
  const bodies: any[] = []
  const server = http.createServer((req, res) => {
    let data = ''
    req.on('data', (d) => (data += String(d)))
    req.on('end', () => {
      bodies.push(JSON.parse(data))
      res.writeHead(200).end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const {port} = server.address() as AddressInfo
  return {url: `http://127.0.0.1:${port}/hook`, bodies, close: () => new Promise((r) => server.close(() => r()))}
}

describe('fleet --events and notify, two hosts', {timeout: 400_000}, () => {
  let bed: Bed
  let hook: Awaited<ReturnType<typeof receiver>>
  beforeAll(async () => {
    bed = await startHosts({count: 2, service: true, proxy: false})
    hook = await receiver()
  }, 120_000)
  afterAll(async () => {
    await bed?.stop()
    await hook?.close()
    removeControllers()
  })

  const run = (c: Controller, ...args: string[]) =>
    runCli([...args, '--json', '--config', c.config], {cwd: c.dir, env: c.env, timeoutMs: 170_000})

  it('--events: every step of a host, and its restore after a failure, carries `host`; fleet-wide steps do not', async () => {
    const c = controller(bed, {}, 'v2')
    const r = await run(c, 'deploy', '--events')
    expect(r.exitCode, why(r)).toBe(0)
    const ends = eventsOf(r.stderr).filter((e) => e.type === 'step-end')
    for (const h of ['h1', 'h2']) {
      // The host's own line (in its wave) and each of its steps (under it).
      expect(ends.find((e) => e.step === h)).toMatchObject({host: h, result: 'ok'})
      const own = ends.filter((e) => e.host === h && e.step !== h)
      expect(own.length, h).toBeGreaterThanOrEqual(3)
      for (const e of own) expect(e.group, JSON.stringify(e)).toContain(h)
      expect(
        own.some((e) => /^Sync/.test(e.step ?? '')),
        JSON.stringify(own),
      ).toBe(true)
    }
    for (const e of ends.filter((x) => /^(Preflight|Lock every host|Plan)/.test(x.step ?? '')))
      expect(e.host, JSON.stringify(e)).toBeUndefined()
    // Each host step event belongs to exactly that host's group.
    for (const e of ends.filter((x) => x.host && x.step !== x.host))
      expect(e.group?.includes(e.host === 'h1' ? 'h2' : 'h1'), JSON.stringify(e)).toBe(false)

    // A failure on h2: both hosts are restored (rollback-all) by their own task trees, after the waves.
    c.failSmoke('h2')
    setVersion(c.src, 'v2b')
    const f = await run(c, 'deploy', '--events')
    expect(f.exitCode, why(f)).toBe(3)
    const restores = eventsOf(f.stderr).filter((e) => e.type === 'step-end' && /^Restore backup/.test(e.step ?? ''))
    expect(restores.map((e) => e.host).sort(), JSON.stringify(restores)).toEqual(['h1', 'h2'])
  })

  it('notify: one body per fleet deploy or rollback with the fleet outcome, exit code and every host', async () => {
    const c = controller(bed, {notify: [{url: hook.url}]}, 'v3')
    const before = markerOf(bed, 'h1')
    hook.bodies.length = 0
    const d = await run(c, 'deploy')
    expect(d.exitCode, why(d)).toBe(0)
    expect(hook.bodies).toHaveLength(1)
    expect(hook.bodies[0]).toMatchObject({
      event: 'success',
      command: 'deploy',
      outcome: 'deployed',
      exitCode: 0,
      release: d.json.release,
      previousRelease: before,
      target: '/srv/app',
      hosts: ['h1', 'h2'],
      error: null,
      changes: {added: 0, changed: 2, deleted: 0}, // handlers.py on each host
    })
    expect(hook.bodies[0].text).toMatch(
      new RegExp(`^hotctl deploy of release ${d.json.release} to /srv/app on 2 hosts \\(h1, h2\\) succeeded in `),
    )
    expect(d.json.notifications).toEqual([{url: new URL(hook.url).origin, ok: true, status: 200}])

    // A failing host: the fleet is restored (exit 3), and that is what the webhook hears, once.
    const bad = controller(bed, {notify: [{url: hook.url}]}, 'v4')
    bad.failSmoke('h1')
    hook.bodies.length = 0
    const f = await run(bad, 'deploy')
    expect(f.exitCode, why(f)).toBe(3)
    expect(hook.bodies).toHaveLength(1)
    expect(hook.bodies[0]).toMatchObject({
      event: 'restored',
      command: 'deploy',
      outcome: 'restored',
      exitCode: 3,
      release: f.json.release,
      previousRelease: d.json.release,
      hosts: ['h1', 'h2'],
      error: expect.stringContaining('h1'),
    })

    // A fleet rollback: back to what was live before the deploy, on both hosts.
    hook.bodies.length = 0
    const rb = await run(c, 'rollback')
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(hook.bodies).toHaveLength(1)
    expect(hook.bodies[0]).toMatchObject({
      event: 'success',
      command: 'rollback',
      outcome: 'rolled-back',
      exitCode: 0,
      release: before,
      previousRelease: d.json.release,
      hosts: ['h1', 'h2'],
    })
    expect(markerOf(bed, 'h2')).toBe(before)

    // --limit: the body names the hosts of the run only.
    hook.bodies.length = 0
    const one = await runCli(['deploy', '--json', '--limit', 'h2', '--config', c.config], {
      cwd: c.dir,
      env: c.env,
      timeoutMs: 170_000,
    })
    expect(one.exitCode, why(one)).toBe(0)
    expect(hook.bodies.map((b) => [b.command, b.hosts])).toEqual([['deploy', ['h2']]])
  })
})
