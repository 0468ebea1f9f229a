import {stripVTControlCharacters} from 'node:util'
import {describe, expect, it} from 'vitest'
import {idToDate} from '../../src/ids.js'
import {type BackupsListing, listBackups} from '../../src/pipeline/backups.js'
import {deploy, type DeployFlags} from '../../src/pipeline/deploy.js'
import type {SnapshotInfo} from '../../src/pipeline/releases.js'
import {renderBackups} from '../../src/ui/backups-report.js'
import {writeTree} from './helpers.js'
import {pipelineFixture} from './pipeline-fixture.js'

const FLAGS: DeployFlags = {dryRun: false, force: false, noRestart: false, skipChecks: false, createTarget: false}
const lines = (text: string) => stripVTControlCharacters(text).split('\n')

const snapshot = (s: Partial<SnapshotInfo> & Pick<SnapshotInfo, 'id' | 'release'>): SnapshotInfo => ({
  time: `${s.id.slice(0, 4)}-${s.id.slice(4, 6)}-${s.id.slice(6, 8)}T${s.id.slice(8, 10)}:${s.id.slice(10, 12)}:${s.id.slice(12, 14)}.123Z`,
  reason: 'deploy',
  gitSha: null,
  files: 120,
  bytes: 2_500_000,
  added: 4096,
  to: null,
  next: false,
  ...s,
})

describe('renderBackups', () => {
  it('a table newest first, columns padded to their widest cell; then live, where rollback goes, the --to values', () => {
    const listing: BackupsListing = {
      exitCode: 0,
      target: '/srv/app',
      liveRelease: '20250103000000',
      previous: {to: '20250102000000', release: '20250102000000', snapshot: '20250103000000'},
      targets: [
        {
          to: '20250102000000',
          release: '20250102000000',
          snapshot: '20250103000000',
          time: '2025-01-03T00:00:00.123Z',
          gitSha: null,
        },
        {to: 'initial', release: null, snapshot: '20250102000000', time: '2025-01-02T00:00:00.123Z', gitSha: null},
      ],
      neverLive: [],
      backups: [
        snapshot({id: '20250102000000', release: null, to: 'initial', added: 2_500_000}),
        snapshot({
          id: '20250103000000',
          release: '20250102000000',
          gitSha: 'abcdef0123456789',
          to: '20250102000000',
          next: true,
        }),
        snapshot({
          id: '20250104000000',
          release: '20250103000000',
          reason: 'rollback',
          note: 'holds the live release',
          bytes: 900,
        }),
      ],
    }
    const now = idToDate('20250104000000').getTime() + 90_000
    expect(lines(renderBackups(listing, now))).toEqual([
      'SNAPSHOT        TAKEN                         BY        RELEASE IT HOLDS  GIT         FILES  SIZE     ADDED    ROLLBACK',
      '20250104000000  2025-01-04 00:00:00 (2m ago)  rollback  20250103000000                120    900 B    4.0 KiB  ' +
        'holds the live release',
      '20250103000000  2025-01-03 00:00:00 (1d ago)  deploy    20250102000000    abcdef0123  120    2.4 MiB  4.0 KiB  ' +
        '--to 20250102000000 (or plain `hotctl rollback`)',
      '20250102000000  2025-01-02 00:00:00 (2d ago)  deploy    before hotctl                 120    2.4 MiB  2.4 MiB  --to initial',
      '',
      'Live       release 20250103000000',
      'rollback   goes to release 20250102000000 (snapshot 20250103000000)',
      '--to       20250102000000, initial',
    ])
  })

  it('from the pipeline: a restored deploy is never live and listed as no target; plain rollback refused says why', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}, status: true})
    const a = (await deploy(f.ctx(), FLAGS)).release!
    writeTree(f.src, {'app.py': 'v3 (longer)\n'})
    const b = await deploy(f.ctx({smoke: [{name: 'no-v3', command: 'if grep -q v3 app.py; then exit 1; fi'}]}), FLAGS)
    expect(b.outcome).toBe('restored')
    const listing = await listBackups(f.ctx())
    const text = lines(renderBackups(listing, idToDate(b.release!).getTime() + 5000))
    expect(text[0]).toMatch(/^SNAPSHOT {8}TAKEN +BY +RELEASE IT HOLDS +GIT +FILES +SIZE +ADDED +ROLLBACK$/)
    const taken = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+s ago\)`
    expect(text[1]).toMatch(
      new RegExp(String.raw`^${b.release}  ${taken}  deploy +${a} +2  +\d+ B  +\d+ B  +holds the live release$`),
    )
    expect(text[1]).toContain('(5s ago)')
    const plain = String.raw`--to initial \(or plain .hotctl rollback.\)`
    expect(text[2]).toMatch(
      new RegExp(String.raw`^${a}  ${taken}  deploy +before hotctl +1  +\d+ B  +\d+ B  +${plain}$`),
    )
    const restoredAt = listing.neverLive[0]!.at.slice(0, 19).replace('T', ' ')
    expect(text.slice(3)).toEqual([
      '',
      `Live       release ${a}`,
      `rollback   goes to the tree from before hotctl (snapshot ${a})`,
      '--to       initial',
      `not a target: release ${b.release} was never live: its deploy was restored at ${restoredAt} ` +
        `(smoke failed: no-v3: \`if grep -q v3 app.py; then exit 1; fi\` exited 1:)`,
    ])
    const error = 'the live tree has no release marker, so there is no earlier release to go back to'
    const refused = {...listing, previous: {error}, targets: []}
    expect(lines(renderBackups(refused)).slice(-3, -1)).toEqual([
      'rollback   refused: the live tree has no release marker, so there is no earlier release to go back to',
      '--to       no targets',
    ])
  })

  it('only the newest five never-live releases are listed, the rest counted; no backups at all says so', () => {
    const listing: BackupsListing = {
      exitCode: 0,
      target: '/srv/app',
      liveRelease: null,
      previous: {error: 'x'},
      targets: [],
      neverLive: Array.from({length: 7}, (_, i) => ({
        release: `2025010${i + 1}000000`,
        result: 'failed',
        at: `2025-01-0${i + 1}T00:00:09.000Z`,
      })),
      backups: [snapshot({id: '20250101000000', release: null})],
    }
    const text = lines(renderBackups(listing, idToDate('20250108000000').getTime()))
    expect(text.slice(-6)).toEqual([
      'not a target: release 20250107000000 was never live: its deploy failed at 2025-01-07 00:00:09, before changing the target',
      'not a target: release 20250106000000 was never live: its deploy failed at 2025-01-06 00:00:09, before changing the target',
      'not a target: release 20250105000000 was never live: its deploy failed at 2025-01-05 00:00:09, before changing the target',
      'not a target: release 20250104000000 was never live: its deploy failed at 2025-01-04 00:00:09, before changing the target',
      'not a target: release 20250103000000 was never live: its deploy failed at 2025-01-03 00:00:09, before changing the target',
      '(2 older releases that were never live: see --json)',
    ])
    expect(renderBackups({...listing, backups: []})).toBe(
      'No backups yet (each deploy takes one before it changes the target).',
    )
  })
})
