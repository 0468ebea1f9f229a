// Helpers for templates/demo/run.mjs: the demo service, HTTP probes, running hotctl, output.
import {spawn} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(REPO, 'bin', 'run.js')
export const PY = path.join(REPO, 'templates', 'python')

const useColor = process.stdout.isTTY && !process.env.NO_COLOR
const paint = (code) => (s) => (useColor ? `\x1b[${code}m${s}\x1b[0m` : s)
export const bold = paint('1')
export const green = paint('32')
export const red = paint('31')
export const dim = paint('2')

export const say = (s = '') => process.stdout.write(`${s}\n`)
export const heading = (n, title) => say(`\n${bold(`=== Step ${n}: ${title} ===`)}`)
export const indent = (text, by = '    ') => text.replace(/\s+$/, '').split('\n').map((l) => by + l).join('\n')

/** A failed expectation: the demo stops and exits 1. */
export class DemoFailure extends Error {}

export function expectThat(cond, what, detail = '') {
  if (!cond) throw new DemoFailure(`${what}${detail ? `\n${indent(detail)}` : ''}`)
  say(`  ${green('✔')} ${what}`)
}

/**
 * A new agent token (CSPRNG) in `dir`/hotreload.token, mode 0600, never printed. The service reads the
 * file (HOTRELOAD_TOKEN_FILE); hotctl gets the same value in its environment (${HOTRELOAD_TOKEN}).
 */
export function createTokenFile(dir) {
  const file = path.join(dir, 'hotreload.token')
  fs.writeFileSync(file, `${crypto.randomBytes(32).toString('hex')}\n`, {mode: 0o600, flag: 'wx'})
  fs.chmodSync(file, 0o600) // whatever the umask
  return file
}

/** Copies a tree, leaving out Python byte code. */
export function copyTree(from, to) {
  fs.cpSync(from, to, {recursive: true, filter: (src) => !/(__pycache__|\.pyc)$/.test(src)})
}

/** Starts demo_service.py on a free port; resolves once it printed `READY <port> <pid>`. */
export function startService(root, env) {
  const proc = spawn('python3', [path.join(PY, 'demo_service.py'), '--root', root, '--port', '0'], {
    env: {...env, PYTHONDONTWRITEBYTECODE: '1'},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr += String(d)))
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const gone = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGTERM')
    const t = setTimeout(() => proc.kill('SIGKILL'), 3000)
    await gone
    clearTimeout(t)
  }
  const ready = new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new DemoFailure(`the demo service printed no READY line within 15s\n${stderr}`)), 15_000)
    proc.stdout.on('data', (d) => {
      out += String(d)
      const m = /READY (\d+) (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({port: Number(m[1]), pid: Number(m[2])})
      }
    })
    proc.once('exit', (code, sig) => {
      clearTimeout(timer)
      reject(new DemoFailure(`the demo service exited (${code ?? sig}) before READY\n${stderr}`))
    })
    proc.once('error', (err) => {
      clearTimeout(timer)
      reject(new DemoFailure(`cannot start python3: ${err.message}`))
    })
  })
  return {proc, ready, stop, stderr: () => stderr}
}

/** One HTTP request to the demo service: {status, text, json}. */
export async function http(base, p, opts = {}) {
  const res = await fetch(base + p, {
    method: opts.json === undefined ? 'GET' : 'POST',
    headers: opts.json === undefined ? {} : {'content-type': 'application/json'},
    body: opts.json === undefined ? undefined : JSON.stringify(opts.json),
    signal: AbortSignal.timeout(5000),
  })
  const text = await res.text()
  let json
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return {status: res.status, text: text.trim(), json}
}

/** Runs `node bin/run.js ...args` in `cwd`, echoing its output indented; resolves {code, stdout, stderr}. */
export function hotctl(args, {cwd, env, echo = true}) {
  say(dim(`  $ hotctl ${args.join(' ')}`))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {cwd, env, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += String(d)))
    child.stderr.on('data', (d) => (stderr += String(d)))
    const timer = setTimeout(() => child.kill('SIGTERM'), 90_000)
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      const all = [stderr, stdout].filter((s) => s.trim()).join('\n')
      if (echo && all.trim()) say(indent(all, '  │ '))
      say(dim(`  → exit ${code ?? signal}`))
      resolve({code, stdout, stderr})
    })
  })
}

/** Replaces `from` with `to` in a file (the edit must apply). */
export function edit(file, from, to) {
  const text = fs.readFileSync(file, 'utf8')
  if (!text.includes(from)) throw new DemoFailure(`${file} does not contain ${JSON.stringify(from)}`)
  fs.writeFileSync(file, text.replace(from, to))
}

/** The config the demo deploys with (port known once the service runs). */
export function demoConfig(port) {
  const base = `http://127.0.0.1:${port}`
  return `# Written by templates/demo/run.mjs: deploy this tree (src/) into ../live, the running service.
target: ../live
exclude: [.git, __pycache__, '*.pyc', hotctl.config.yaml]
# Live data in the target: never touched by deploys or rollbacks.
protect: [data/]
keep: 5
checks:
  unit: python3 -m unittest discover -s tests
reload:
  trigger:
    url: ${base}/api/v1/hot-reload/check
    method: POST
    headers: { Authorization: 'Bearer \${HOTRELOAD_TOKEN}' }
  status:
    url: ${base}/api/v1/hot-reload/status
    version: version
  timeout: 15s
  requireRestart: ['requirements*.txt']
smoke:
  - name: health
    url: ${base}/health
    expect: { status: 200 }
  - name: calc
    url: ${base}/api/v1/calc
    method: POST
    json: { a: 2, b: 3 }
    expect: { status: 200, json: { success: true, result: 5 } }
    retries: 1
`
}
