import os from 'node:os'
import {describe, expect, it} from 'vitest'
import type {SmokeSpec} from '../../src/config/schema.js'
import {triggerReload} from '../../src/service/reload.js'
import {runCommand, type ServiceRunner} from '../../src/service/run-command.js'
import {runSmoke} from '../../src/service/smoke.js'

const run: ServiceRunner = (cmd, o) => runCommand(cmd, {...o, cwd: os.tmpdir()})
const missing = {argv: ['no-such-binary-hotctl', '--x']}

describe('a command whose binary does not exist says so (never "exited undefined")', () => {
  it('runCommand: notRun names it; the log file is only made when there is output', async () => {
    const r = await runCommand(missing, {cwd: os.tmpdir(), logFile: `${os.tmpdir()}/hotctl-never-${process.pid}.log`})
    expect(r).toMatchObject({ok: false, notRun: 'not found: no-such-binary-hotctl (not on PATH)', outputChars: 0})
    expect(r.log).toBeUndefined()
  })

  it('a smoke command and a reload trigger command', async () => {
    const spec = {name: 'suite', command: missing, timeout: '5s', retries: 0} as unknown as SmokeSpec
    const s = await runSmoke(spec, {run, env: {}})
    expect(s.detail).toContain('not found: no-such-binary-hotctl (not on PATH)')
    expect(s.detail).not.toContain('undefined')
    const svc = {name: 'web', trigger: {command: missing}} as never
    await expect(triggerReload(svc, {run, env: {}})).rejects.toThrow(/not found: no-such-binary-hotctl \(not on PATH\)/)
  })
})
