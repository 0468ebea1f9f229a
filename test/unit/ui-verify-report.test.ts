import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {describe, expect, it} from 'vitest'
import {deploy, type DeployFlags} from '../../src/pipeline/deploy.js'
import {verifyBackups, type VerifyBackupsResult} from '../../src/pipeline/verify-backups.js'
import {ObjectStore} from '../../src/store/objects.js'
import {renderVerify} from '../../src/ui/verify-report.js'
import {writeTree} from './helpers.js'
import {pipelineFixture} from './pipeline-fixture.js'

const FLAGS: DeployFlags = {dryRun: false, force: false, noRestart: false, skipChecks: false, createTarget: false}
const lines = (text: string) => stripVTControlCharacters(text).split('\n')
const sha = (s: string) => crypto.createHash('sha256').update(s).digest('hex')

describe('renderVerify', () => {
  it('clean: what was hashed, every backup OK, no damage; a flipped byte names the backup, the file and the object', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'the first tree\n'}})
    const a = (await deploy(f.ctx(), FLAGS)).release!
    writeTree(f.src, {'app.py': 'v3 (longer)\n'})
    const b = (await deploy(f.ctx(), FLAGS)).release!
    const ctx = f.ctx()
    const clean = await verifyBackups(ctx)
    expect(clean.exitCode).toBe(0)
    expect(lines(renderVerify(clean))).toEqual([
      `Checked 2 backup(s): 2 directory listings and 3 objects, ${clean.checked.bytes} B hashed.`,
      `OK: ${a}, ${b}`,
      'No damage found.',
    ])
    expect(clean.checked.bytes).toBeLessThan(1024)

    // Backup a holds the first tree: damage the object holding its app.py.
    const object = new ObjectStore(path.join(ctx.config.stateDir, 'objects')).pathOf(sha('the first tree\n'))
    fs.chmodSync(object, 0o644)
    fs.writeFileSync(object, 'the FIRST tree\n')
    const damaged = await verifyBackups(ctx)
    expect(damaged.exitCode).toBe(1)
    expect(lines(renderVerify(damaged))).toEqual([
      `Checked 2 backup(s): 2 directory listings and 3 objects, ${damaged.checked.bytes} B hashed.`,
      `DAMAGED backup ${a}:`,
      `  ${damaged.damage[0]!.message}`,
      `OK: ${b}`,
      '1 problem(s): a restore of a damaged backup is refused; roll back --to one that is OK.',
    ])
    expect(damaged.damage[0]!.message).toContain('app.py')
    expect(damaged.damage[0]!.message).toContain(sha('the first tree\n'))
  })

  it('damage to the store itself, and each kind of info, one line each', () => {
    const r: VerifyBackupsResult = {
      exitCode: 1,
      target: '/srv/app',
      backup: null,
      backups: [{id: '20250101000000', ok: true, files: 3, damage: 0}],
      damage: [
        {
          what: 'index',
          problem: 'missing',
          hash: 'ab12',
          message: 'the store index names object ab12, which is missing',
        },
      ],
      checked: {backups: 1, chunks: 2, objects: 3, bytes: 3 * 1024 * 1024},
      info: {
        orphanObjects: 2,
        orphanBytes: 2048,
        tempFiles: ['tmp/x.1'],
        incompleteBackups: ['20250102000000'],
        strayFiles: ['README'],
      },
    }
    expect(lines(renderVerify(r))).toEqual([
      'Checked 1 backup(s): 2 directory listings and 3 objects, 3.0 MiB hashed.',
      'DAMAGED store: the store index names object ab12, which is missing',
      'OK: 20250101000000',
      'Info: 2 object(s) no backup uses (2.0 KiB).',
      'Info: 1 temp file(s) in objects/ left by interrupted writes (a prune that drops a backup removes them).',
      'Info: incomplete backup metadata (never restorable): 20250102000000.',
      'Info: files in objects/ that are not objects: README.',
      '1 problem(s): a restore of a damaged backup is refused; roll back --to one that is OK.',
    ])
  })
})
