/**
 * Fleet deploys end to end: the built hotctl against real sshd hosts (test bed), each with its own
 * /srv/app, state and demo service.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {requireBuild, runCli} from '../e2e/helpers.js'
import {controller, endsOf, markerOf, removeControllers, servedBy} from './fleet-helpers.js'
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
    const r1 = await runCli(['deploy', '--json', '--config', one.config], {cwd: one.dir, env: one.env, timeoutMs: 170_000})
    expect(r1.exitCode, r1.stdout + r1.stderr).toBe(0)
    expect(r1.json.hosts.map((h: {address: string}) => h.address)).toEqual([bed.host('h1').address])
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
})
