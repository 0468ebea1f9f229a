import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {parseConfig} from '../../src/config/load.js'
import {loadTargetKinds, openTarget} from '../../src/target/open.js'
import {tmpDir} from './helpers.js'

const warn = () => {}

describe('openTarget', () => {
  it('a local target needs nothing loaded first; a host needs loadTargetKinds (the ssh code is loaded only then)', async () => {
    const dir = tmpDir()
    const file = path.join(dir, 'src', 'hotctl.config.json')
    const local = parseConfig({target: '../live'}, file)
    expect(openTarget(local, {warn}).constructor.name).toBe('LocalTarget')
    await loadTargetKinds(local)
    const remote = parseConfig({target: 'deploy@example.invalid:/srv/app'}, file)
    expect(() => openTarget(remote, {warn})).toThrow(/before loadTargetKinds/)
    await loadTargetKinds(remote)
    expect(openTarget(remote, {warn}).constructor.name).toBe('SshTarget')
  })
})
