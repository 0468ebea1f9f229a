import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {stripVTControlCharacters} from 'node:util'
import {describe, expect, it} from 'vitest'
import {deploy, type DeployFlags} from '../../src/pipeline/deploy.js'
import {collectStatus, type StatusReport} from '../../src/pipeline/status.js'
import {renderStatus} from '../../src/ui/status-report.js'
import {writeTree} from './helpers.js'
import {pipelineFixture} from './pipeline-fixture.js'

const FLAGS: DeployFlags = {dryRun: false, force: false, noRestart: false, skipChecks: false, createTarget: false}
const lines = (text: string) => stripVTControlCharacters(text).split('\n')

describe('renderStatus', () => {
  it('after a deploy and a restored one: target, release, each service, lock, the numbers, recent operations newest first', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}, status: true})
    const a = await deploy(f.ctx(), FLAGS)
    writeTree(f.src, {'app.py': 'v3 (longer)\n'})
    const b = await deploy(f.ctx({smoke: [{name: 'no-v3', command: 'if grep -q v3 app.py; then exit 1; fi'}]}), FLAGS)
    expect([a.outcome, b.outcome]).toEqual(['deployed', 'restored'])
    const s = await collectStatus(f.ctx())
    const withTimes = {...s, recent: s.recent.map((o, i) => ({...o, durationMs: [1250, 980][i]!}))}
    expect(lines(renderStatus(withTimes))).toEqual([
      `Target   ${f.live}`,
      `Release  ${a.release} by ${s.release!.user} at ${s.release!.time}`,
      `Service  service: reports ${a.release}, state ready (live)`,
      'Lock     free',
      'Deploys  2 (success rate 50%), rollbacks 0 (0 in the last hour), automatic restores 1, backups 2',
      'Recent',
      `  ${b.release}  deploy   restored    1.3s  smoke failed: no-v3: \`if grep -q v3 app.py; then exit 1; fi\` exited 1:`,
      `  ${a.release}  deploy   ok          980ms`,
    ])
  })

  it('before any deploy: no release, no numbers; a service that is unreachable or reports another release says so', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}, status: true})
    const s = await collectStatus(f.ctx())
    expect(lines(renderStatus(s))).toEqual([
      `Target   ${f.live}`,
      'Release  none (no release marker: not deployed by hotctl yet)',
      'Service  service: reports (no version), state ready ',
      'Lock     free',
      'Deploys  0 (success rate n/a), rollbacks 0 (0 in the last hour), automatic restores 0, backups 0',
    ])
    const services: StatusReport['services'] = [
      {name: 'web', version: null, live: null, error: 'GET http://127.0.0.1:1/status: connection refused'},
      {name: 'worker', version: '20250101000000', live: false},
    ]
    expect(lines(renderStatus({...s, services})).slice(2, 4)).toEqual([
      'Service  web: unreachable: GET http://127.0.0.1:1/status: connection refused',
      'Service  worker: reports 20250101000000 (not the deployed release)',
    ])
  })

  it('workers on different releases: requests at once reach a worker that lone ones never do, and status says so', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}, status: true})
    const a = await deploy(f.ctx(), FLAGS)
    expect(a.outcome).toBe('deployed')
    // As uWSGI's idle worker takes every lone connection: the request that finds the server idle
    // answers the deployed release; those overlapping it, an old worker's.
    let busy = 0
    const server = http.createServer((_req, res) => {
      const version = busy === 0 ? a.release : '20200101000000'
      busy++
      setTimeout(() => {
        busy--
        res.writeHead(200, {'content-type': 'application/json'})
        res.end(JSON.stringify({version, state: 'ready'}))
      }, 20)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`
      const s = await collectStatus(f.ctx({reload: {status: {url}}}))
      const svc = s.services[0]!
      expect(svc.live).toBe(false)
      expect(svc.answers).toBe(4)
      expect([svc.version, ...svc.others!.map((o) => o.version)].sort()).toEqual(['20200101000000', a.release].sort())
      expect(svc.others!.reduce((n, o) => n + o.count, 0)).toBeGreaterThan(0)
      expect(lines(renderStatus(s))[2]).toMatch(
        /^Service {2}service: reports \d{14} in \d of 4 answers, \d{14} in \d, state ready \(workers on different releases: reload again, or roll back\)$/,
      )
      // One request at a time only the idle worker answers: "live", the lie the bursts are there for.
      const one = await collectStatus(f.ctx({reload: {status: {url, probes: 1}}}))
      expect(one.services[0]).toMatchObject({version: a.release, live: true})
      expect(one.services[0]!.others).toBeUndefined()
    } finally {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  })

  it('a worker answering 5xx beside healthy ones: not live, and the line says how many failed', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}, status: true})
    const a = await deploy(f.ctx(), FLAGS)
    let busy = 0
    const server = http.createServer((_req, res) => {
      const ok = busy === 0
      busy++
      setTimeout(() => {
        busy--
        res.writeHead(ok ? 200 : 502, {'content-type': 'application/json'})
        res.end(JSON.stringify({version: a.release, state: 'ready'}))
      }, 20)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`
      // retries 0: a retried request would find the server idle and pass.
      const s = await collectStatus(f.ctx({reload: {status: {url, retries: 0}}}))
      expect(s.services[0]).toMatchObject({version: a.release, live: false, answers: 4, others: []})
      expect(s.services[0]!.failed!.error).toMatch(/HTTP 502/)
      expect(lines(renderStatus(s))[2]).toMatch(
        /^Service {2}service: reports \d{14} in \d of 4 answers, status answered HTTP 502 in \d, state ready \(some requests failed: not every worker is healthy\)$/,
      )
    } finally {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  })

  it('a held or stale lock, an interrupted operation and needing attention are each a line', () => {
    const s: StatusReport = {
      target: '/srv/app',
      release: {id: '20250102030405', gitSha: '0123456789abcdef', user: 'ci', time: '2025-01-02T03:04:05.000Z'},
      lock: {
        pid: 4242,
        host: 'build-7',
        user: 'ci',
        command: 'hotctl deploy',
        started: '2025-01-02T03:05:00.000Z',
        stale: true,
      },
      interrupted: {op: 'deploy', id: '20250102030500', lastPhase: 'sync', started: '2025-01-02T03:05:00.000Z'},
      needsAttention: true,
      attention: 'deploy 20250102030500 was interrupted after changing the target (phase sync)',
      recent: [
        {
          op: 'rollback',
          id: '20250102030500',
          started: '2025-01-02T03:05:00Z',
          result: 'interrupted',
          exitCode: null,
          durationMs: null,
        },
      ],
      stats: {deploys: 3, succeeded: 2, successRate: 2 / 3, rollbacks: 1, rollbacksLastHour: 1, restores: 0},
      services: [],
      backups: 4,
    }
    expect(lines(renderStatus(s))).toEqual([
      'Target   /srv/app',
      'Release  20250102030405 (git 0123456789) by ci at 2025-01-02T03:04:05.000Z',
      'Lock     stale held by pid 4242 on build-7 (ci, "hotctl deploy", since 2025-01-02T03:05:00.000Z)',
      'Interrupted: deploy 20250102030500 stopped at phase sync; the next deploy or rollback restores its backup first.',
      'NEEDS ATTENTION: deploy 20250102030500 was interrupted after changing the target (phase sync)',
      'Deploys  3 (success rate 67%), rollbacks 1 (1 in the last hour), automatic restores 0, backups 4',
      'Recent',
      '  20250102030500  rollback interrupted ',
    ])
    const held = lines(
      renderStatus({...s, lock: {...s.lock!, stale: false}, interrupted: {...s.interrupted!, lastPhase: null}}),
    )
    expect(held[2]).toBe('Lock     held by pid 4242 on build-7 (ci, "hotctl deploy", since 2025-01-02T03:05:00.000Z)')
    expect(held[3]).toBe(
      'Interrupted: deploy 20250102030500 stopped at phase start; the next deploy or rollback restores its backup first.',
    )
  })
})
