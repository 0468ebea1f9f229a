import {stripVTControlCharacters} from 'node:util'
import {describe, expect, it} from 'vitest'
import {deploy, type DeployFlags} from '../../src/pipeline/deploy.js'
import {rollback, type RollbackResult} from '../../src/pipeline/rollback.js'
import {renderRollback} from '../../src/ui/rollback-report.js'
import {writeTree} from './helpers.js'
import {pipelineFixture, type PipelineFixture} from './pipeline-fixture.js'

const FLAGS: DeployFlags = {dryRun: false, force: false, noRestart: false, skipChecks: false, createTarget: false}
const lines = (text: string) => stripVTControlCharacters(text).split('\n')

/** Releases A (v2) and B (v3) deployed over the pre-hotctl tree (v1), each proven by the status service. */
async function twoReleases(): Promise<{f: PipelineFixture; a: string; b: string}> {
  const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}, status: true})
  const a = await deploy(f.ctx(), FLAGS)
  writeTree(f.src, {'app.py': 'v3 (longer)\n'})
  const b = await deploy(f.ctx(), FLAGS)
  expect([a.outcome, b.outcome]).toEqual(['deployed', 'deployed'])
  return {f, a: a.release!, b: b.release!}
}

describe('renderRollback', () => {
  it('rolled back: the release now live, the snapshot restored, and the command that undoes it', async () => {
    const {f, a, b} = await twoReleases()
    const r = await rollback(f.ctx(), {})
    expect(r.outcome).toBe('rolled-back')
    expect(lines(renderRollback(r))).toEqual([
      `Rolled back to release ${a} (snapshot ${b}). Undo: hotctl rollback --to ${b}`,
    ])
    // Without a valid --to for the replaced release, the undo snapshot is named instead.
    expect(lines(renderRollback({...r, undoWith: undefined}))).toEqual([
      `Rolled back to release ${a} (snapshot ${b}). The tree from before the rollback is kept as snapshot ${r.undo}.`,
    ])
  })

  it('--to the live release: already live, confirmed, nothing changed (capitalised, also for the tree from before hotctl)', async () => {
    const {f, b} = await twoReleases()
    const r = await rollback(f.ctx(), {to: b})
    expect(r.outcome).toBe('already-live')
    expect(lines(renderRollback(r))).toEqual([`Release ${b} is already live (confirmed); nothing changed.`])
    const initial = renderRollback({...r, release: null})
    expect(lines(initial)).toEqual(['The tree from before hotctl is already live (confirmed); nothing changed.'])
  })

  it('a failed rollback: the error, then the tree from before it put back; or that the target needs attention', async () => {
    const {f, a, b} = await twoReleases()
    // B's smoke now fails: rolling back to A, then --to B, restores A's tree again.
    expect((await rollback(f.ctx(), {to: a})).outcome).toBe('rolled-back')
    const ctx = f.ctx({smoke: [{name: 'no-v3', command: 'if grep -q v3 app.py; then echo "v3 is broken"; exit 1; fi'}]})
    const r = await rollback(ctx, {to: b})
    expect(r.outcome).toBe('restored')
    expect(lines(renderRollback(r))).toEqual([
      `Rollback to release ${b} failed: smoke failed: no-v3: \`if grep -q v3 app.py; then echo "v3 is broken"; exit 1; fi\` exited 1:`,
      'v3 is broken',
      `Put back the tree from before the rollback (${r.undo}).`,
    ])
    const unproven: RollbackResult = {...r, outcome: 'needs-attention', restore: {...r.restore!, ok: false}}
    expect(lines(renderRollback(unproven)).at(-1)).toBe('The target needs attention.')
  })
})
