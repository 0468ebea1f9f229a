import {describe, expect, it} from 'vitest'
import type {ResolvedConfig} from '../../src/config/resolve.js'
import {EXIT} from '../../src/errors.js'
import {deploy} from '../../src/pipeline/deploy.js'
import {rollback} from '../../src/pipeline/rollback.js'
import {BackupDamagedError} from '../../src/store/integrity.js'
import {COMMAND_SERVICE, DEPLOY_FLAGS, ended, FakeTarget, fakeConfig, fakeContext, journalLines} from './fake-target.js'

/**
 * rollback against the in-memory FakeTarget. The history is made by the real deploy pipeline: the
 * tree from before (release R0) → release A → release B (live). Each test then rolls back, failing
 * at one phase, and asserts the outcome, the exit code, the rollback's journal lines and the tree.
 */

const R0 = '20240101000000'
const TREE_R0 = {'app.py': 'v0', 'old.py': 'old'}
const TREE_A = {'app.py': 'vA', 'a.py': 'a'}
const TREE_B = {'app.py': 'vB', 'a.py': 'a', 'b.py': 'b'}

async function history(over: Partial<ResolvedConfig> = {}, signal?: AbortSignal) {
  const fake = new FakeTarget()
  fake.setLive(TREE_R0, R0)
  const config = fakeConfig({...COMMAND_SERVICE, ...over})
  const {ctx, said} = fakeContext(fake, config, signal)
  const ids: string[] = []
  for (const tree of [TREE_A, TREE_B]) {
    fake.source = new FakeTarget({source: tree}).source
    const r = await deploy(ctx, DEPLOY_FLAGS)
    expect(r.exitCode).toBe(EXIT.ok)
    ids.push(r.release!)
  }
  const [A, B] = ids as [string, string]
  expect(fake.marker).toBe(B)
  // Only the rollback's own lines and commands from here on.
  const before = fake.journal.length
  fake.commands.length = 0
  return {
    fake,
    ctx,
    said,
    A,
    B,
    lines: () => journalLines(fake.journal).slice(before),
    run: (to?: string) => ended(rollback(ctx, {to})),
  }
}

/** The rollback's own snapshot and restore, before its proof. */
const RESTORING = ['rollback start', 'rollback phase backup', 'rollback phase restore']
const PROVE = ['rollback phase reload', 'rollback phase smoke']
const PUT_BACK = ['rollback phase restore', 'rollback phase restore-reload', 'rollback phase restore-smoke']

describe('rollback on the fake target: success', () => {
  it('one step back: release A live again, exit 0, undo snapshot holds B', async () => {
    const {fake, A, B, lines, run} = await history()
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'rolled-back'})
    expect(r.result).toMatchObject({release: A, from: B, snapshot: B, undoWith: `hotctl rollback --to ${B}`})
    expect(lines()).toEqual([...RESTORING, ...PROVE, 'rollback end ok 0'])
    expect(fake.tree()).toEqual(TREE_A)
    expect(fake.marker).toBe(A)
    expect(fake.backupStore.get(r.result!.undo!)?.meta.release).toBe(B)
    expect(fake.commands).toEqual(['reload-app', 'smoke-home'])
    expect(fake.lockOwner).toBeUndefined()
  })

  it('--to the release from before hotctl deployed A', async () => {
    const {fake, A, lines, run} = await history()
    const r = await run(R0)
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'rolled-back'})
    expect(r.result).toMatchObject({release: R0, snapshot: A})
    expect(lines()).toEqual([...RESTORING, ...PROVE, 'rollback end ok 0'])
    expect(fake.tree()).toEqual(TREE_R0)
    expect(fake.marker).toBe(R0)
  })

  it('--to the live release: confirmed without a reload, nothing journaled, exit 0', async () => {
    const {fake, B, lines, run} = await history()
    const r = await run(B)
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'already-live'})
    expect(lines()).toEqual([])
    expect(fake.commands).toEqual(['smoke-home'])
    expect(fake.tree()).toEqual(TREE_B)
  })

  it('--to the live release whose smoke fails: exit 1, nothing changed', async () => {
    const {fake, B, lines, run} = await history()
    fake.onCommand = ({command}) => command !== 'smoke-home'
    const r = await run(B)
    expect(r.exitCode).toBe(EXIT.failed)
    expect(r.error?.message).toMatch(/already in the target, but it is not proven live/)
    expect(lines()).toEqual([])
    expect(fake.tree()).toEqual(TREE_B)
  })

  it('--to a release this target never had: usage error (exit 2), nothing journaled', async () => {
    const {fake, lines, run} = await history()
    const r = await run('20200101000000')
    expect(r.exitCode).toBe(EXIT.usage)
    expect(r.error?.message).toMatch(/--to 20200101000000: no release 20200101000000 on this target/)
    expect(lines()).toEqual([])
    expect(fake.tree()).toEqual(TREE_B)
    expect(fake.lockOwner).toBeUndefined()
  })
})

describe('rollback on the fake target: failures before the target changed exit 1 (5 when locked)', () => {
  it('preflight: exit 1, nothing journaled, no lock taken', async () => {
    const {fake, lines, run} = await history()
    fake.preflightItems = [{name: 'state dir', ok: false, detail: 'not writable'}]
    const calls = fake.calls.length
    const r = await run()
    expect(r.exitCode).toBe(EXIT.failed)
    expect(lines()).toEqual([])
    expect(fake.calls.slice(calls)).not.toContain('lock')
    expect(fake.tree()).toEqual(TREE_B)
  })

  it('lock held: exit 5, nothing journaled', async () => {
    const {fake, lines, run} = await history()
    const other = fake.holdLock()
    const r = await run()
    expect(r.exitCode).toBe(EXIT.locked)
    expect(lines()).toEqual([])
    expect(fake.lockOwner).toEqual(other)
    expect(fake.tree()).toEqual(TREE_B)
  })

  it('the undo snapshot fails: exit 1, journal backup → end failed 1', async () => {
    const {fake, lines, run} = await history()
    fake.fail('backup', {error: new Error('disk full')})
    const r = await run()
    expect(r.exitCode).toBe(EXIT.failed)
    expect(r.error?.message).toMatch(/rollback failed before changing the target: disk full/)
    expect(lines()).toEqual(['rollback start', 'rollback phase backup', 'rollback end failed 1'])
    expect(fake.tree()).toEqual(TREE_B)
    expect(fake.lockOwner).toBeUndefined()
  })

  it('the snapshot to restore is refused as damaged (before writing): exit 1, target untouched', async () => {
    const {fake, lines, run} = await history()
    fake.at('restore', ({args}) => {
      const damage = {what: 'chunk', problem: 'hash-mismatch', path: '', message: 'root chunk: hash mismatch'} as const
      throw new BackupDamagedError(String(args[0]), [damage])
    })
    const r = await run()
    expect(r.exitCode).toBe(EXIT.failed)
    expect(r.error?.message).toMatch(/is damaged: root chunk: hash mismatch/)
    expect(lines()).toEqual([...RESTORING, 'rollback end failed 1'])
    expect(fake.tree()).toEqual(TREE_B)
    expect(fake.marker).not.toBe(null)
  })

  it("the snapshot's metadata is damaged: refused before anything starts, exit 1", async () => {
    const {fake, B, lines, run} = await history()
    fake.damaged.add(B) // the snapshot holding A
    const r = await run()
    expect(r.exitCode).toBe(EXIT.failed)
    expect(r.error).toBeInstanceOf(BackupDamagedError)
    expect(lines()).toEqual([])
    expect(fake.tree()).toEqual(TREE_B)
  })
})

describe('rollback on the fake target: failures after the target changed put B back (exit 3)', () => {
  it('the restore stops halfway: the undo snapshot is put back', async () => {
    const {fake, B, lines, run} = await history()
    fake.at('restore:write', ({fake: f, n}) => {
      if (f.count('restore') === 1 && n === 2) throw new Error('EIO') // the rollback's restore writes one path, then fails
    })
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(r.result!.restore).toMatchObject({ok: true, backup: r.result!.undo, release: B})
    expect(lines()).toEqual([...RESTORING, ...PUT_BACK, 'rollback end restored 3'])
    expect(fake.tree()).toEqual(TREE_B)
    expect(fake.marker).toBe(B)
  })

  it('the restored tree does not verify: B put back', async () => {
    const {fake, B, lines, run} = await history()
    fake.at('verify', ({fake: f, n}) => void (f.verifyDiffers = n === 1 ? ['a.py'] : []))
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(r.result!.error).toMatch(/target differs from snapshot .* at: a\.py/)
    expect(lines()).toEqual([...RESTORING, ...PUT_BACK, 'rollback end restored 3'])
    expect(fake.marker).toBe(B)
  })

  it('the reload trigger fails on A: B put back', async () => {
    const {fake, A, B, lines, run} = await history()
    fake.onCommand = ({fake: f, command}) => !(command === 'reload-app' && f.marker === A)
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(lines()).toEqual([...RESTORING, 'rollback phase reload', ...PUT_BACK, 'rollback end restored 3'])
    expect(fake.commands).toEqual(['reload-app', 'reload-app', 'smoke-home'])
    expect(fake.tree()).toEqual(TREE_B)
    expect(fake.marker).toBe(B)
  })

  it('smoke fails on A but passes on B: B put back, under the lock until the journal records the end', async () => {
    const {fake, A, B, lines, run} = await history()
    fake.onCommand = ({fake: f, command}) => !(command === 'smoke-home' && f.marker === A)
    const lockedWhileRestoring: boolean[] = []
    fake.at('restore', ({fake: f}) => void lockedWhileRestoring.push(f.lockOwner !== undefined))
    const r = await run()
    // Both restores (A, then B put back) ran with the lock held: no other hotctl could step in.
    expect(lockedWhileRestoring).toEqual([true, true])
    expect(fake.lockOwner).toBeUndefined()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(lines()).toEqual([...RESTORING, ...PROVE, ...PUT_BACK, 'rollback end restored 3'])
    expect(fake.commands).toEqual(['reload-app', 'smoke-home', 'reload-app', 'smoke-home'])
    expect(fake.tree()).toEqual(TREE_B)
    expect(fake.marker).toBe(B)
  })
})

describe('rollback on the fake target: putting B back fails (exit 4) or is interrupted (exit 130)', () => {
  it('both restores fail: needs attention', async () => {
    const {fake, lines, run} = await history()
    fake.at('restore:write', ({fake: f, n}) => {
      if (f.count('restore') === 1 && n === 2) throw new Error('EIO') // halfway to A
    })
    fake.fail('restore', {nth: 2, error: new Error('store unreadable')}) // putting B back
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(lines()).toEqual([...RESTORING, 'rollback phase restore', 'rollback end attention 4'])
    expect(fake.tree()).not.toEqual(TREE_A)
    expect(fake.tree()).not.toEqual(TREE_B)
  })

  it('smoke fails on A and on B: needs attention', async () => {
    const {fake, lines, run} = await history()
    fake.onCommand = ({command}) => command !== 'smoke-home'
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(lines()).toEqual([...RESTORING, ...PROVE, ...PUT_BACK, 'rollback end attention 4'])
  })

  it('interrupted halfway through the restore: B put back, exit 130', async () => {
    const ac = new AbortController()
    const {fake, B, lines, run} = await history({}, ac.signal)
    fake.at('restore:write', ({fake: f, n}) => void (f.count('restore') === 1 && n === 2 && ac.abort()))
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.interrupted, outcome: 'interrupted'})
    // A restore runs to its end once started; the reload trigger then starts and is stopped at once
    // by the interrupt (runServiceCommand gets the aborted signal), which fails the step.
    expect(lines()).toEqual([...RESTORING, 'rollback phase reload', ...PUT_BACK, 'rollback end interrupted 130'])
    expect(fake.tree()).toEqual(TREE_B)
    expect(fake.marker).toBe(B)
    expect(fake.commands).toEqual(['reload-app', 'reload-app']) // the second: the short proof's; command smoke skipped
  })

  // Interrupted before its restore, a rollback stops there: nothing changed, so nothing to put back
  // (not two restores inside the CI runner's grace period).
  it('interrupted during the undo snapshot: exit 130 before anything changed', async () => {
    const ac = new AbortController()
    const {fake, lines, run} = await history({}, ac.signal)
    fake.abortAt('backup', ac)
    const r = await run()
    expect(r.exitCode).toBe(EXIT.interrupted)
    expect(lines()).toEqual(['rollback start', 'rollback phase backup', 'rollback end interrupted 130'])
    expect(fake.tree()).toEqual(TREE_B)
  })
})
