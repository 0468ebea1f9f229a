import {describe, expect, it} from 'vitest'
import {EXIT} from '../../src/errors.js'
import {fleetDeploy} from '../../src/pipeline/fleet-deploy.js'
import {fleetRollback} from '../../src/pipeline/fleet-rollback.js'
import {DEPLOY_FLAGS, ended, journalLines} from './fake-target.js'
import {fakeFleet, LIVE, R0, SOURCE} from './fleet-fixture.js'

const HOSTS = ['a', 'b', 'c']

/** Every host on release R1 (SOURCE), deployed by a fleet deploy over R0 (LIVE). */
async function deployed(fleetOver = {}) {
  const f = fakeFleet(HOSTS, {}, fleetOver)
  const d = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
  expect(d.exitCode).toBe(EXIT.ok)
  return {f, r1: d.release!}
}

describe('fleet rollback on fake targets', () => {
  it('rolls every host back to the release before, in waves: one undo id everywhere', async () => {
    const {f, r1} = await deployed({waves: [1, '100%']})
    const r = (await ended(fleetRollback(f.fleet, {}))).result!
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'rolled-back', release: R0})
    expect(r.waves).toEqual([['a'], ['b', 'c']])
    for (const n of HOSTS) {
      expect(f.fake(n).tree(), n).toEqual(LIVE)
      expect(f.fake(n).marker, n).toBe(R0)
    }
    const undos = new Set(r.hosts.map((h) => h.result!.undo))
    expect(undos.size).toBe(1)
    expect(r.hosts.map((h) => [h.name, h.live, h.from])).toEqual(HOSTS.map((n) => [n, R0, r1]))
    // And --to the release it replaced brings every host back to it.
    const back = (await ended(fleetRollback(f.fleet, {to: r1}))).result!
    expect(back).toMatchObject({exitCode: EXIT.ok, release: r1})
    for (const n of HOSTS) expect(f.fake(n).tree(), n).toEqual(SOURCE)
  })

  it("after the fleet is proven, each host's lock is released once its own end is recorded", async () => {
    const {f} = await deployed()
    let aFreeWhileBFinishes = false
    f.fake('b').at('prune', async () => {
      for (let i = 0; i < 50 && f.fake('a').lockOwner; i++) await new Promise((r) => setTimeout(r, 10))
      aFreeWhileBFinishes = f.fake('a').lockOwner === undefined
    })
    const r = (await ended(fleetRollback(f.fleet, {}))).result!
    expect(r.exitCode).toBe(EXIT.ok)
    expect(aFreeWhileBFinishes).toBe(true)
    for (const n of HOSTS) expect(f.fake(n).lockOwner, n).toBeUndefined()
  })

  it('one host failing: the hosts already rolled back are put back from their undo snapshot (exit 3)', async () => {
    const {f, r1} = await deployed({waves: [1, '100%']})
    // c's rollback: reload-app then smoke-home; the smoke fails, its put-back's smoke passes.
    const before = f.fake('c').commands.length
    f.fake('c').at('command', (call) => {
      if (call.n === before + 2) throw new Error('injected smoke failure')
    })
    const r = (await ended(fleetRollback(f.fleet, {}))).result!
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored', failedHost: 'c'})
    for (const n of HOSTS) {
      expect(f.fake(n).tree(), n).toEqual(SOURCE)
      expect(f.fake(n).marker, n).toBe(r1)
      expect(journalLines(f.fake(n).journal).at(-1), n).toBe('rollback end restored 3')
    }
  })

  it('hosts whose previous releases differ: refused before anything is touched (exit 1), naming them', async () => {
    const {f} = await deployed()
    // b took one more release alone (--limit b): its previous release is r1, the others' R0.
    const all = f.fleet.config
    f.fake('b').source.set('app.py', {content: 'v3', mode: 0o644})
    f.fleet.config = {...all, hosts: all.hosts.filter((h) => h.name === 'b')}
    expect((await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).exitCode).toBe(EXIT.ok)
    f.fleet.config = all
    const r = await ended(fleetRollback(f.fleet, {}))
    expect(r.exitCode).toBe(EXIT.failed)
    expect(r.error!.message).toMatch(/previous releases differ \(a → release \d+, b → release \d+, c → /)
    for (const n of HOSTS) expect(f.fake(n).lockOwner).toBeUndefined()
  })

  it('--to a release a host does not have: usage error naming the host, nothing touched', async () => {
    const {f} = await deployed()
    f.fake('c').backupStore.clear()
    const r = await ended(fleetRollback(f.fleet, {to: R0}))
    expect(r.exitCode).toBe(EXIT.usage)
    expect(r.error!.message).toMatch(/^host c: --to/)
  })
})
