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
const TOKEN = 'tok-3f9a1c77e2'
const LITERAL = 'literal-key-5521'

describe('--verbose', {timeout: 120_000}, () => {
  it('shows each command run, the rsync argv and each HTTP request with its answer, secrets masked', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live, {token: TOKEN})
    const base = serviceConfig(svc) as {reload: Record<string, unknown>; smoke: unknown[]}
    ws.writeConfig({
      ...base,
      checks: {syntax: {argv: ['python3', '-B', '-c', 'import sys; sys.exit(0)']}},
      reload: {
        ...base.reload,
        trigger: {
          url: svc.url('/api/v1/hot-reload/check'),
          method: 'POST',
          headers: {Authorization: 'Bearer ${HOTCTL_TOKEN}', 'X-Api-Key': LITERAL},
        },
      },
      smoke: [...base.smoke, {name: 'echo', command: 'echo smoke-ran'}],
    })
    ws.setVersion('v2')
    const env = {HOTCTL_TOKEN: TOKEN}
    const r = await runCli(['deploy', '--verbose'], {cwd: ws.src, env})
    expect(r.exitCode, why(r)).toBe(0)
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('[verbose] '))
    const has = (re: RegExp) =>
      expect(
        lines.some((l) => re.test(l)),
        `${re}\n${lines.join('\n')}`,
      ).toBe(true)
    has(/^\[verbose\] run: python3 -B -c 'import sys; sys\.exit\(0\)' \(in .*\/src\)$/)
    has(/^\[verbose\] run: python3 -B -c import sys; sys\.exit\(0\) → exit 0$/)
    has(/^\[verbose\] rsync: rsync --from0 --files-from=- .* -- .*\/src\/ .*\/live\/ \(2 paths on stdin\)$/)
    has(
      /^\[verbose\] HTTP POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/hot-reload\/check \{Authorization: \*\*\*, X-Api-Key: \*\*\*\}$/,
    )
    has(/^\[verbose\] HTTP POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/hot-reload\/check → 200 /)
    has(/^\[verbose\] HTTP GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/hot-reload\/status → 200 /)
    has(
      /^\[verbose\] HTTP POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/calc \{content-type: application\/json\} \(\d+ byte body\)$/,
    )
    has(/^\[verbose\] run: sh -c 'echo smoke-ran' \(in .*\/live\)$/)
    expect(r.stderr).not.toContain(TOKEN)
    expect(r.stderr).not.toContain(LITERAL)
    expect(r.stdout).not.toContain('[verbose]')

    // Off by default, and --json keeps stdout one JSON object.
    ws.setVersion('v3')
    const quiet = await runCli(['deploy'], {cwd: ws.src, env})
    expect(quiet.exitCode, why(quiet)).toBe(0)
    expect(quiet.stderr + quiet.stdout).not.toContain('[verbose]')
    ws.setVersion('v4')
    const json = await runCli(['deploy', '--json', '--verbose'], {cwd: ws.src, env})
    expect(json.exitCode, why(json)).toBe(0)
    expect(json.json?.outcome).toBe('deployed')
    expect(json.stderr).toContain('[verbose] rsync: ')

    // Every command takes it.
    const st = await runCli(['status', '--verbose'], {cwd: ws.src, env})
    expect(st.stderr).toMatch(/\[verbose\] HTTP GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/hot-reload\/status → 200/)
  })
})
