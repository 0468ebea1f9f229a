/**
 * Fleet deploys end to end: the built hotctl against real sshd hosts (test bed), each with its own
 * /srv/app, state and demo service.
 */
import {spawnSync} from 'node:child_process'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {requireBuild, runCli} from '../e2e/helpers.js'
import {type Controller, controller, endsOf, journalOf, markerOf, removeControllers, servedBy} from './fleet-helpers.js'
import {type Bed, startHosts} from './harness.js'

requireBuild()

const SIX = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6']

describe('fleet deploy, six hosts', {timeout: 400_000}, () => {
  let bed: Bed
  beforeAll(async () => {
    bed = await startHosts({count: 6, service: true})
  }, 120_000)
  afterAll(async () => {
    await bed?.stop()
    removeControllers()
  })

  it('deploys to one host (user@host:/path), then to six hosts in three waves: one release everywhere, proven live', async () => {
    const one = controller(bed, {hosts: undefined, target: `root@${bed.host('h1').address}:/srv/app`})
    const r1 = await runCli(['deploy', '--json', '--config', one.config], {
      cwd: one.dir,
      env: one.env,
      timeoutMs: 170_000,
    })
    expect(r1.exitCode, r1.stdout + r1.stderr).toBe(0)
    // One host named by the target runs the single-target pipeline: the same JSON as a local deploy.
    expect(r1.json).toMatchObject({outcome: 'deployed', previousRelease: null})
    expect(markerOf(bed, 'h1')).toBe(r1.json.release)
    expect(await servedBy(bed, 'h1')).toEqual({version: r1.json.release, hello: expect.stringMatching(/from v2/)})
    expect(markerOf(bed, 'h2')).toBeNull()

    const c = controller(bed, {waves: [1, '25%', '100%'], parallel: 3}, 'v3')
    const r = await runCli(['deploy', '--json', '--config', c.config], {cwd: c.dir, env: c.env, timeoutMs: 170_000})
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    expect(r.json.waves).toEqual([['h1'], ['h2'], ['h3', 'h4', 'h5', 'h6']])
    const id = r.json.release
    expect(id > r1.json.release).toBe(true)
    for (const h of SIX) {
      expect(markerOf(bed, h), h).toBe(id)
      expect(await servedBy(bed, h), h).toEqual({version: id, hello: expect.stringMatching(/from v3/)})
      expect(endsOf(bed, h).at(-1), h).toBe('deploy ok')
    }
  })

  const run = (c: Controller, ...args: string[]) =>
    runCli([...args, '--json', '--config', c.config], {cwd: c.dir, env: c.env, timeoutMs: 170_000})
  const markers = () => Object.fromEntries(SIX.map((h) => [h, markerOf(bed, h)]))
  const served = async () =>
    Object.fromEntries(await Promise.all(SIX.map(async (h) => [h, (await servedBy(bed, h)).version])))

  it('a canary failure leaves no host on the new release: only the canary was touched, restored and proven (exit 3)', async () => {
    const before = markers()
    const c = controller(bed, {waves: [1, '100%']}, 'v4')
    c.failSmoke('h1')
    const r = await run(c, 'deploy')
    expect(r.exitCode, r.stdout + r.stderr).toBe(3)
    expect(r.json).toMatchObject({outcome: 'restored', failedHost: 'h1'})
    expect(markers()).toEqual(before)
    expect(await served()).toEqual(before)
    expect((await servedBy(bed, 'h1')).hello).toMatch(/from v3/)
    expect(endsOf(bed, 'h1').at(-1)).toBe('deploy restored')
    for (const h of SIX.slice(1)) expect(endsOf(bed, h).at(-1), h).toBe('deploy ok') // the earlier deploy: untouched
  })

  it('a failure in the last wave restores every host, the proven ones too (exit 3)', async () => {
    const before = markers()
    const c = controller(bed, {waves: [1, '25%', '100%'], parallel: 4}, 'v4')
    c.failSmoke('h6')
    const r = await run(c, 'deploy')
    expect(r.exitCode, r.stdout + r.stderr).toBe(3)
    expect(r.json).toMatchObject({outcome: 'restored', failedHost: 'h6'})
    expect(markers()).toEqual(before)
    expect(await served()).toEqual(before)
    for (const h of SIX) expect(endsOf(bed, h).at(-1), h).toBe('deploy restored')
  })

  it('onFailure halt: the failing host is restored, proven hosts keep the new release, the JSON says who holds what', async () => {
    const before = markers()
    const c = controller(bed, {waves: [2, 3, '100%'], onFailure: 'halt'}, 'v4')
    c.failSmoke('h3')
    const r = await run(c, 'deploy')
    expect(r.exitCode, r.stdout + r.stderr).toBe(3)
    expect(r.json).toMatchObject({outcome: 'halted', failedHost: 'h3'})
    const id = r.json.release
    const holds = Object.fromEntries(r.json.hosts.map((h: {name: string; live: string}) => [h.name, h.live]))
    expect(holds).toEqual({...before, h1: id, h2: id})
    expect(markers()).toEqual(holds)
    expect(await served()).toEqual(holds)
    // status flags a fleet that does not run one release everywhere
    const st = await runCli(['status', '--config', c.config], {cwd: c.dir, env: c.env, timeoutMs: 120_000})
    expect(st.exitCode, st.stderr).toBe(0)
    expect(st.stdout).toMatch(/NOT ONE RELEASE/)
    const sj = await run(c, 'status')
    expect(sj.json.consistent).toBe(false)
    expect(
      sj.json.hosts.map((h: {name: string; status: {release: {id: string}}}) => [h.name, h.status.release.id]),
    ).toEqual(Object.entries(holds))
  })

  it('rollback and rollback --to, fleet-wide: refused when hosts would end on different releases, then --to everywhere', async () => {
    const c = controller(bed, {waves: [1, '100%']}, 'v5')
    const d = await run(c, 'deploy')
    expect(d.exitCode, d.stdout + d.stderr).toBe(0)
    const y = d.json.release
    const prev = Object.fromEntries(
      d.json.hosts.map((h: {name: string; previousRelease: string}) => [h.name, h.previousRelease]),
    )
    // h1 and h2 came from the halted release, the others from the release before it.
    expect(new Set(Object.values(prev)).size).toBe(2)
    const refused = await run(c, 'rollback')
    expect(refused.exitCode, refused.stdout).toBe(1)
    expect(refused.json.error.message).toMatch(/previous releases differ/)
    expect(Object.values(markers())).toEqual(SIX.map(() => y))

    const x = prev.h3
    const r = await run(c, 'rollback', '--to', x)
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    expect(markers()).toEqual(Object.fromEntries(SIX.map((h) => [h, x])))
    expect(await served()).toEqual(markers())
    const b = await run(c, 'backups')
    expect(b.exitCode).toBe(0)
    expect(b.json.targets.find((t: {to: string}) => t.to === y)).toMatchObject({everywhere: true})

    const back = await run(c, 'rollback', '--to', y)
    expect(back.exitCode, back.stdout + back.stderr).toBe(0)
    expect(markers()).toEqual(Object.fromEntries(SIX.map((h) => [h, y])))
    expect(await served()).toEqual(markers())
    for (const h of SIX) expect((await servedBy(bed, h)).hello, h).toMatch(/from v5/)
  })

  it('no secret in any host journal or state file (the agent token is sent in a header on every run)', async () => {
    expect(bed.token).toBeTruthy()
    for (const h of SIX) {
      const state = path.join(bed.host(h).root, '.app.hotctl')
      const grep = spawnSync('grep', ['-rl', '--', bed.token!, state], {encoding: 'utf8'})
      expect(grep.stdout, h).toBe('')
      expect(journalOf(bed, h).length, h).toBeGreaterThan(0)
    }
  })
})
