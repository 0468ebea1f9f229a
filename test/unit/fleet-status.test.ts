import {describe, expect, it} from 'vitest'
import {EXIT} from '../../src/errors.js'
import {fleetDeploy} from '../../src/pipeline/fleet-deploy.js'
import {fleetBackups, fleetStatus} from '../../src/pipeline/fleet-status.js'
import {renderFleetBackups, renderFleetDeploy, renderFleetStatus} from '../../src/ui/fleet-report.js'
import {DEPLOY_FLAGS, ended} from './fake-target.js'
import {fakeFleet, R0} from './fleet-fixture.js'

describe('fleet status', () => {
  it('one row per host; one release everywhere is said so', async () => {
    const f = fakeFleet(['a', 'b'])
    const s = await fleetStatus(f.fleet)
    expect(s).toMatchObject({exitCode: EXIT.ok, consistent: true, releases: {[R0]: ['a', 'b']}})
    const text = renderFleetStatus(s)
    expect(text).toMatch(/^HOST\s+RELEASE\s+SERVICE REPORTS\s+LOCK\s+INTERRUPTED\s+LAST OPERATIONS$/m)
    expect(text).toMatch(new RegExp(`^a\\s+${R0}\\s+-\\s+free`, 'm'))
    expect(text).toMatch(`One release everywhere: ${R0}.`)
  })

  it('a fleet on two releases is flagged; an unreadable host is UNREACHABLE and exits 4', async () => {
    const f = fakeFleet(['a', 'b', 'c'])
    f.fake('b').setLive({'app.py': 'v9'}, '20250101000000')
    f.fake('c').fail('read', {error: new Error('ssh: connect to host c port 22: Connection timed out')})
    const s = await fleetStatus(f.fleet)
    expect(s).toMatchObject({exitCode: EXIT.needsAttention, consistent: false})
    expect(s.releases).toEqual({[R0]: ['a'], '20250101000000': ['b'], unreachable: ['c']})
    const text = renderFleetStatus(s)
    expect(text).toMatch(/NOT ONE RELEASE: 20240101000000: a \| 20250101000000: b \| unreachable: c/)
    expect(text).toMatch(/^c\s+UNREACHABLE\s+ssh: connect to host c/m)
  })
})

describe('fleet backups and the deploy report', () => {
  it('lists which --to values every host can reach', async () => {
    const f = fakeFleet(['a', 'b'])
    expect((await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).exitCode).toBe(EXIT.ok)
    f.fake('b').backupStore.clear()
    const b = await fleetBackups(f.fleet)
    expect(b.targets).toEqual([
      expect.objectContaining({hosts: ['a', 'b'], everywhere: true}), // the live release
      {to: R0, release: R0, hosts: ['a'], everywhere: false},
    ])
    expect(renderFleetBackups(b)).toMatch(new RegExp(`^${R0}\\s+1/2\\s+a$`, 'm'))
  })

  it('the human report of a halted deploy says which host holds what', async () => {
    const f = fakeFleet(['a', 'b', 'c'], {}, {waves: [1, 2, '100%'], onFailure: 'halt'})
    f.fake('b').fail('command', {nth: 2})
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    const text = renderFleetDeploy(r)
    expect(text).toMatch(/^Halted \(onFailure: halt\): deploy \d+ failed on b: /)
    expect(text).toMatch(new RegExp(`^a\\s+1\\s+deployed\\s+${r.release}\\s+${R0}`, 'm'))
    expect(text).toMatch(new RegExp(`^b\\s+2\\s+restored\\s+${R0}\\s+${R0}`, 'm'))
    expect(text).toMatch(new RegExp(`^c\\s+-\\s+untouched\\s+${R0}`, 'm'))
  })
})
