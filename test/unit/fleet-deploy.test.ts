import {afterEach, describe, expect, it} from 'vitest'
import {EXIT} from '../../src/errors.js'
import {fleetDeploy} from '../../src/pipeline/fleet-deploy.js'
import {renderFleetDeploy} from '../../src/ui/fleet-report.js'
import {fakeAgent, stopFakeAgents} from './fake-agent.js'
import {DEPLOY_FLAGS, ended, journalLines} from './fake-target.js'
import {fakeFleet, LIVE, R0, SOURCE} from './fleet-fixture.js'

const SIX = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6']

describe('fleet deploy on fake targets', () => {
  it('deploys every host in waves with one release id; every operation ends ok', async () => {
    const f = fakeFleet(SIX, {}, {waves: [1, '25%', '100%'], parallel: 2})
    const r = await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))
    expect(r.result?.error ?? r.error?.message, JSON.stringify(r.result?.error)).toBeUndefined()
    expect(r.exitCode).toBe(EXIT.ok)
    const res = r.result!
    expect(res.waves).toEqual([['h1'], ['h2'], ['h3', 'h4', 'h5', 'h6']])
    const id = res.release!
    for (const [name, fake] of f.fakes) {
      expect(fake.tree(), name).toEqual(SOURCE)
      expect(fake.marker).toBe(id)
      expect(journalLines(fake.journal).at(-1)).toBe('deploy end ok 0')
      expect(fake.lockOwner).toBeUndefined()
    }
    expect(res.hosts.map((h) => [h.name, h.wave, h.live])).toEqual(SIX.map((n, i) => [n, i < 2 ? i + 1 : 3, id]))
  })

  it("after the fleet is proven, each host's lock is released once its own end is recorded", async () => {
    const f = fakeFleet(['a', 'b'])
    let aFreeWhileBFinishes = false
    f.fake('b').at('prune', async () => {
      for (let i = 0; i < 50 && f.fake('a').lockOwner; i++) await new Promise((r) => setTimeout(r, 10))
      aFreeWhileBFinishes = f.fake('a').lockOwner === undefined
    })
    const r = await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))
    expect(r.exitCode).toBe(EXIT.ok)
    expect(aFreeWhileBFinishes).toBe(true)
    for (const n of ['a', 'b']) expect(f.fake(n).lockOwner, n).toBeUndefined()
  })
})

/** Fails the deploy's smoke check on a host (its 2nd command: reload-app, then smoke-home); the restore's smoke passes. */
const failSmoke = (f: ReturnType<typeof fakeFleet>, name: string) => f.fake(name).fail('command', {nth: 2})

function expectOnR0(f: ReturnType<typeof fakeFleet>, names: string[]) {
  for (const n of names) {
    expect(f.fake(n).tree(), n).toEqual(LIVE)
    expect(f.fake(n).marker, n).toBe(R0)
    expect(f.fake(n).lockOwner, n).toBeUndefined()
  }
}

describe('fleet deploy failures', () => {
  it('a canary failure leaves no host on the new release: only the canary was touched, it is restored (exit 3)', async () => {
    const f = fakeFleet(SIX, {}, {waves: [1, '100%']})
    failSmoke(f, 'h1')
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored', failedHost: 'h1'})
    expectOnR0(f, SIX)
    expect(journalLines(f.fake('h1').journal).at(-1)).toBe('deploy end restored 3')
    for (const n of SIX.slice(1)) expect(f.fake(n).journal, n).toEqual([])
    expect(r.hosts.find((h) => h.name === 'h2')).toMatchObject({outcome: 'untouched', live: R0})
  })

  it('a failure in the last wave restores every host, the proven ones too (exit 3)', async () => {
    const f = fakeFleet(SIX, {}, {waves: [1, '25%', '100%']})
    failSmoke(f, 'h6')
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored', failedHost: 'h6'})
    expectOnR0(f, SIX)
    for (const n of SIX) expect(journalLines(f.fake(n).journal).at(-1), n).toBe('deploy end restored 3')
    // The proven hosts' operations stayed open until the fleet was done: never ended ok.
    for (const n of SIX) expect(journalLines(f.fake(n).journal), n).not.toContain('deploy end ok 0')
    expect(r.hosts.every((h) => h.live === R0)).toBe(true)
  })

  it('halt: the failing host is restored, the proven ones keep the new release, later waves untouched (exit 3)', async () => {
    const f = fakeFleet(SIX, {}, {waves: [2, 3, '100%'], onFailure: 'halt'})
    failSmoke(f, 'h3')
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'halted', failedHost: 'h3'})
    const id = r.release!
    const holds = Object.fromEntries(r.hosts.map((h) => [h.name, h.live]))
    expect(holds).toEqual({h1: id, h2: id, h3: R0, h4: R0, h5: R0, h6: R0})
    for (const n of ['h1', 'h2']) expect(f.fake(n).marker).toBe(id)
    expect(r.hosts.map((h) => h.outcome)).toEqual([
      'deployed',
      'deployed',
      'restored',
      'untouched',
      'untouched',
      'untouched',
    ])
    expect(journalLines(f.fake('h1').journal).at(-1)).toBe('deploy end ok 0')
    expectOnR0(f, ['h3', 'h4', 'h5', 'h6'])
  })

  it('rollback-all with a host whose restore cannot be proven: exit 4, naming it', async () => {
    const f = fakeFleet(['a', 'b', 'c'], {}, {waves: [1, '100%']})
    failSmoke(f, 'c')
    f.fake('a').fail('restore')
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(r.error).toMatch(/NEEDS ATTENTION on a$/)
    expect(r.hosts.find((h) => h.name === 'a')).toMatchObject({attention: true, live: null, exitCode: 4})
    expectOnR0(f, ['b', 'c'])
  })

  it('a host cut off before it could be restored or record its end: exit 4 naming it, its operation left open for recovery', async () => {
    const f = fakeFleet(['a', 'b', 'c'], {}, {waves: [1, '100%']})
    let cut = false
    f.fake('a').at('append', () => {
      if (cut) throw new Error('ssh: connect to host a port 22: Connection timed out')
    })
    f.fake('c').at('command', (call) => {
      if (call.n === 2) {
        cut = true
        throw new Error('injected smoke failure')
      }
    })
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention', failedHost: 'c'})
    expect(r.error).toMatch(/NEEDS ATTENTION on a$/)
    const a = r.hosts.find((h) => h.name === 'a')!
    expect(a).toMatchObject({exitCode: EXIT.needsAttention, attention: true, live: null})
    expect(a.error).toMatch(/could not record the outcome on the host: ssh: connect to host a/)
    expect(journalLines(f.fake('a').journal).some((l) => l.startsWith('deploy end'))).toBe(false)
    expectOnR0(f, ['b', 'c'])
  })

  it('smoke checks keep running during the pause: a canary failing then stops the waves and is restored (exit 3)', async () => {
    const f = fakeFleet(['a', 'b', 'c'], {}, {waves: [1, '100%'], pauseMs: 300})
    // a's commands: reload-app, smoke-home (the deploy's), then smoke-home again during the pause.
    f.fake('a').onCommand = ({fake}) => (fake.commands.length === 3 ? false : undefined)
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored', failedHost: 'a'})
    expect(r.error).toMatch(/smoke failed during the pause: home: /)
    expect(f.fake('a').commands.slice(0, 3)).toEqual(['reload-app', 'smoke-home', 'smoke-home'])
    expectOnR0(f, ['a', 'b', 'c'])
    expect(f.fake('b').journal).toEqual([])
  })

  it('an interrupt mid-wave restores every touched host: exit 130', async () => {
    const f = fakeFleet(['a', 'b', 'c'], {}, {waves: [1, '100%'], parallel: 1})
    f.fake('b').abortAt('sync', f.ac)
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r).toMatchObject({exitCode: EXIT.interrupted, outcome: 'interrupted'})
    expectOnR0(f, ['a', 'b', 'c'])
    expect(journalLines(f.fake('a').journal).at(-1)).toBe('deploy end interrupted 130')
    expect(f.fake('c').journal).toEqual([])
  })
})

describe('fleet deploy: before any host is touched', () => {
  it('an unreachable host fails the preflight: exit 1 naming it, no host locked or changed', async () => {
    const f = fakeFleet(['a', 'b', 'c'])
    f.fake('b').fail('preflight', {error: new Error('ssh: connect to host b port 22: Connection refused')})
    const r = await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))
    expect(r.exitCode).toBe(EXIT.failed)
    expect(r.error!.message).toMatch(/preflight failed on host b: b: reachable: ssh: connect/)
    expect((r.error as {hint?: string}).hint).toMatch(/--limit '!b'/)
    for (const n of ['a', 'b', 'c']) expect(f.fake(n).count('lock'), n).toBe(0)
    expectOnR0(f, ['a', 'b', 'c'])
  })

  it('locks are tried on every host at once; a held lock exits 5 naming host and owner and releases the locks taken', async () => {
    const f = fakeFleet(['c', 'a', 'd', 'b'])
    const tried: string[] = []
    let inFlight = 0
    let most = 0
    for (const [n, fake] of f.fakes)
      fake.at('lock', async () => {
        tried.push(n)
        most = Math.max(most, ++inFlight)
        await new Promise((r) => setImmediate(r))
        inFlight--
      })
    f.fake('c').holdLock({user: 'alice', host: 'laptop'})
    const r = await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))
    expect(r.exitCode).toBe(EXIT.locked)
    expect(r.error!.message).toMatch(/^host c: target is locked by .*alice/)
    expect(tried.sort()).toEqual(['a', 'b', 'c', 'd'])
    expect(most).toBe(4) // not one host after another
    for (const n of ['a', 'b', 'd']) expect(f.fake(n).lockOwner, n).toBeUndefined()
    expect(f.fake('c').lockOwner?.user).toBe('alice')
    expectOnR0(f, ['a', 'b', 'd'])
  })

  it('two held locks: the error names the first in name order', async () => {
    const f = fakeFleet(['c', 'a', 'd', 'b'])
    f.fake('d').holdLock({user: 'bob', host: 'ci'})
    f.fake('b').holdLock({user: 'alice', host: 'laptop'})
    const r = await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))
    expect(r.exitCode).toBe(EXIT.locked)
    expect(r.error!.message).toMatch(/^host b: target is locked by .*alice/)
    for (const n of ['a', 'c']) expect(f.fake(n).lockOwner, n).toBeUndefined()
  })

  it('an interrupted operation in a host journal is restored first, and reported for that host', async () => {
    const f = fakeFleet(['a', 'b'])
    const b = f.fake('b')
    b.snapshotAs('20240202000000')
    b.journal.push(
      {
        event: 'start',
        op: 'deploy',
        opId: '20240202000000',
        t: '2024-02-02T00:00:00.000Z',
        backup: '20240202000000',
        release: '20240202000000',
        from: R0,
        user: 'x',
        host: 'y',
        pid: 1,
        argv: [],
      },
      {event: 'phase', opId: '20240202000000', t: '2024-02-02T00:00:01.000Z', phase: 'sync'},
    )
    b.setLive({'app.py': 'half'}, R0)
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r.exitCode).toBe(EXIT.ok)
    expect(r.hosts.find((h) => h.name === 'b')!.recovery).toMatchObject({interrupted: '20240202000000', op: 'deploy'})
    expect(r.hosts.find((h) => h.name === 'a')!.recovery).toBeUndefined()
    expect(f.said.some((m) => m.startsWith('[b] hotctl: deploy 20240202000000 was interrupted'))).toBe(true)
    expect(b.tree()).toEqual(SOURCE)
    // One release id later than every id on every host.
    expect(r.release! > '20240202000000').toBe(true)
  })

  it('dry run: every host planned (one release id), no lock, nothing journaled or changed', async () => {
    const f = fakeFleet(['a', 'b'])
    const r = (await ended(fleetDeploy(f.fleet, {...DEPLOY_FLAGS, dryRun: true}))).result!
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'dry-run'})
    expect(r.hosts.map((h) => h.result?.plan?.changes)).toEqual([
      {added: 1, changed: 1, deleted: 1},
      {added: 1, changed: 1, deleted: 1},
    ])
    expect(new Set(r.hosts.map((h) => h.result?.plan?.id))).toEqual(new Set([r.release]))
    for (const fake of f.fakes.values()) {
      expect(fake.count('lock')).toBe(0)
      expect(fake.journal).toEqual([])
      expect(fake.tree()).toEqual(LIVE)
    }
  })

  it('nothing to deploy anywhere: exit 0, nothing journaled', async () => {
    const f = fakeFleet(['a', 'b'])
    for (const fake of f.fakes.values()) fake.source = new Map([...fake.files].filter(([p]) => !p.startsWith('.')))
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'nothing-to-deploy'})
    for (const fake of f.fakes.values()) expect(fake.journal).toEqual([])
  })

  it('a host already holding the files still takes the release: one release everywhere', async () => {
    const f = fakeFleet(['a', 'b'])
    f.fake('b').setLive(SOURCE, R0)
    const r = (await ended(fleetDeploy(f.fleet, DEPLOY_FLAGS))).result!
    expect(r.exitCode).toBe(EXIT.ok)
    expect(f.fake('a').marker).toBe(r.release)
    expect(f.fake('b').marker).toBe(r.release)
  })
})

describe('fleet deploy --canary on fake targets and fake agents', () => {
  afterEach(stopFakeAgents)

  /** Each host's agent is a fake on loopback (its canary reports the host's marker); `failRate` per host. */
  async function canaryFleet(names: string[], failRate: Record<string, number> = {}) {
    const f = fakeFleet(
      names,
      {
        services: [
          {name: 'app', trigger: {url: '${host.vars.agent}', method: 'POST', headers: {}, timeout: '5s', retries: 0}},
        ],
      } as never,
      {waves: [2, '100%'], onFailure: 'halt'},
    )
    const calls: string[] = []
    for (const h of f.config.hosts)
      h.vars.agent = await fakeAgent(h.name, calls, {
        failRate: failRate[h.name],
        version: () => f.fake(h.name).marker ?? null,
      })
    return {f, calls}
  }
  const flags = {...DEPLOY_FLAGS, canary: {steps: [10, 100], intervalMs: 10, maxErrorRate: 0.01, minCalls: 1}}

  it('halt: a breach on one host of wave 2 puts the whole wave back; wave 1 keeps the release', async () => {
    const {f, calls} = await canaryFleet(['h1', 'h2', 'h3', 'h4'], {h4: 0.2})
    const r = (await ended(fleetDeploy(f.fleet, flags))).result!
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'halted', failedHost: 'h4'})
    expect(r.error).toMatch(
      /failed on h4: canary at 10 %: the new release failed 20 of 100 calls .* aborted on h3, h4$/,
    )
    expect(r.hosts.map((h) => [h.name, h.live === r.release ? 'new' : h.live])).toEqual([
      ['h1', 'new'],
      ['h2', 'new'],
      ['h3', R0],
      ['h4', R0],
    ])
    expectOnR0(f, ['h3', 'h4'])
    expect(r.hosts.find((h) => h.name === 'h3')!.error).toMatch(/^canary aborted with h4: /)
    expect(calls.filter((c) => c.endsWith('/promote')).sort()).toEqual(['h1 /promote', 'h2 /promote'])
    expect(calls.filter((c) => c.endsWith('/abort')).sort()).toEqual(['h3 /abort', 'h4 /abort'])
    expect(r.hosts.map((h) => h.result?.canary?.outcome)).toEqual(['promoted', 'promoted', 'aborted', 'aborted'])
    expect(journalLines(f.fake('h3').journal).at(-1)).toBe('deploy end restored 3')
    const text = renderFleetDeploy(r)
    expect(text).toMatch(/^Canary on h1 \(wave 1\): 10 %: 0\/100 failed, p95 1 ms \(old 1 ms\) → promoted\.$/m)
    expect(text).toMatch(/^Canary on h4 \(wave 2\): 10 %: 20\/100 failed, p95 1 ms \(old 1 ms\) → aborted\.$/m)
  })

  it('halt: a smoke failure after the promotion stops the wave; a host of it not yet smoke-tested is put back too', async () => {
    const {f} = await canaryFleet(['h1', 'h2', 'h3'])
    f.config.fleet.parallel = 1
    f.fake('h1').fail('command', {nth: 1}) // its deploy's smoke (the canary reloads by HTTP); the restore's passes
    const r = (await ended(fleetDeploy(f.fleet, flags))).result!
    expect(r, JSON.stringify(r.hosts.map((h) => [h.name, h.error]))).toMatchObject({
      exitCode: EXIT.restored,
      outcome: 'halted',
      failedHost: 'h1',
    })
    expectOnR0(f, ['h1', 'h2', 'h3'])
    expect(r.hosts.find((h) => h.name === 'h2')!.error).toMatch(/stopped with wave 1: h1 failed/)
  })

  it('halt: a host failing before the canary stops its wave; the wave’s other host, synced but not proven, is put back too', async () => {
    const {f, calls} = await canaryFleet(['h1', 'h2', 'h3'])
    f.fake('h2').fail('sync')
    const r = (await ended(fleetDeploy(f.fleet, flags))).result!
    expect(r, JSON.stringify(r.hosts.map((h) => [h.name, h.error]))).toMatchObject({
      exitCode: EXIT.restored,
      outcome: 'halted',
      failedHost: 'h2',
    })
    expectOnR0(f, ['h1', 'h2', 'h3'])
    expect(r.hosts.find((h) => h.name === 'h1')!.error).toMatch(/stopped with wave 1: h2 failed/)
    expect(journalLines(f.fake('h1').journal).at(-1)).toBe('deploy end restored 3')
    expect(calls.filter((c) => c.includes('canary'))).toEqual([]) // no canary was loaded anywhere (the restores reload)
  })
})
