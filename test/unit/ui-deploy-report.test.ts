import {stripVTControlCharacters} from 'node:util'
import chalk from 'chalk'
import {describe, expect, it} from 'vitest'
import {deploy, type DeployFlags, type DeployResult} from '../../src/pipeline/deploy.js'
import {emptyProof} from '../../src/pipeline/prove-live.js'
import type {RestoreOutcome} from '../../src/pipeline/restore.js'
import {renderDeploy} from '../../src/ui/deploy-report.js'
import {writeTree} from './helpers.js'
import {pipelineFixture} from './pipeline-fixture.js'

const FLAGS: DeployFlags = {dryRun: false, force: false, noRestart: false, skipChecks: false, createTarget: false}
const lines = (text: string) => stripVTControlCharacters(text).split('\n')

describe('renderDeploy', () => {
  it('a dry run: the plan steps, the change counts, every path marked + ~ -, what needs a restart, the rsync argv', async () => {
    const f = await pipelineFixture({
      src: {'app.py': 'v2\n', 'new.py': 'n\n', 'lib/native.so': 'x', 'a\nb.py': 'odd\n'},
      live: {'app.py': 'v1\n', 'old.py': 'o\n'},
    })
    const ctx = f.ctx({reload: {trigger: {command: 'true'}, requireRestart: ['**/*.so']}})
    const r = await deploy(ctx, {...FLAGS, dryRun: true})
    expect(r.outcome).toBe('dry-run')
    const id = r.release!
    expect(lines(renderDeploy(r, ctx.config))).toEqual([
      `Plan for release ${id} (dry run, nothing changed):`,
      '  - preflight: rsync, source, target, state dir, status URLs',
      '  - lock the target',
      "  - restore an interrupted operation's backup first, if the journal holds one",
      '  - plan: the changes, by content',
      '  - back up the target',
      '  - sync the changed paths into the target (rsync, in place, no restart)',
      '  - verify the synced content and write the release marker',
      '  - trigger hot reload',
      '  - prune backups beyond 10',
      'Changes: 4 added, 1 changed, 1 deleted',
      '  + "a\\nb.py"',
      '  + lib',
      '  + lib/native.so',
      '  + new.py',
      '  ~ app.py',
      '  - old.py',
      'Needs a restart: lib/native.so',
      `rsync: ${r.plan!.rsyncArgv.join(' ')}`,
    ])
    expect(r.plan!.rsyncArgv.join(' ')).toMatch(/^rsync .* -- \S+\/src\/ \S+\/live\/$/)
  })

  it('deployed: release, counts and time; the release every service reports; the backup and how to undo', async () => {
    const f = await pipelineFixture({
      src: {'app.py': 'v2\n'},
      live: {'app.py': 'v1\n', 'keep.txt': 'k\n'},
      status: true,
    })
    const ctx = f.ctx()
    const r = await deploy(ctx, FLAGS)
    expect(r.outcome).toBe('deployed')
    expect(r.proof?.confirmed).toBe(r.release)
    expect(lines(renderDeploy({...r, durationMs: 2345}, ctx.config))).toEqual([
      `Deployed release ${r.release} (0 added, 1 changed, 1 deleted) in 2.3s.`,
      `Live: every service reports ${r.release}.`,
      `Backup ${r.release}: 2 files, ${r.backup!.added} B added. Undo: hotctl rollback`,
    ])
    expect(r.backup).toMatchObject({id: r.release, files: 2})
    expect(r.backup!.added).toBeLessThan(1024)
  })

  it('deployed without a status URL: no "Live" line; a restart is said', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}})
    const ctx = f.ctx()
    const r = await deploy(ctx, FLAGS)
    expect(r.outcome).toBe('deployed')
    expect(lines(renderDeploy(r, ctx.config))).toHaveLength(2)
    expect(lines(renderDeploy(r, ctx.config))[1]).toMatch(
      /^Backup \d{14}: 1 files, \d+ B added\. Undo: hotctl rollback$/,
    )
    const restarted = {...r, proof: {...r.proof!, confirmed: r.release!, restarted: true}}
    expect(lines(renderDeploy(restarted, ctx.config))[1]).toBe(
      `Live: every service reports ${r.release} (after restart).`,
    )
  })

  it('nothing to deploy names the target and the source', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v1\n'}, live: {'app.py': 'v1\n'}})
    const ctx = f.ctx()
    await deploy(ctx, FLAGS)
    const r = await deploy(ctx, FLAGS)
    expect(r.outcome).toBe('nothing-to-deploy')
    expect(lines(renderDeploy(r, ctx.config))).toEqual([
      `Nothing to deploy: ${f.live} already matches ${f.src} (--force deploys anyway).`,
    ])
  })

  it('a failed smoke: the error, and the release restored and proven; a failed restore says the target needs attention', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}, status: true})
    const first = await deploy(f.ctx(), FLAGS)
    expect(first.outcome).toBe('deployed')
    // The same target, now with a smoke check that fails on v3.
    const ctx = f.ctx({
      smoke: [{name: 'v3-broken', command: 'if grep -q v3 app.py; then echo "v3 is broken"; exit 1; fi'}],
    })
    writeTree(f.src, {'app.py': 'v3 (longer)\n'})
    const r = await deploy(ctx, FLAGS)
    expect(r.outcome).toBe('restored')
    expect(lines(renderDeploy(r, ctx.config))).toEqual([
      `Deploy ${r.release} failed: smoke failed: v3-broken: \`if grep -q v3 app.py; then echo "v3 is broken"; exit 1; fi\` exited 1:`,
      'v3 is broken',
      `Restored backup ${r.release} and proved release ${first.release} live again.`,
    ])

    const error = 'release X is not live after 5000 ms'
    const unproven: DeployResult = {...r, outcome: 'needs-attention', restore: {...r.restore!, ok: false, error}}
    expect(lines(renderDeploy(unproven, ctx.config)).at(-1)).toBe(
      `Restore of ${r.release} FAILED: ${error}. The target needs attention.`,
    )
    const initial = {...r, restore: {...r.restore!, release: null}}
    expect(lines(renderDeploy(initial, ctx.config)).at(-1)).toBe(
      `Restored backup ${r.release} and proved the previous tree live again.`,
    )
  })

  it('colours: success green, a failure red, a restore yellow', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}})
    const ctx = f.ctx()
    const r = await deploy(ctx, FLAGS)
    const level = chalk.level
    chalk.level = 1
    try {
      const [first] = renderDeploy(r, ctx.config).split('\n')
      expect(first).toBe(chalk.green(stripVTControlCharacters(first!)))
      expect(first!.startsWith('\u001b[32mDeployed release')).toBe(true)
      const proof = emptyProof()
      const restore: RestoreOutcome = {
        backup: 'b',
        release: 'r',
        ok: true,
        written: 1,
        removed: 0,
        differences: [],
        proof,
        interrupted: false,
      }
      const failed: DeployResult = {...r, outcome: 'restored', error: 'boom', restore}
      const restored = chalk.yellow('Restored backup b and proved release r live again.')
      expect(renderDeploy(failed, ctx.config)).toBe(`${chalk.red(`Deploy ${r.release} failed: boom`)}\n${restored}`)
    } finally {
      chalk.level = level
    }
  })
})
