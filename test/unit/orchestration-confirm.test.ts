import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {EXIT} from '../../src/errors.js'
import {deploy, type DeployFlags} from '../../src/pipeline/deploy.js'
import {DEPLOY_FLAGS, ended, FakeTarget, fakeConfig, fakeContext, journalLines} from './fake-target.js'

/**
 * The confirm step against a real (tiny, local) status endpoint: the service reports the release it
 * has loaded, which changes only when the fake's reload trigger or restart command loads the
 * target's marker. Covers confirm, the restart fallback and --no-restart.
 */

const R0 = '20240101000000'
const LIVE = {'app.py': 'v1'}
const SOURCE = {'app.py': 'v2'}

/** The release the "service" runs; the status endpoint reports it. */
let loaded: string | null = R0
let server: http.Server
let statusUrl = ''

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({version: loaded}))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  statusUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

/** `hot`: the trigger loads the tree's release; otherwise only the restart command does. */
function setup(opts: {hot: boolean; restart?: boolean}) {
  loaded = R0
  const fake = new FakeTarget({source: SOURCE})
  fake.setLive(LIVE, R0)
  fake.onCommand = ({fake: f, command}) => {
    if (command === 'reload-app' && opts.hot) loaded = f.marker
    if (command === 'restart-app') loaded = f.marker
  }
  const status = {
    url: statusUrl,
    method: 'GET',
    headers: {},
    timeout: '2s',
    retries: 0,
    version: 'version',
    state: 'state',
    failStates: ['rejected'],
    restartStates: ['restart_required'],
    lastError: 'last_error',
    settle: '100ms',
    grace: '5s',
    retrigger: '10s',
    probes: 4,
  }
  const config = fakeConfig({
    services: [{name: 'app', trigger: {command: {argv: ['reload-app']}}, status}],
    reloadTimeoutMs: 300,
    ...(opts.restart ? {restart: {argv: ['restart-app']}} : {}),
  })
  const {ctx} = fakeContext(fake, config)
  return {fake, run: (flags: Partial<DeployFlags> = {}) => ended(deploy(ctx, {...DEPLOY_FLAGS, ...flags}))}
}

const FORWARD = ['deploy start', 'deploy phase backup', 'deploy phase sync', 'deploy child 4242', 'deploy phase marker']
FORWARD.push('deploy phase reload', 'deploy phase confirm')
const RESTORE = ['deploy phase restore', 'deploy phase restore-reload', 'deploy phase restore-confirm']

describe('deploy on the fake target with a status endpoint', () => {
  it('the service reports the new release after the hot reload: confirmed, exit 0', async () => {
    const {fake, run} = setup({hot: true})
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'deployed'})
    expect(r.result!.proof).toMatchObject({confirmed: r.result!.release, restarted: false})
    expect(journalLines(fake.journal)).toEqual([...FORWARD, 'deploy end ok 0'])
    expect(loaded).toBe(r.result!.release)
  })

  it('the hot reload does not take: the restart command runs, then it is confirmed, exit 0', async () => {
    const {fake, run} = setup({hot: false, restart: true})
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'deployed'})
    expect(r.result!.proof).toMatchObject({confirmed: r.result!.release, restarted: true})
    expect(fake.commands).toEqual(['reload-app', 'restart-app'])
    expect(loaded).toBe(r.result!.release)
  })

  it('the hot reload does not take and --no-restart forbids the restart: restored, the old release confirmed', async () => {
    const {fake, run} = setup({hot: false, restart: true})
    const r = await run({noRestart: true})
    // A release that is merely not live in time is restored with exit 3; exit 6 is for a service
    // that reports a restart state (e2e: reload-failures.test.ts).
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(r.result!.error).toMatch(/is not live after 300ms: app reports version "20240101000000"/)
    expect(journalLines(fake.journal)).toEqual([...FORWARD, ...RESTORE, 'deploy end restored 3'])
    expect(fake.commands).toEqual(['reload-app', 'reload-app'])
    expect(r.result!.restore?.proof.confirmed).toBe(R0)
    expect(fake.tree()).toEqual(LIVE)
    expect(fake.marker).toBe(R0)
  })

  it('neither reload nor restart takes: restored, exit 3', async () => {
    const {fake, run} = setup({hot: false, restart: true})
    fake.onCommand = () => undefined // the restart runs but loads nothing
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(r.result!.error).toMatch(/is not live after 300ms/)
    expect(journalLines(fake.journal)).toEqual([...FORWARD, ...RESTORE, 'deploy end restored 3'])
    expect(fake.commands).toEqual(['reload-app', 'restart-app', 'reload-app'])
    expect(fake.tree()).toEqual(LIVE)
  })
})
