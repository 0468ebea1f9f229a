/**
 * A cancelled CI job (GitHub Actions: SIGINT, SIGTERM 7.5 s later, then SIGKILL) must finish its
 * restore inside that grace period: after the signal hotctl restores, verifies, reloads, confirms
 * the old id and runs the HTTP smoke checks only (short timeouts); command smoke checks are skipped,
 * and said so. Later signals never abandon the restore.
 */
import fs from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  alive,
  makeWorkspace,
  readMarker,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startCli,
  startService,
  stopAllServices,
  treeHash,
  waitFor,
  type Workspace,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

const groups: number[] = []
const servers: http.Server[] = []
afterEach(async () => {
  for (const pgid of groups.splice(0)) {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {
      /* already gone */
    }
  }
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
})

/** An HTTP endpoint answering 200 after `delayMs`: keeps the restore's smoke step open for a while. */
async function slowEndpoint(delayMs: number): Promise<string> {
  const server = http.createServer((_req, res) => setTimeout(() => res.end('slow ok'), delayMs))
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/slow`
}

/** Phases the journal recorded for operation `opId`. */
const phasesOf = (ws: Workspace, opId: string) =>
  ws
    .journal()
    .filter((e) => e.event === 'phase' && e.opId === opId)
    .map((e) => e.phase as string)

/** The deploy op other than `not` (by journal), once it has reached `phase`. */
function opAt(ws: Workspace, not: string, phase: string): string | undefined {
  const start = ws.journal().find((e) => e.event === 'start' && e.op === 'deploy' && e.opId !== not)
  return start && phasesOf(ws, start.opId as string).includes(phase) ? (start.opId as string) : undefined
}

/** Live (not zombie) members of process group `pgid` (Linux /proc): a reaped-late zombie has stopped. */
function liveMembers(pgid: number): number[] {
  const out: number[] = []
  for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8')
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(pgrp) === pgid && state !== 'Z') out.push(Number(p))
    } catch {
      /* exited meanwhile */
    }
  }
  return out
}

/**
 * v2 deployed and live; then a deploy of v3 started in the background, now in its smoke phase
 * with the smoke command `suite` sitting in `sleep 60` (its process group recorded in `runs`).
 * `slow-page` is an HTTP smoke check answering after `pageDelayMs` (timeout 10s).
 */
async function deployStuckInSmoke(pageDelayMs: number) {
  const ws = makeWorkspace()
  const svc = await startService(ws.live)
  const runs = path.join(ws.dir, 'smoke-runs')
  const sleepFile = path.join(ws.dir, 'smoke-sleep')
  fs.writeFileSync(sleepFile, '0')
  const slow = await slowEndpoint(pageDelayMs)
  const base = serviceConfig(svc, {checks: {}})
  ws.writeConfig({
    ...base,
    smoke: [
      ...(base.smoke as unknown[]),
      {name: 'slow-page', url: slow, expect: {status: 200}, timeout: '10s'},
      // Records its process group (the shell is its leader), then sleeps as long as smoke-sleep says.
      {name: 'suite', command: `echo $$ >> ${runs}; sleep "$(cat ${sleepFile})"`},
    ],
  })
  ws.setVersion('v2')
  const first = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(first.exitCode, why(first)).toBe(0)
  const v2 = first.json.release as string
  const hashV2 = treeHash(ws.live)

  // v3: its smoke command sits in `sleep 60`; the job is cancelled meanwhile.
  fs.writeFileSync(sleepFile, '60')
  ws.setVersion('v3')
  const proc = startCli(['deploy', '--json'], {cwd: ws.src})
  groups.push(proc.pid!)
  const opId = await waitFor('the deploy to reach its smoke phase', () => opAt(ws, v2, 'smoke'), 30_000)
  await waitFor('the smoke command to start', () => fs.readFileSync(runs, 'utf8').trim().split('\n').length === 2)
  const smokeGroup = Number(fs.readFileSync(runs, 'utf8').trim().split('\n')[1])
  expect(liveMembers(smokeGroup).length).toBeGreaterThan(0)

  return {ws, svc, v2, hashV2, runs, proc, opId, smokeGroup}
}

describe('an interrupted deploy or rollback restores within a CI runner grace period', {timeout: 120_000}, () => {
  // GitHub Actions' SIGTERM and an impatient second Ctrl-C come while the restore proves the old release.
  it(
    'SIGINT during a long smoke command: stopped; restored and proven with HTTP checks only, command check skipped and said; 130; ' +
      'a SIGTERM and a second SIGINT during the restore do not abandon it',
    async () => {
      const {ws, svc, v2, hashV2, runs, proc, opId, smokeGroup} = await deployStuckInSmoke(1200)
      const signalled = Date.now()
      process.kill(proc.pid!, 'SIGINT')
      await waitFor(
        'the restore to reach its smoke step',
        () => phasesOf(ws, opId).includes('restore-smoke'),
        20_000,
        20,
      )
      process.kill(proc.pid!, 'SIGTERM')
      await new Promise((r) => setTimeout(r, 200))
      if (alive(proc.pid!)) process.kill(proc.pid!, 'SIGINT')
      const r = await proc
      const seconds = (Date.now() - signalled) / 1000
      const stdout = String(r.stdout)
      const stderr = String(r.stderr)
      const out = why({stdout, stderr})

      expect(r.exitCode, out).toBe(130)
      expect(seconds, out).toBeLessThan(30) // generous (shared machine); the restore never waits for `sleep 60`
      const json = JSON.parse(stdout.trim())
      expect(json.outcome).toBe('interrupted')
      expect(json.restore.ok, out).toBe(true)
      expect(json.restore.interrupted).toBe(true)
      expect(json.restore.proof.confirmed).toBe(v2)
      const smoke = Object.fromEntries(
        (json.restore.proof.smoke as {name: string; ok: boolean; skipped?: boolean}[]).map((s) => [s.name, s]),
      )
      expect(smoke.health.ok).toBe(true)
      expect(smoke.calc.ok).toBe(true)
      expect(smoke['slow-page'].ok).toBe(true) // HTTP checks still run, with short timeouts
      expect(smoke.suite.skipped).toBe(true)
      expect(stderr).toMatch(/command smoke checks skipped \(suite\)/)
      expect(stderr).toMatch(/SIGTERM received again: still restoring/)

      // The command running at the signal was stopped, and the restore never started it again.
      expect(liveMembers(smokeGroup)).toEqual([])
      expect(fs.readFileSync(runs, 'utf8').trim().split('\n')).toHaveLength(2) // v2's deploy and v3's, nothing more

      // Restored and proven: content, marker, the service.
      expect(treeHash(ws.live)).toBe(hashV2)
      expect(readMarker(ws.live)?.id).toBe(v2)
      expect((await svc.status()).version).toBe(v2)
      expect(await svc.hello()).toBe('hello v2')
      expect(phasesOf(ws, opId)).toEqual(
        expect.arrayContaining(['restore', 'restore-reload', 'restore-confirm', 'restore-smoke']),
      )
      const end = ws.journal().find((e) => e.event === 'end' && e.opId === opId)
      expect(end?.result).toBe('interrupted')
      expect(end?.exitCode).toBe(130)
      const st = await runCli(['status', '--json'], {cwd: ws.src})
      expect(st.exitCode, why(st)).toBe(0)
      expect(st.json.needsAttention).toBe(false)
      expect(st.json.lock).toBeNull()
      process.stderr.write(`interrupted-restore: SIGINT → exit 130 in ${seconds.toFixed(2)} s\n`)
    },
  )

  it('after the interrupt an HTTP check slower than the short limit fails the proof: content restored but unproven, exit 4', async () => {
    const {ws, v2, hashV2, proc, opId} = await deployStuckInSmoke(3500)
    process.kill(proc.pid!, 'SIGINT')
    const r = await proc
    const stdout = String(r.stdout)
    const out = why({stdout, stderr: String(r.stderr)})
    expect(r.exitCode, out).toBe(4)
    const json = JSON.parse(stdout.trim())
    expect(json.outcome).toBe('needs-attention')
    expect(json.restore.ok).toBe(false)
    expect(json.restore.interrupted).toBe(true)
    expect(json.restore.differences).toEqual([])
    expect(json.restore.proof.confirmed).toBe(v2)
    expect(json.restore.error).toMatch(/slow-page: .*no answer within 2s/)
    expect(treeHash(ws.live)).toBe(hashV2)
    const end = ws.journal().find((e) => e.event === 'end' && e.opId === opId)
    expect(end?.result).toBe('attention')
    expect(end?.exitCode).toBe(4)
    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(4)
  })

  it("SIGINT during a rollback's smoke: the tree from before it is put back, proven the short way; interrupted, 130", async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const sleepFile = path.join(ws.dir, 'smoke-sleep')
    fs.writeFileSync(sleepFile, '0')
    const base = serviceConfig(svc, {checks: {}})
    ws.writeConfig({
      ...base,
      smoke: [...(base.smoke as unknown[]), {name: 'suite', command: `sleep "$(cat ${sleepFile})"`}],
    })
    ws.setVersion('v2')
    const first = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)
    const v2 = first.json.release as string
    const hashV2 = treeHash(ws.live)

    fs.writeFileSync(sleepFile, '60')
    const proc = startCli(['rollback', '--json'], {cwd: ws.src})
    groups.push(proc.pid!)
    const undo = await waitFor(
      'the rollback to reach its smoke phase',
      () => {
        const start = ws.journal().find((e) => e.event === 'start' && e.op === 'rollback')
        return start && phasesOf(ws, start.opId as string).includes('smoke') ? (start.opId as string) : undefined
      },
      30_000,
    )
    await new Promise((res) => setTimeout(res, 300))
    process.kill(proc.pid!, 'SIGINT')
    const r = await proc
    const stdout = String(r.stdout)
    const out = why({stdout, stderr: String(r.stderr)})
    expect(r.exitCode, out).toBe(130)
    const json = JSON.parse(stdout.trim())
    expect(json.outcome).toBe('interrupted')
    expect(json.restore.ok, out).toBe(true)
    expect(json.restore.proof.confirmed).toBe(v2)
    expect(json.restore.proof.smoke.find((s: {name: string}) => s.name === 'suite').skipped).toBe(true)
    expect(String(r.stderr)).toMatch(/command smoke checks skipped \(suite\)/)
    expect(treeHash(ws.live)).toBe(hashV2)
    expect((await svc.status()).version).toBe(v2)
    const end = ws.journal().find((e) => e.event === 'end' && e.opId === undo)
    expect(end?.result).toBe('interrupted')
    expect(end?.exitCode).toBe(130)
  })
})
