import {describe, expect, it} from 'vitest'
import {deploy, type DeployFlags} from '../../src/pipeline/deploy.js'
import {pruneBackups} from '../../src/pipeline/prune.js'
import {formatBytes} from '../../src/ui/format.js'
import {renderPrune} from '../../src/ui/prune-report.js'
import {writeTree} from './helpers.js'
import {pipelineFixture} from './pipeline-fixture.js'

const FLAGS: DeployFlags = {dryRun: false, force: false, noRestart: false, skipChecks: false, createTarget: false}

describe('renderPrune', () => {
  it('the backups removed, the bytes freed and how many were kept; nothing removed says 0', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}})
    const a = (await deploy(f.ctx(), FLAGS)).release!
    writeTree(f.src, {'app.py': 'v3 (longer)\n'})
    const b = (await deploy(f.ctx(), FLAGS)).release!
    writeTree(f.src, {'app.py': 'v4 (longer still)\n'})
    await deploy(f.ctx(), FLAGS)
    const r = await pruneBackups(f.ctx(), 1)
    expect(r.removed).toEqual([a, b])
    expect(r.freedBytes).toBeGreaterThan(0)
    expect(renderPrune(r)).toBe(
      `Removed 2 backup(s): ${a}, ${b}; freed ${formatBytes(r.freedBytes)}; kept the newest 1.`,
    )
    const again = await pruneBackups(f.ctx(), 5)
    expect(renderPrune(again)).toBe('Removed 0 backup(s); freed 0 B; kept the newest 5.')
  })
})
