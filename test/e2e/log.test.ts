import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  makeWorkspace,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startService,
  stopAllServices,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

describe('hotctl log', {timeout: 120_000}, () => {
  it('lists every operation newest first: time, user, host, command, duration, result, release, file counts, error', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const d1 = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d1.exitCode, why(d1)).toBe(0)
    ws.setVersion('v3', {calcBroken: true})
    const d2 = await runCli(['deploy', '--skip-checks', '--json'], {cwd: ws.src})
    expect(d2.exitCode, why(d2)).toBe(3)
    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)

    const log = await runCli(['log', '--json'], {cwd: ws.src})
    expect(log.exitCode, why(log)).toBe(0)
    const ops = log.json.operations
    expect(ops.map((o: {op: string; result: string}) => `${o.op} ${o.result}`)).toEqual([
      'rollback ok',
      'deploy restored',
      'deploy ok',
    ])
    const [rollback, failed, ok] = ops
    expect(ok.release).toBe(d1.json.release)
    expect(ok.command).toBe('hotctl deploy --json')
    expect(ok.user).toBeTruthy()
    expect(ok.host).toBeTruthy()
    expect(ok.durationMs).toBeGreaterThan(0)
    expect(ok.exitCode).toBe(0)
    // v2 changes handlers.py and adds the config file (the live tree was installed by hand without it).
    expect(ok.files).toEqual({added: 1, changed: 1, deleted: 0})
    expect(ok.error).toBeNull()
    expect(failed.release).toBe(d2.json.release)
    expect(failed.exitCode).toBe(3)
    expect(failed.command).toBe('hotctl deploy --skip-checks --json')
    expect(failed.files).toEqual({added: 0, changed: 1, deleted: 0})
    expect(failed.error).toMatch(/smoke/i)
    expect(rollback.release).toBeNull() // back to the tree from before hotctl
    expect(rollback.from).toBe(d1.json.release)
    expect(Date.parse(rollback.time)).toBeGreaterThanOrEqual(Date.parse(failed.time))

    const human = await runCli(['log'], {cwd: ws.src})
    expect(human.exitCode, why(human)).toBe(0)
    const lines = human.stdout.split('\n')
    expect(lines[0]).toMatch(/^STARTED\s+OP\s+RESULT\s+TIME\s+RELEASE\s+FILES \+\/~\/-\s+BY\s+COMMAND$/)
    expect(lines[1]).toMatch(/ rollback +ok .* initial .*hotctl rollback --json$/)
    expect(lines[2]).toContain(`deploy    restored  `)
    expect(lines[2]).toContain(`${d2.json.release}  +0 ~1 -0`)
    expect(lines[3]).toMatch(/^\s+error: .*smoke/i)
    expect(human.stdout).toContain(`${d1.json.release}  +1 ~1 -0`)

    const one = await runCli(['log', '-n', '1', '--json'], {cwd: ws.src})
    expect(one.json.operations.map((o: {op: string}) => o.op)).toEqual(['rollback'])
    expect(one.json.total).toBe(3)

    const future = await runCli(['log', '--since', '2999-01-01', '--json'], {cwd: ws.src})
    expect(future.json.operations).toEqual([])
    const recent = await runCli(['log', '--since', '1h', '--json'], {cwd: ws.src})
    expect(recent.json.operations).toHaveLength(3)

    const bad = await runCli(['log', '--since', 'yesterday'], {cwd: ws.src})
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toContain('--since: "yesterday" is neither a time nor a duration')
  })
})
