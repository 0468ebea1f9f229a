/**
 * Shared by the release-steps e2e files: the reference agent (templates/python/demo_service.py)
 * serving the live tree, and small Python helpers for the databases.
 */
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {ROOT} from './helpers.js'

const DEMO = path.join(ROOT, 'templates', 'python', 'demo_service.py')
/** The agent refuses reloads without a token: the test's service and hotctl share this one. */
export const TOKEN = 'release-steps-test-token'

export interface Agent {
  base: string
  pid: number
  proc: ChildProcess
}

const started = new Set<number>()

/**
 * Clients calling the agent's calc in a loop until stopped (the canary tests' traffic): every
 * answer's status, when its call started (`start`) and when it ended (`t`); 0 when none came.
 */
export function traffic(agent: {base: string}, clients = 3) {
  const seen: {start: number; t: number; status: number}[] = []
  let stop = false
  const loops = Array.from({length: clients}, async () => {
    while (!stop) {
      const start = Date.now()
      try {
        const r = await fetch(`${agent.base}/api/v1/calc`, {
          method: 'POST',
          headers: {'content-type': 'application/json'},
          body: JSON.stringify({a: 1, b: 2}),
        })
        await r.text()
        seen.push({start, t: Date.now(), status: r.status})
      } catch {
        seen.push({start, t: Date.now(), status: 0})
      }
    }
  })
  return {
    seen,
    async stop() {
      stop = true
      await Promise.all(loops)
    },
  }
}

export async function startAgent(root: string): Promise<Agent> {
  const env: NodeJS.ProcessEnv = {...process.env, PYTHONDONTWRITEBYTECODE: '1', HOTRELOAD_TOKEN: TOKEN}
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

export async function stopAgents(): Promise<void> {
  for (const pid of [...started]) {
    started.delete(pid)
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      /* gone */
    }
  }
}

/** reload (trigger + status) against the agent, and an HTTP smoke of calc. */
export function agentConfig(a: Agent, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    target: '../live',
    protect: ['data/', '.env'],
    reload: {
      trigger: {url: `${a.base}/api/v1/hot-reload/check`, method: 'POST', headers: {Authorization: `Bearer ${TOKEN}`}},
      status: {url: `${a.base}/api/v1/hot-reload/status`, settle: '200ms'},
      timeout: '30s',
    },
    smoke: [
      {
        name: 'calc',
        url: `${a.base}/api/v1/calc`,
        method: 'POST',
        json: {a: 2, b: 3},
        expect: {status: 200, json: {success: true, result: 5}},
        retries: 0,
      },
    ],
    ...over,
  }
}

/** Runs a Python snippet (argv, no shell); throws with its stderr on failure; returns stdout. */
export function py(code: string, args: string[] = [], opts: {cwd?: string; env?: NodeJS.ProcessEnv} = {}): string {
  const r = spawnSync('python3', ['-c', code, ...args], {encoding: 'utf8', cwd: opts.cwd, env: opts.env})
  if (r.status !== 0) throw new Error(`python3 failed (${r.status}): ${r.stderr}`)
  return r.stdout
}

export const sha256File = (file: string) =>
  py('import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())', [file]).trim()

export const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

export function waitFor(pred: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (pred()) return resolve()
      if (Date.now() > end) return reject(new Error('condition not met in time'))
      setTimeout(tick, 50)
    }
    tick()
  })
}

export const exists = (p: string) => fs.existsSync(p)
