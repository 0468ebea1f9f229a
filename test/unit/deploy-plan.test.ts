import {describe, expect, it} from 'vitest'
import {parseConfig} from '../../src/config/load.js'
import {MARKER_NAME} from '../../src/config/resolve.js'
import {planDeploy} from '../../src/plan/deploy-plan.js'
import {openTarget} from '../../src/target/open.js'
import type {ChangeSet} from '../../src/plan/changeset.js'

const FILE = '/srv/deploy/hotctl.config.json'
const cfg = (extra: Record<string, unknown> = {}) => parseConfig({target: '/opt/live', ...extra}, FILE, {})
const cs = (c: Partial<ChangeSet> = {}): ChangeSet => ({added: [], changed: [], deleted: [], ...c})
const ID = '20250601120000'

describe('planDeploy: requireRestart', () => {
  const config = cfg({
    reload: {trigger: {command: 'kill -HUP 1'}, requireRestart: ['**/*.so', 'requirements.txt', 'native/']},
  })

  it('**/*.so matches a root file and nested files; other patterns too; others do not', () => {
    const plan = planDeploy(
      config,
      cs({
        added: ['x.so', 'app/main.py'],
        changed: ['lib/deep/y.so', 'requirements.txt'],
        deleted: ['sub/native/z.bin'],
      }),
      ID,
      {},
      [],
    )
    expect(plan.needsRestart.sort()).toEqual(['lib/deep/y.so', 'requirements.txt', 'sub/native/z.bin', 'x.so'])
  })

  it('deleted restart-worthy files count too', () => {
    expect(planDeploy(config, cs({deleted: ['old.so']}), ID, {}, []).needsRestart).toEqual(['old.so'])
  })

  it('nothing matches: empty', () => {
    expect(planDeploy(config, cs({changed: ['app.py', 'x.sox', 'so']}), ID, {}, []).needsRestart).toEqual([])
  })

  it('no requireRestart patterns: never needs a restart', () => {
    expect(planDeploy(cfg(), cs({changed: ['x.so']}), ID, {}, []).needsRestart).toEqual([])
  })
})

describe('planDeploy: nothing to deploy', () => {
  it('an empty change set is nothing to deploy', () => {
    expect(planDeploy(cfg(), cs(), ID, {}, []).nothingToDeploy).toBe(true)
  })
  it('--force deploys anyway', () => {
    expect(planDeploy(cfg(), cs(), ID, {force: true}, []).nothingToDeploy).toBe(false)
  })
  it('any change means something to deploy', () => {
    expect(planDeploy(cfg(), cs({deleted: ['x']}), ID, {}, []).nothingToDeploy).toBe(false)
    expect(planDeploy(cfg(), cs({added: ['x']}), ID, {}, []).nothingToDeploy).toBe(false)
    expect(planDeploy(cfg(), cs({changed: ['x']}), ID, {}, []).nothingToDeploy).toBe(false)
  })
})

describe('the sync call a plan shows is the one the target runs', () => {
  const config = cfg({protect: ['/uploads', 'local.env'], exclude: ['*.log']})
  const target = openTarget(config, {warn: () => {}})
  const plan = planDeploy(config, cs({changed: ['a']}), ID, {}, target.describeSync(config.source))
  const argv = plan.rsyncArgv

  it('starts with the rsync binary hotctl runs and syncs source/ into target/', () => {
    expect(argv[0]).toBe('rsync')
    expect(argv.slice(-2)).toEqual(['/srv/deploy/', '/opt/live/'])
    expect(plan.source).toBe('/srv/deploy')
    expect(plan.target).toBe('/opt/live')
  })
  it('names HOTCTL_RSYNC when it is set (the binary the sync really runs)', () => {
    process.env.HOTCTL_RSYNC = '/opt/rsync-3.3/bin/rsync'
    try {
      expect(target.describeSync(config.source)[0]).toBe('/opt/rsync-3.3/bin/rsync')
    } finally {
      delete process.env.HOTCTL_RSYNC
    }
  })
  it('never --inplace, always --delay-updates', () => {
    expect(argv.some((a) => a.includes('inplace'))).toBe(false)
    expect(argv).toContain('--delay-updates')
  })
  it('excludes protected paths, configured excludes and the release marker', () => {
    expect(argv).toContain('--exclude=/uploads')
    expect(argv).toContain('--exclude=local.env')
    expect(argv).toContain('--exclude=*.log')
    expect(argv).toContain(`--exclude=${MARKER_NAME}`)
  })
  it('default excludes are passed when none are configured', () => {
    const a = openTarget(cfg(), {warn: () => {}}).describeSync('/srv/deploy')
    for (const p of ['.git', '__pycache__', '*.pyc', '.venv', 'node_modules']) expect(a).toContain(`--exclude=${p}`)
  })
  it('is not a dry run', () => {
    expect(argv).not.toContain('--dry-run')
  })
})
