import {describe, expect, it} from 'vitest'
import type {ResolvedConfig} from '../../src/config/resolve.js'
import {EXIT} from '../../src/errors.js'
import {newId} from '../../src/ids.js'
import {deploy} from '../../src/pipeline/deploy.js'
import {rollback} from '../../src/pipeline/rollback.js'
import type {JournalEvent, Phase} from '../../src/state/journal.js'
import {
  COMMAND_SERVICE,
  DEPLOY_FLAGS,
  ended,
  FAKE_PGID,
  FakeTarget,
  fakeConfig,
  fakeContext,
  journalLines,
} from './fake-target.js'

/**
 * Recovery of an operation a killed hotctl left open (a journal start with phases and no end):
 * the next deploy or rollback, under the lock, stops what it left running, restores its backup,
 * proves it and closes it in the journal before doing its own work.
 */

const R0 = '20240101000000'
const X = '20250101000000'
const T = '2025-01-01T00:00:00.000Z'
const LIVE = {'app.py': 'v1', 'lib/util.py': 'u1', 'old.py': 'old'}
/** What the killed deploy of X left: part of its source written, the marker still R0's. */
const HALF = {'app.py': 'vX', 'lib/util.py': 'u1', 'old.py': 'old', 'x.py': 'x'}
const SOURCE = {'app.py': 'v2', 'lib/util.py': 'u1', 'new.py': 'new'}

const start = (
  op: 'deploy' | 'rollback',
  opId: string,
  extra: Partial<Extract<JournalEvent, {event: 'start'}>> = {},
): JournalEvent => ({
  event: 'start',
  op,
  opId,
  t: T,
  backup: opId,
  user: 'fake',
  host: 'fake-host',
  pid: 99999,
  argv: [op],
  ...extra,
})
const phases = (opId: string, ...ps: Phase[]): JournalEvent[] =>
  ps.map((phase) => ({event: 'phase', opId, t: T, phase}))
const child = (opId: string): JournalEvent => ({event: 'child', opId, t: T, pgid: FAKE_PGID})

/** A target a hotctl was killed on while deploying X: `events` journaled, the tree half-written. */
function killedDeploy(events: JournalEvent[], over: Partial<ResolvedConfig> = {}, signal?: AbortSignal) {
  const fake = new FakeTarget({source: SOURCE})
  fake.setLive(HALF, R0)
  fake.seedBackup(X, LIVE, {release: R0})
  fake.journal.push(...events)
  const config = fakeConfig({...COMMAND_SERVICE, ...over})
  const {ctx, said} = fakeContext(fake, config, signal)
  const seeded = events.length
  return {
    fake,
    ctx,
    said,
    lines: () => journalLines(fake.journal).slice(seeded),
    run: () => ended(deploy(ctx, DEPLOY_FLAGS)),
  }
}

const SYNCED_X = [start('deploy', X, {release: X, from: R0}), ...phases(X, 'backup', 'sync'), child(X)]
const RECOVERED = [
  'recover start',
  'recover phase restore',
  'recover phase restore-reload',
  'recover phase restore-smoke',
]
RECOVERED.push('recover end recovered 0', 'deploy end interrupted 130')
const DEPLOYED = [
  'deploy start',
  'deploy phase backup',
  'deploy phase sync',
  'deploy child 4242',
  'deploy phase marker',
]
DEPLOYED.push('deploy phase reload', 'deploy phase smoke', 'deploy end ok 0')

describe('recovery on the fake target, before a deploy', () => {
  it('a deploy killed after its sync: its rsync is stopped, its backup restored and proven, then the new deploy runs', async () => {
    const {fake, lines, run, said} = killedDeploy(SYNCED_X)
    fake.holdLock({pid: 99999}, true) // the killed hotctl's lock, too
    let atNewBackup: Record<string, string> = {}
    fake.at('backup', ({fake: f}) => void (atNewBackup = f.tree()))
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'deployed'})
    expect(r.result!.recovery).toMatchObject({
      interrupted: X,
      op: 'deploy',
      restored: {ok: true, backup: X, release: R0},
    })
    expect(fake.reaped).toEqual([[FAKE_PGID]])
    expect(lines()).toEqual([...RECOVERED, ...DEPLOYED])
    expect(fake.journal.find((e) => e.event === 'end' && e.opId === X)).toMatchObject({
      result: 'interrupted',
      recovered: X,
    })
    expect(atNewBackup).toEqual(LIVE) // the new deploy backed up the recovered tree, not the half-written one
    expect(fake.tree()).toEqual(SOURCE)
    expect(said.join('\n')).toMatch(/cleared a stale lock/)
    expect(said.join('\n')).toMatch(
      /deploy 20250101000000 was interrupted after changing the target \(last phase: sync\)/,
    )
    expect(fake.lockOwner).toBeUndefined()
  })

  it('a deploy killed before it changed anything is closed in the journal, nothing restored', async () => {
    const {fake, lines, run} = killedDeploy([start('deploy', X, {release: X, from: R0}), ...phases(X, 'backup')])
    fake.setLive(LIVE, R0) // it never reached the sync
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'deployed'})
    expect(r.result!.recovery).toEqual({interrupted: X, op: 'deploy'})
    expect(lines()).toEqual(['recover start', 'recover end recovered 0', 'deploy end interrupted 130', ...DEPLOYED])
    expect(fake.count('restore')).toBe(0)
    expect(fake.tree()).toEqual(SOURCE)
  })

  it('a rollback killed during its restore: its undo snapshot is put back first', async () => {
    const U = X
    const killed = start('rollback', U, {release: R0, restores: '20240601000000', from: '20240701000000'})
    const events = [killed, ...phases(U, 'backup', 'restore')]
    const {fake, lines, run} = killedDeploy(events)
    const r = await run()
    expect(r.exitCode).toBe(EXIT.ok)
    expect(r.result!.recovery).toMatchObject({interrupted: U, op: 'rollback', restored: {ok: true}})
    expect(lines()).toEqual([...RECOVERED.slice(0, -1), 'rollback end interrupted 130', ...DEPLOYED])
    expect(fake.tree()).toEqual(SOURCE)
  })

  it('the recovery restore fails: exit 4, the new deploy never starts, the tree stays as found', async () => {
    const {fake, lines, run} = killedDeploy(SYNCED_X)
    fake.fail('restore', {error: new Error('store unreadable')})
    const r = await run()
    expect(r.exitCode).toBe(EXIT.needsAttention)
    expect(r.error?.message).toMatch(/could not restore backup 20250101000000 of interrupted deploy/)
    expect(lines()).toEqual([
      'recover start',
      'recover phase restore',
      'recover end attention 4',
      'deploy end interrupted 130',
    ])
    expect(fake.tree()).toEqual(HALF)
    expect(fake.count('snapshot')).toBe(0)
    expect(fake.lockOwner).toBeUndefined()
  })

  it('the recovered release fails its smoke: unproven, exit 4', async () => {
    const {fake, lines, run} = killedDeploy(SYNCED_X)
    fake.onCommand = ({command}) => command !== 'smoke-home'
    const r = await run()
    expect(r.exitCode).toBe(EXIT.needsAttention)
    expect(lines()).toEqual([...RECOVERED.slice(0, 4), 'recover end attention 4', 'deploy end interrupted 130'])
    expect(fake.tree()).toEqual(LIVE) // the content is back; only the proof failed
  })

  it("the killed hotctl's rsync is still running: exit 4 before anything is restored", async () => {
    const {fake, lines, run} = killedDeploy(SYNCED_X)
    fake.stillRunning = [FAKE_PGID]
    const r = await run()
    expect(r.exitCode).toBe(EXIT.needsAttention)
    expect(r.error?.message).toMatch(
      /process group 4242 left by the interrupted deploy 20250101000000 is still running/,
    )
    expect(lines()).toEqual([])
    expect(fake.tree()).toEqual(HALF)
    expect(fake.lockOwner).toBeUndefined()
  })

  it('an interrupt during the recovery: the recovery finishes, the deploy does not start, exit 130', async () => {
    const ac = new AbortController()
    const {fake, lines, run} = killedDeploy(SYNCED_X, {}, ac.signal)
    fake.abortAt('restore', ac)
    const r = await run()
    expect(r.exitCode).toBe(EXIT.interrupted)
    expect(lines()).toEqual(RECOVERED)
    expect(fake.tree()).toEqual(LIVE)
    expect(fake.commands).toEqual(['reload-app']) // the short proof: command smoke skipped
  })
})

describe('recovery on the fake target, before a rollback', () => {
  it('a deploy killed after its sync is recovered, then the rollback goes one step back from the recovered release', async () => {
    const fake = new FakeTarget()
    fake.setLive(LIVE, R0)
    const {ctx} = fakeContext(fake, fakeConfig(COMMAND_SERVICE))
    const ids: string[] = []
    for (const tree of [{'app.py': 'vA'}, {'app.py': 'vB'}]) {
      fake.source = new FakeTarget({source: tree}).source
      ids.push((await deploy(ctx, DEPLOY_FLAGS)).release!)
    }
    const [A, B] = ids as [string, string]
    // Deploy C was killed halfway through its sync.
    const C = newId(ids)
    fake.snapshotAs(C)
    fake.journal.push(start('deploy', C, {release: C, from: B}), ...phases(C, 'backup', 'sync'), child(C))
    fake.setLive({'app.py': 'vC', 'c.py': 'c'}, B)
    const seeded = fake.journal.length
    const r = await ended(rollback(ctx, {}))
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'rolled-back'})
    expect(r.result).toMatchObject({recovery: {interrupted: C, restored: {ok: true, release: B}}, from: B, release: A})
    expect(journalLines(fake.journal).slice(seeded)).toEqual([
      ...RECOVERED,
      'rollback start',
      'rollback phase backup',
      'rollback phase restore',
      'rollback phase reload',
      'rollback phase smoke',
      'rollback end ok 0',
    ])
    expect(fake.backupStore.get(r.result!.undo!)?.tree.get('app.py')?.content).toBe('vB') // the undo snapshot holds the recovered B
    expect(fake.tree()).toEqual({'app.py': 'vA'})
    expect(fake.marker).toBe(A)
  })
})
