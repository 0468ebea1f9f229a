/**
 * A failed reload ends the wait at once (issue 11, items 9 and 13), against the real reference
 * agent (templates/python/demo_service.py): `rejected` restores within seconds quoting last_error;
 * `restart_required` restores and exits 6 under --no-restart, runs reload.restart otherwise; and
 * a status that keeps failing prints no Node runtime warning.
 */
import {type ChildProcess, spawn} from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, readMarker, removeWorkspaces, requireBuild, ROOT, runCli, type Workspace} from './helpers.js'

const DEMO = path.join(ROOT, 'templates', 'python', 'demo_service.py')
const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

const started = new Set<number>()
/** The agent refuses reloads without a token: the test's service and hotctl share this one. */
const TOKEN = 'reload-failures-test-token'

interface Agent {
  base: string
  pid: number
  proc: ChildProcess
}

/** demo_service.py (the reference agent on the same port as the app) serving `root`. */
async function startAgent(root: string): Promise<Agent> {
  const env: NodeJS.ProcessEnv = {...process.env, PYTHONDONTWRITEBYTECODE: '1'}
  env.HOTRELOAD_TOKEN = TOKEN
  const proc = spawn('python3', [DEMO, '--root', root, '--port', '0'], {env, stdio: ['ignore', 'pipe', 'pipe']})
  let err = ''
  proc.stderr!.on('data', (d) => (err += String(d)))
  const ready = await new Promise<{port: number; pid: number}>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`demo service printed no READY within 15s: ${err}`)), 15_000)
    proc.stdout!.on('data', (d) => {
      out += String(d)
      const m = /READY (\d+) (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({port: Number(m[1]), pid: Number(m[2])})
      }
    })
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`demo service exited (${code}) before READY: ${err}`))
    })
  })
  started.add(ready.pid)
  return {base: `http://127.0.0.1:${ready.port}`, pid: ready.pid, proc}
}

async function stopPid(pid: number): Promise<void> {
  started.delete(pid)
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return
  }
  for (let i = 0; i < 60; i++) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    /* gone */
  }
}

function agentConfig(a: {base: string}, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    target: '../live',
    protect: ['data/', '.env'],
    reload: {
      trigger: {url: `${a.base}/api/v1/hot-reload/check`, method: 'POST', headers: {Authorization: `Bearer ${TOKEN}`}},
      status: {url: `${a.base}/api/v1/hot-reload/status`},
      timeout: '60s',
      ...over,
    },
    smoke: [
      {
        name: 'calc',
        url: `${a.base}/api/v1/calc`,
        method: 'POST',
        json: {a: 2, b: 3},
        expect: {status: 200, json: {success: true, result: 5}},
      },
    ],
  }
}

const hello = async (base: string) => (await (await fetch(`${base}/api/v1/hello`)).text()).trim()
const agentStatus = async (base: string) =>
  (await (await fetch(`${base}/api/v1/hot-reload/status`)).json()) as {state: string; version: string | null}

/** A first good deploy (v2), so the live tree has a release the failing deploys must come back to. */
async function deployV2(ws: Workspace): Promise<string> {
  ws.setVersion('v2')
  const r = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(r.exitCode, why(r)).toBe(0)
  return r.json.release as string
}

/** ms from the deploy's sync phase to its restore phase and to its end, from the journal. */
function timings(ws: Workspace, opId: string): {toRestore: number; toEnd: number} {
  const ev = ws.journal().filter((e) => e.opId === opId)
  const at = (pred: (e: Record<string, unknown>) => boolean) => Date.parse(String(ev.find(pred)!.t))
  const sync = at((e) => e.phase === 'sync')
  return {toRestore: at((e) => e.phase === 'restore') - sync, toEnd: at((e) => e.event === 'end') - sync}
}

beforeAll(requireBuild)
afterEach(async () => {
  await Promise.all([...started].map((pid) => stopPid(pid)))
})
afterAll(removeWorkspaces)

describe('a reload the service rejects', {timeout: 120_000}, () => {
  it("is restored at once (not after reload.timeout), quoting the agent's last_error", async () => {
    const ws = makeWorkspace()
    const agent = await startAgent(ws.live)
    ws.writeConfig(agentConfig(agent))
    const v2 = await deployV2(ws)
    expect(await hello(agent.base)).toBe('hello v2')

    ws.setVersion('v3', {syntaxError: true})
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.outcome).toBe('restored')
    expect(r.json.error).toMatch(
      /^release \d{14} failed to load: service: the service reports state "rejected": SyntaxError: app\/handlers\.py: /,
    )
    expect(r.json.error).not.toMatch(/Traceback/)
    expect(r.json.restore.ok).toBe(true)
    expect(r.json.restore.proof.confirmed).toBe(v2)
    const t = timings(ws, r.json.release)
    // reload.timeout is 60 s: the restore starts as soon as the agent says "rejected".
    expect(t.toRestore, JSON.stringify(t)).toBeLessThan(20_000)
    expect(readMarker(ws.live)?.id).toBe(v2)
    expect(await hello(agent.base)).toBe('hello v2')
  })
})

describe('a reload the service says needs a restart', {timeout: 120_000}, () => {
  it('--no-restart: restores and exits 6 naming the files, the service keeps running the old release', async () => {
    const ws = makeWorkspace()
    const agent = await startAgent(ws.live)
    ws.writeConfig(agentConfig(agent)) // no requireRestart: only the service knows
    const v2 = await deployV2(ws)
    const before = fs.readFileSync(path.join(ws.live, 'requirements.txt'), 'utf8')

    fs.writeFileSync(path.join(ws.src, 'requirements.txt'), 'requests==2.32.0\n')
    const r = await runCli(['deploy', '--no-restart', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(6)
    expect(r.json.outcome).toBe('restored')
    expect(r.json.error).toMatch(/: the service says these changes need a restart: requirements\.txt$/)
    expect(r.json.restore.ok).toBe(true)
    expect(fs.readFileSync(path.join(ws.live, 'requirements.txt'), 'utf8')).toBe(before)
    expect(readMarker(ws.live)?.id).toBe(v2)
    const st = await agentStatus(agent.base)
    expect(st.version).toBe(v2)
    expect(st.state).not.toBe('restart_required')
    expect(agent.proc.exitCode).toBeNull()
    const end = ws.journal().find((e) => e.opId === r.json.release && e.event === 'end')
    expect(end).toMatchObject({result: 'restored', exitCode: 6})
  })

  it('without reload.restart configured: restores and exits 3, saying so', async () => {
    const ws = makeWorkspace()
    const agent = await startAgent(ws.live)
    ws.writeConfig(agentConfig(agent))
    const v2 = await deployV2(ws)
    fs.writeFileSync(path.join(ws.src, 'requirements.txt'), 'requests==2.32.0\n')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.error).toMatch(/need a restart: requirements\.txt \(reload\.restart is not configured\)$/)
    expect(readMarker(ws.live)?.id).toBe(v2)
  })

  it('with reload.restart: runs it, and the restarted service proves the new release', async () => {
    const ws = makeWorkspace()
    const agent = await startAgent(ws.live)
    const port = new URL(agent.base).port
    const pidFile = path.join(ws.dir, 'service.pid')
    fs.writeFileSync(pidFile, String(agent.pid))
    // Stops the running service and starts a new one on the same port, in the background.
    const script = path.join(ws.dir, 'restart.sh')
    fs.writeFileSync(
      script,
      [
        '#!/bin/sh',
        'set -e',
        `old=$(cat '${pidFile}')`,
        'kill "$old"',
        'i=0; while kill -0 "$old" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
        `PYTHONDONTWRITEBYTECODE=1 nohup python3 '${DEMO}' --root '${ws.live}' --port ${port} > '${ws.dir}/restarted.log' 2>&1 &`,
        `echo $! > '${pidFile}'`,
        '',
      ].join('\n'),
      {mode: 0o755},
    )
    ws.writeConfig(agentConfig(agent, {restart: {command: {argv: [script]}}}))
    await deployV2(ws)

    fs.writeFileSync(path.join(ws.src, 'requirements.txt'), 'requests==2.32.0\n')
    ws.setVersion('v3')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    const newPid = Number(fs.readFileSync(pidFile, 'utf8'))
    started.add(newPid)
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.proof.restarted).toBe(true)
    expect(r.json.proof.confirmed).toBe(r.json.release)
    expect(newPid).not.toBe(agent.pid)
    expect(await hello(agent.base)).toBe('hello v3')
    expect((await agentStatus(agent.base)).version).toBe(r.json.release)
  })
})

describe('a status that keeps answering 500', {timeout: 120_000}, () => {
  let server: http.Server
  let url = ''
  let polls = 0
  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      polls++
      // The preflight's one question gets a good answer; every poll after the deploy's sync, 500.
      res.statusCode = polls === 1 ? 200 : 500
      res.end(polls === 1 ? '{"version": null}' : '{"error": "boom"}')
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })

  it('fails after the grace period with many polls, and no Node warning reaches the output (--json and not)', async () => {
    for (const json of [true, false]) {
      const ws = makeWorkspace()
      ws.writeConfig({
        target: '../live',
        protect: ['data/', '.env'],
        reload: {status: {url, grace: '4s'}, timeout: '60s'},
      })
      polls = 0
      const r = await runCli(['deploy', ...(json ? ['--json'] : [])], {cwd: ws.src})
      expect(r.exitCode, why(r)).toBe(3)
      expect(polls).toBeGreaterThan(11)
      expect(r.stderr + r.stdout).not.toMatch(/Warning|MaxListeners|--trace-warnings/)
      const text = json ? r.json.error : r.stderr
      expect(text).toMatch(/status answered HTTP 500 for 4(\.\d)?s \(reload\.status\.grace 4s\)/)
    }
  })
})
