import {describe, expect, it} from 'vitest'
import type {ResolvedConfig} from '../../src/config/resolve.js'
import {EXIT} from '../../src/errors.js'
import {deploy, type DeployFlags} from '../../src/pipeline/deploy.js'
import {BackupDamagedError} from '../../src/store/integrity.js'
import {COMMAND_SERVICE, DEPLOY_FLAGS, ended, FakeTarget, fakeConfig, fakeContext, journalLines} from './fake-target.js'

/**
 * deploy against the in-memory FakeTarget, failing at each phase in turn: the outcome, the exit
 * code, the journal and what the target holds afterwards. Real rsync, signals and processes are
 * the e2e suite's; here only `checks` run a real (trivial) command.
 */

const R0 = '20240101000000'
const LIVE = {'app.py': 'v1', 'lib/util.py': 'u1', 'old.py': 'old'}
const SOURCE = {'app.py': 'v2', 'lib/util.py': 'u1', 'new.py': 'new'}

function setup(over: Partial<ResolvedConfig> = {}, signal?: AbortSignal) {
  const fake = new FakeTarget({source: SOURCE})
  fake.setLive(LIVE, R0)
  const config = fakeConfig({...COMMAND_SERVICE, ...over})
  const {ctx, said} = fakeContext(fake, config, signal)
  return {
    fake,
    config,
    ctx,
    said,
    run: (flags: Partial<DeployFlags> = {}) => ended(deploy(ctx, {...DEPLOY_FLAGS, ...flags})),
  }
}

/** The journal's lines from the deploy's start on. */
const BEFORE_SYNC = ['deploy start', 'deploy phase backup']
const SYNCED = [...BEFORE_SYNC, 'deploy phase sync', 'deploy child 4242']
const LIVE_RELEASE = [...SYNCED, 'deploy phase marker', 'deploy phase reload', 'deploy phase smoke']
const RESTORE = ['deploy phase restore', 'deploy phase restore-reload', 'deploy phase restore-smoke']

function expectUntouched(fake: FakeTarget) {
  expect(fake.tree()).toEqual(LIVE)
  expect(fake.marker).toBe(R0)
}

describe('deploy on the fake target: success', () => {
  it('syncs, writes the marker, reloads, smokes: exit 0, journal ok, target = source', async () => {
    const {fake, run} = setup()
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'deployed'})
    const id = r.result!.release!
    expect(journalLines(fake.journal)).toEqual([...LIVE_RELEASE, 'deploy end ok 0'])
    const who = {user: 'fake', host: 'fake-host'}
    expect(fake.journal[0]).toMatchObject({
      event: 'start',
      op: 'deploy',
      opId: id,
      backup: id,
      release: id,
      from: R0,
      ...who,
    })
    expect(fake.tree()).toEqual(SOURCE)
    expect(fake.marker).toBe(id)
    // The backup holds the tree from before, marker included, under the new release's id.
    expect(fake.backupStore.get(id)?.meta.release).toBe(R0)
    const backedUp = [...fake.backupStore.get(id)!.tree].filter(([p]) => !p.startsWith('.'))
    expect(Object.fromEntries(backedUp.map(([p, f]) => [p, f.content]))).toEqual(LIVE)
    expect(fake.commands).toEqual(['reload-app', 'smoke-home'])
    expect(fake.lockOwner).toBeUndefined()
  })

  it('nothing to deploy: exit 0, nothing journaled, no backup', async () => {
    const {fake, run} = setup()
    fake.source = new Map(fake.files)
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'nothing-to-deploy'})
    expect(fake.journal).toEqual([])
    expect(fake.backupStore.size).toBe(0)
    expectUntouched(fake)
  })

  it('dry run: plans without the lock, journals nothing, writes nothing', async () => {
    const {fake, run} = setup()
    fake.at('lock', () => {
      throw new Error('a dry run must not take the lock')
    })
    const r = await run({dryRun: true})
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'dry-run'})
    expect(r.result!.changes).toEqual({added: ['new.py'], changed: ['app.py'], deleted: ['old.py']})
    expect(fake.journal).toEqual([])
    expectUntouched(fake)
  })

  it('a stale lock (owner gone) is cleared with a message and the deploy goes on', async () => {
    const {fake, run, said} = setup()
    fake.holdLock({pid: 123456}, true)
    const r = await run()
    expect(r.exitCode).toBe(EXIT.ok)
    expect(said.join('\n')).toMatch(/cleared a stale lock: pid 123456/)
    expect(fake.lockOwner).toBeUndefined()
  })

  it("after a proven deploy, backups beyond `keep` are pruned; the deploy's own backup stays", async () => {
    const {fake, ctx} = setup({keep: 1})
    const ids: string[] = []
    for (const tree of [{'app.py': 'vA'}, {'app.py': 'vB'}, {'app.py': 'vC'}]) {
      fake.source = new FakeTarget({source: tree}).source
      ids.push((await deploy(ctx, DEPLOY_FLAGS)).release!)
    }
    expect([...fake.backupStore.keys()]).toEqual([ids[2]])
    expect(fake.backupStore.get(ids[2]!)?.meta.release).toBe(ids[1])
    expect(fake.tree()).toEqual({'app.py': 'vC'})
  })

  it('a failed prune is a warning: exit 0', async () => {
    const {fake, run, said} = setup()
    fake.fail('prune')
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'deployed'})
    expect(journalLines(fake.journal).at(-1)).toBe('deploy end ok 0')
    expect(said.join('\n')).toMatch(/pruning old backups failed: injected prune failure/)
  })
})

describe('deploy on the fake target: failures before the target changed exit 1 and touch nothing', () => {
  it('preflight: exit 1, no journal, lock never taken', async () => {
    const {fake, run} = setup()
    fake.preflightItems = [{name: 'target', ok: false, detail: '/srv/app does not exist', hint: 'Check the path.'}]
    const r = await run()
    expect(r.exitCode).toBe(EXIT.failed)
    expect(r.error?.message ?? r.result?.error).toMatch(/preflight failed: target: \/srv\/app does not exist/)
    expect(fake.journal).toEqual([])
    expect(fake.calls).not.toContain('lock')
    expectUntouched(fake)
  })

  it('checks (a real `false` run in the source dir): exit 1, no journal, no lock', async () => {
    const {fake, run} = setup({checks: [{name: 'unit', commands: [{argv: ['false']}]}]})
    const r = await run()
    expect(r.exitCode).toBe(EXIT.failed)
    expect(r.error?.message ?? r.result?.error).toMatch(/checks failed: unit/)
    expect(fake.journal).toEqual([])
    expect(fake.calls).not.toContain('lock')
    expectUntouched(fake)
  })

  it('planning: exit 1, no journal, lock released', async () => {
    const {fake, run} = setup()
    fake.fail('plan', {error: new Error('planning scan failed')})
    const r = await run()
    expect(r.exitCode).toBe(EXIT.failed)
    expect(fake.journal).toEqual([])
    expect(fake.lockOwner).toBeUndefined()
    expectUntouched(fake)
  })

  it('lock held by a live hotctl: exit 5, no journal, the other lock stays', async () => {
    const {fake, run} = setup()
    const other = fake.holdLock()
    const r = await run()
    expect(r.exitCode).toBe(EXIT.locked)
    expect(r.error?.message ?? r.result?.error).toMatch(/target is locked by pid 99999/)
    expect(fake.journal).toEqual([])
    expect(fake.lockOwner).toEqual(other)
    expectUntouched(fake)
  })

  it('a change that needs a restart under --no-restart: exit 6, no journal, no backup', async () => {
    const {fake, run} = setup({requireRestart: ['new.py']})
    const r = await run({noRestart: true})
    expect(r.exitCode).toBe(EXIT.needsRestart)
    expect(r.error?.message ?? r.result?.error).toMatch(/need a restart.*new\.py/)
    expect(fake.journal).toEqual([])
    expect(fake.backupStore.size).toBe(0)
    expect(fake.lockOwner).toBeUndefined()
    expectUntouched(fake)
  })

  it('backup: exit 1, journal start → backup → end failed 1', async () => {
    const {fake, run} = setup()
    fake.fail('backup', {error: new Error('disk full')})
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.failed, outcome: 'failed'})
    expect(journalLines(fake.journal)).toEqual([...BEFORE_SYNC, 'deploy end failed 1'])
    expect(fake.journal.at(-1)).toMatchObject({error: 'disk full'})
    expect(fake.calls).not.toContain('sync')
    expect(fake.lockOwner).toBeUndefined()
    expectUntouched(fake)
  })
})

describe('deploy on the fake target: failures after the target changed restore the backup (exit 3)', () => {
  it('sync fails halfway: the files it wrote are put back', async () => {
    const {fake, run} = setup()
    fake.fail('sync:write', {nth: 3, error: new Error('rsync: connection lost')}) // after new.py and app.py
    let atRestore: Record<string, string> = {}
    fake.at('restore', ({fake: f}) => void (atRestore = f.tree()))
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(atRestore).toEqual({...LIVE, 'app.py': 'v2', 'new.py': 'new'}) // half old, half new when the restore began
    expect(journalLines(fake.journal)).toEqual([...SYNCED, ...RESTORE, 'deploy end restored 3'])
    expect(fake.journal.at(-1)).toMatchObject({error: expect.stringMatching(/connection lost/)})
    expect(r.result!.restore).toMatchObject({ok: true, written: 1, removed: 1})
    expectUntouched(fake)
    expect(fake.commands).toEqual(['reload-app', 'smoke-home']) // the restore's proof only
    expect(fake.lockOwner).toBeUndefined()
  })

  it('the synced tree differs from the source: restored', async () => {
    const {fake, run} = setup()
    fake.syncDiffers = ['app.py']
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(r.result!.error).toMatch(/does not match the source after sync at: app\.py/)
    expect(journalLines(fake.journal)).toEqual([...SYNCED, ...RESTORE, 'deploy end restored 3'])
    expectUntouched(fake)
  })

  it('writing the release marker fails: restored', async () => {
    const {fake, run} = setup()
    fake.fail('marker')
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(journalLines(fake.journal)).toEqual([...SYNCED, 'deploy phase marker', ...RESTORE, 'deploy end restored 3'])
    expectUntouched(fake)
  })

  it('the reload trigger fails on the new release: restored, and the old release reloads', async () => {
    const {fake, run} = setup()
    fake.onCommand = ({fake: f, command}) => !(command === 'reload-app' && f.marker !== R0)
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(r.result!.error).toMatch(/reload trigger `reload-app` failed \(exit 1\)/)
    const reloaded = [...SYNCED, 'deploy phase marker', 'deploy phase reload']
    expect(journalLines(fake.journal)).toEqual([...reloaded, ...RESTORE, 'deploy end restored 3'])
    expect(fake.commands).toEqual(['reload-app', 'reload-app', 'smoke-home'])
    expectUntouched(fake)
  })

  it('smoke fails on the new release but passes on the old: restored', async () => {
    const {fake, run} = setup()
    fake.onCommand = ({fake: f, command}) => !(command === 'smoke-home' && f.marker !== R0)
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(r.result!.error).toMatch(/smoke failed: home/)
    expect(journalLines(fake.journal)).toEqual([...LIVE_RELEASE, ...RESTORE, 'deploy end restored 3'])
    expect(fake.commands).toEqual(['reload-app', 'smoke-home', 'reload-app', 'smoke-home'])
    expect(r.result!.restore?.proof.smoke).toEqual([expect.objectContaining({name: 'home', ok: true})])
    expectUntouched(fake)
  })
})

describe('deploy on the fake target: a restore that fails or cannot be proven exits 4', () => {
  it('the restore throws: needs attention, the half-synced tree stays as it is', async () => {
    const {fake, run} = setup()
    fake.fail('sync:write', {nth: 2})
    fake.fail('restore', {error: new Error('backup store unreadable')})
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(journalLines(fake.journal)).toEqual([...SYNCED, 'deploy phase restore', 'deploy end attention 4'])
    expect(fake.journal.at(-1)).toMatchObject({error: expect.stringMatching(/restore: backup store unreadable/)})
    expect(fake.tree()).toEqual({...LIVE, 'new.py': 'new'})
    expect(fake.lockOwner).toBeUndefined()
  })

  it('the restore stops after writing part of the backup: needs attention', async () => {
    const {fake, run} = setup()
    fake.fail('marker')
    fake.fail('restore:write', {nth: 2, error: new Error('EIO')})
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(journalLines(fake.journal)).toEqual([
      ...SYNCED,
      'deploy phase marker',
      'deploy phase restore',
      'deploy end attention 4',
    ])
    expect(fake.tree()).not.toEqual(LIVE)
    expect(fake.tree()).not.toEqual(SOURCE)
  })

  it('the restored tree does not verify: needs attention', async () => {
    const {fake, run} = setup()
    fake.fail('marker')
    fake.verifyDiffers = ['lib/util.py']
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(r.result!.restore).toMatchObject({ok: false, differences: ['lib/util.py']})
    expect(journalLines(fake.journal)).toEqual([
      ...SYNCED,
      'deploy phase marker',
      'deploy phase restore',
      'deploy end attention 4',
    ])
  })

  it('a damaged backup is refused by the restore: needs attention, nothing restored', async () => {
    const {fake, run} = setup()
    fake.fail('marker')
    fake.at('restore', ({args}) => {
      const damage = {
        what: 'object',
        problem: 'hash-mismatch',
        path: 'app.py',
        message: 'app.py: hash mismatch',
      } as const
      throw new BackupDamagedError(String(args[0]), [damage])
    })
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(r.result!.restore?.damage).toHaveLength(1)
    expect(fake.tree()).toEqual(SOURCE)
  })

  it('smoke fails on the old release too: the restore is unproven, needs attention', async () => {
    const {fake, run} = setup()
    fake.onCommand = ({command}) => command !== 'smoke-home'
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(journalLines(fake.journal)).toEqual([...LIVE_RELEASE, ...RESTORE, 'deploy end attention 4'])
    expectUntouched(fake) // content is back; only the proof failed
  })
})

describe('deploy on the fake target: an interrupt exits 130, restoring what changed', () => {
  it('during preflight: exit 130, nothing journaled, no lock', async () => {
    const ac = new AbortController()
    const {fake, run} = setup({}, ac.signal)
    fake.abortAt('preflight', ac)
    const r = await run()
    expect(r.exitCode).toBe(EXIT.interrupted)
    expect(fake.journal).toEqual([])
    expect(fake.calls).not.toContain('lock')
    expectUntouched(fake)
  })

  it('during the backup: exit 130, journal end interrupted, target untouched', async () => {
    const ac = new AbortController()
    const {fake, run} = setup({}, ac.signal)
    fake.abortAt('backup', ac)
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.interrupted, outcome: 'interrupted'})
    expect(journalLines(fake.journal)).toEqual([...BEFORE_SYNC, 'deploy end interrupted 130'])
    expect(fake.calls).not.toContain('sync')
    expectUntouched(fake)
    expect(fake.lockOwner).toBeUndefined()
  })

  it('halfway through the sync: the sync stops, the backup is restored, exit 130', async () => {
    const ac = new AbortController()
    const {fake, run} = setup({}, ac.signal)
    fake.abortAt('sync:write', ac, {nth: 2})
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.interrupted, outcome: 'interrupted'})
    expect(r.result!.restore).toMatchObject({ok: true, interrupted: true})
    expect(journalLines(fake.journal)).toEqual([...SYNCED, ...RESTORE, 'deploy end interrupted 130'])
    expectUntouched(fake)
    // After an interrupt the restore's proof is short: the trigger runs, command smoke is skipped.
    expect(fake.commands).toEqual(['reload-app'])
  })

  it('during smoke: the running check is stopped, the backup restored, exit 130', async () => {
    const ac = new AbortController()
    const {fake, run} = setup({}, ac.signal)
    fake.onCommand = ({command}) => {
      if (command !== 'smoke-home') return
      ac.abort()
      return {ok: false, exitCode: undefined, canceled: true}
    }
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.interrupted, outcome: 'interrupted'})
    expect(journalLines(fake.journal)).toEqual([...LIVE_RELEASE, ...RESTORE, 'deploy end interrupted 130'])
    expectUntouched(fake)
  })
})
