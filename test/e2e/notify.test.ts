import fs from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
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
const TOKEN = 'hook-token-8d2e41'
const LITERAL = 'literal-hook-secret-77'

interface Received {
  path: string
  headers: http.IncomingHttpHeaders
  body: any
}

/** A real webhook receiver: records every POST; /broken answers 500. */
async function receiver(): Promise<{base: string; got: Received[]; close(): Promise<void>}> {
  const got: Received[] = []
  const server = http.createServer((req, res) => {
    let data = ''
    req.on('data', (d) => (data += String(d)))
    req.on('end', () => {
      got.push({path: req.url ?? '', headers: req.headers, body: JSON.parse(data)})
      res.writeHead(req.url === '/broken' ? 500 : 200).end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const {port} = server.address() as AddressInfo
  return {base: `http://127.0.0.1:${port}`, got, close: () => new Promise((r) => server.close(() => r()))}
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = http.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const {port} = s.address() as AddressInfo
  await new Promise((r) => s.close(r))
  return port
}

describe('notify: webhooks', {timeout: 120_000}, () => {
  it('posts the outcome with release, previous release, exit code, counts and a Slack text; failing webhooks never change it', async () => {
    const hook = await receiver()
    try {
      const ws = makeWorkspace()
      const svc = await startService(ws.live)
      const dead = await closedPort()
      const notify = [
        {url: `${hook.base}/all`, headers: {Authorization: 'Bearer ${HOOK_TOKEN}', 'X-Literal': LITERAL}},
        {url: `${hook.base}/failures`, on: ['failure', 'restored', 'attention']},
        {url: `${hook.base}/broken`, on: ['success']},
        {url: `http://127.0.0.1:${dead}/refused`, on: ['success'], timeout: '2s'},
      ]
      ws.writeConfig({...serviceConfig(svc), notify})
      const env = {HOOK_TOKEN: TOKEN}

      ws.setVersion('v2')
      const d1 = await runCli(['deploy', '--json'], {cwd: ws.src, env})
      expect(d1.exitCode, why(d1)).toBe(0) // two of the webhooks failed: the deploy still succeeded
      expect(d1.json.outcome).toBe('deployed')
      const release = d1.json.release
      const all = hook.got.filter((g) => g.path === '/all')
      expect(all).toHaveLength(1)
      expect(all[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`)
      expect(all[0]!.headers['x-literal']).toBe(LITERAL)
      expect(all[0]!.headers['content-type']).toBe('application/json')
      expect(all[0]!.body).toMatchObject({
        event: 'success',
        command: 'deploy',
        outcome: 'deployed',
        exitCode: 0,
        release,
        previousRelease: null,
        target: ws.live,
        hosts: [expect.any(String)],
        error: null,
        changes: {added: 1, changed: 1, deleted: 0},
      })
      expect(all[0]!.body.durationMs).toBeGreaterThan(0)
      expect(all[0]!.body.text).toMatch(
        new RegExp(
          `^hotctl deploy of release ${release} to .*:${ws.live} succeeded in (\\d+ms|\\d+\\.\\ds), exit 0 \\(1 added, 1 changed, 0 deleted\\)$`,
        ),
      )
      expect(hook.got.filter((g) => g.path === '/failures')).toHaveLength(0)
      expect(hook.got.filter((g) => g.path === '/broken').length).toBeGreaterThan(0)
      expect(d1.json.notifications).toEqual([
        {url: hook.base, ok: true, status: 200},
        {url: hook.base, ok: false, status: 500, error: 'HTTP 500'},
        {url: `http://127.0.0.1:${dead}`, ok: false, error: expect.stringMatching(/ECONNREFUSED|refused/)},
      ])
      expect(d1.stderr).toContain(`hotctl: warning: notify ${hook.base} failed (HTTP 500); the deploy's outcome stands`)
      expect(d1.stderr).toContain(`hotctl: warning: notify http://127.0.0.1:${dead} failed (`)
      // Header values are secrets: never in output or the journal.
      const journal = fs.readFileSync(path.join(ws.stateDir, 'journal.jsonl'), 'utf8')
      for (const text of [d1.stdout, d1.stderr, journal]) {
        expect(text).not.toContain(TOKEN)
        expect(text).not.toContain(LITERAL)
      }

      // A deploy whose smoke fails is restored: `restored` goes to the hooks that asked for it.
      hook.got.length = 0
      ws.setVersion('v3', {calcBroken: true})
      const d2 = await runCli(['deploy', '--skip-checks'], {cwd: ws.src, env})
      expect(d2.exitCode, why(d2)).toBe(3)
      expect(hook.got.map((g) => g.path).sort()).toEqual(['/all', '/failures'])
      const restored = hook.got[0]!.body
      expect(restored).toMatchObject({event: 'restored', exitCode: 3, outcome: 'restored', previousRelease: release})
      expect(restored.error).toMatch(/smoke/i)
      expect(restored.text).toContain('failed; the previous release was restored and is live')

      // Failing checks throw before the operation: still a `failure` notification, exit code kept.
      hook.got.length = 0
      ws.writeConfig({...serviceConfig(svc), checks: {lint: 'exit 1'}, notify})
      const d3 = await runCli(['deploy', '--verbose'], {cwd: ws.src, env})
      expect(d3.exitCode, why(d3)).toBe(1)
      // A webhook's URL is a secret too (a Slack webhook's path is its credential).
      expect(d3.stderr).toMatch(/\[verbose\] HTTP POST \*\*\* \{content-type: application\/json, Authorization: \*\*\*/)
      expect(d3.stderr).not.toContain(`${hook.base}/all`)
      expect(hook.got.map((g) => [g.path, g.body.event, g.body.exitCode]).sort()).toEqual([
        ['/all', 'failure', 1],
        ['/failures', 'failure', 1],
      ])
      expect(hook.got[0]!.body.error).toContain('checks failed: lint')

      // A rollback is told too.
      hook.got.length = 0
      const rb = await runCli(['rollback'], {cwd: ws.src, env})
      expect(rb.exitCode, why(rb)).toBe(0)
      const told = hook.got.find((g) => g.path === '/all')!.body
      expect(told).toMatchObject({event: 'success', command: 'rollback', release: null, previousRelease: release})
      expect(told.text).toMatch(/^hotctl rollback to the initial tree to .* succeeded in/)
    } finally {
      await hook.close()
    }
  })

  it('rejects a webhook with an unknown event, naming the field', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', notify: [{url: 'http://127.0.0.1:9/x', on: ['sucess']}]})
    const r = await runCli(['check'], {cwd: ws.src})
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('notify.0.on.0')
  })
})
