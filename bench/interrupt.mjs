#!/usr/bin/env node
// Interrupt benchmark: how long a cancelled CI job's hotctl takes from SIGINT to its exit, on a big
// tree. Sends SIGINT while a deploy sits in its smoke phase (a slow smoke command) or in its sync
// (a bandwidth-limited rsync), then behaves like GitHub Actions: SIGTERM 7.5 s after the SIGINT,
// SIGKILL 2.5 s after that. Reports the time to exit, the exit code and whether the previous release
// is back (content and the service's reported id). Informational; nothing here fails on a time.
// Usage: node bench/interrupt.mjs [--files N] [--smoke SECONDS] [--phase smoke|sync] [--reps N] [--keep]
import {spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const SERVICE = path.join(ROOT, 'test', 'fixtures', 'service.py')

function parseArgs(argv) {
  const o = {files: 20_000, smoke: 12, phase: 'smoke', reps: 3, keep: false}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const num = () => {
      const n = Number(argv[++i])
      if (!Number.isFinite(n) || n < 1) fail(`${a} needs a positive number`)
      return n
    }
    if (a === '--files') o.files = num()
    else if (a === '--smoke') o.smoke = num()
    else if (a === '--reps') o.reps = num()
    else if (a === '--keep') o.keep = true
    else if (a === '--phase') {
      o.phase = argv[++i]
      if (!['smoke', 'sync'].includes(o.phase)) fail('--phase is smoke or sync')
    } else fail(`unknown option ${a} (usage: ${USAGE})`)
  }
  return o
}

function fail(msg) {
  console.error(`bench: ${msg}`)
  process.exit(2)
}

const USAGE = 'node bench/interrupt.mjs [--files N] [--smoke SECONDS] [--phase smoke|sync] [--reps N] [--keep]'
const log = (msg) => process.stderr.write(`bench: ${msg}\n`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const env = {...process.env, NO_COLOR: '1', CI: '1'}
delete env.HOTCTL_CONFIG
delete env.HOTCTL_RSYNC

/** `files` files of 1–23 KB in directories of 100, plus the test service's app/. */
function generateTree(root, files) {
  const pool = Buffer.alloc(1 << 20)
  for (let i = 0; i < pool.length; i++) pool[i] = (i * 2654435761) >>> 24
  const rels = []
  for (let d = 0; rels.length < files; d++) {
    const dir = path.join(
      `area${String(d % 14).padStart(2, '0')}`,
      `module${String(Math.floor(d / 14)).padStart(3, '0')}`,
    )
    fs.mkdirSync(path.join(root, dir), {recursive: true})
    for (let f = 0; f < 100 && rels.length < files; f++) {
      const rel = path.join(dir, `file${f}.txt`)
      const size = 1000 + (((d * 100 + f) * 7919) % 22_000)
      const off = (d * 131 + f) % 4096
      fs.writeFileSync(path.join(root, rel), Buffer.concat([Buffer.from(`${rel}\n`), pool.subarray(off, off + size)]))
      rels.push(rel)
    }
  }
  fs.mkdirSync(path.join(root, 'app'), {recursive: true})
  fs.writeFileSync(path.join(root, 'app', '__init__.py'), '')
  fs.writeFileSync(path.join(root, 'app', 'handlers.py'), handlers('v1'))
  return rels
}

const handlers = (v) =>
  `VERSION = "${v}"\n\n\ndef hello():\n    return "hello " + VERSION\n\n\ndef calc(a, b):\n    return a + b\n`

async function startService(live) {
  const proc = spawn('python3', ['-B', SERVICE, '--root', live, '--port', '0'], {stdio: ['ignore', 'pipe', 'ignore']})
  const port = await new Promise((resolve, reject) => {
    let out = ''
    proc.stdout.on('data', (d) => {
      out += d
      const m = /READY (\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    proc.on('exit', (code) => reject(new Error(`test service exited (${code})`)))
  })
  return {proc, base: `http://127.0.0.1:${port}`}
}

function journal(stateDir) {
  try {
    return fs
      .readFileSync(path.join(stateDir, 'journal.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
  } catch {
    return []
  }
}

/** Paths where `live` differs from `ref` by content (rsync --checksum dry run), marker aside. */
function differing(ref, live) {
  const r = spawnSync('rsync', ['-rlnci', '--delete', '--exclude=.hotctl-release.json', `${ref}/`, `${live}/`], {
    encoding: 'utf8',
  })
  return r.stdout.split('\n').filter((l) => l.trim()).length
}

async function main() {
  const o = parseArgs(process.argv.slice(2))
  if (!fs.existsSync(path.join(ROOT, 'dist', 'commands', 'deploy.js')))
    fail(`${ROOT}/dist is not built: run \`npm run build\``)
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-bench-interrupt-'))
  const live = path.join(work, 'live')
  const src = path.join(work, 'src')
  const ref = path.join(work, 'ref') // the live tree as deployed: what every restore must give back
  const stateDir = path.join(work, '.live.hotctl')
  const config = path.join(work, 'hotctl.json')
  let svc
  try {
    log(`generating ${o.files} files in ${live}`)
    const rels = generateTree(live, o.files)
    spawnSync('cp', ['-a', live, src])
    svc = await startService(live)
    const slowRsync = path.join(work, 'slow-rsync.sh')
    fs.writeFileSync(slowRsync, '#!/bin/sh\nexec rsync --bwlimit=300 "$@"\n', {mode: 0o755})
    const writeConfig = (smokeSeconds) =>
      fs.writeFileSync(
        config,
        JSON.stringify({
          source: src,
          target: live,
          protect: [],
          checks: {},
          reload: {
            trigger: {url: `${svc.base}/api/v1/hot-reload/check`, method: 'POST'},
            status: {url: `${svc.base}/api/v1/hot-reload/status`, version: 'version'},
            timeout: '10s',
          },
          smoke: [
            {name: 'health', url: `${svc.base}/health`, expect: {status: 200}},
            {
              name: 'calc',
              url: `${svc.base}/api/v1/calc`,
              method: 'POST',
              json: {a: 2, b: 3},
              expect: {status: 200, json: {success: true}},
            },
            {name: 'suite', command: `sleep ${smokeSeconds}`},
          ],
        }),
      )

    // The release every interrupted deploy must end with: v2, deployed (full first backup).
    writeConfig(0)
    fs.writeFileSync(path.join(src, 'app', 'handlers.py'), handlers('v2'))
    let t = Date.now()
    const first = spawnSync(process.execPath, [BIN, 'deploy', '--json', '--config', config], {env, encoding: 'utf8'})
    if (first.status !== 0) throw new Error(`first deploy failed (exit ${first.status}): ${first.stderr.slice(-2000)}`)
    const v2 = JSON.parse(first.stdout).release
    log(`first deploy (release ${v2}): ${Date.now() - t} ms`)
    spawnSync('cp', ['-a', live, ref])
    writeConfig(o.smoke)

    const rows = []
    for (let rep = 1; rep <= o.reps; rep++) {
      // A new version: 10 files changed across the tree, new handlers (+ a 3 MB file to sync slowly).
      for (let i = 0; i < 10; i++)
        fs.appendFileSync(path.join(src, rels[Math.floor((i * rels.length) / 10)]), `rep ${rep}\n`)
      fs.writeFileSync(path.join(src, 'app', 'handlers.py'), handlers(`v3.${rep}`))
      if (o.phase === 'sync') fs.writeFileSync(path.join(src, 'big.bin'), Buffer.alloc(3 << 20, rep))
      const seen = new Set(
        journal(stateDir)
          .filter((e) => e.event === 'start')
          .map((e) => e.opId),
      )
      t = Date.now()
      const runEnv = o.phase === 'sync' ? {...env, HOTCTL_RSYNC: slowRsync} : env
      const proc = spawn(process.execPath, [BIN, 'deploy', '--json', '--config', config], {
        env: runEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      proc.stdout.on('data', (d) => (stdout += d))
      proc.stderr.on('data', (d) => (stderr += d))
      const exited = new Promise((r) => proc.on('exit', (code, signal) => r({code, signal, at: Date.now()})))
      for (;;) {
        const j = journal(stateDir)
        const start = j.find((e) => e.event === 'start' && !seen.has(e.opId))
        if (start && j.some((e) => e.event === 'phase' && e.opId === start.opId && e.phase === o.phase)) break
        if (proc.exitCode !== null) throw new Error(`deploy ended before its ${o.phase} phase: ${stderr.slice(-2000)}`)
        await sleep(20)
      }
      await sleep(500)
      const signalled = Date.now()
      proc.kill('SIGINT')
      const term = setTimeout(() => proc.kill('SIGTERM'), 7500)
      const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      const end = await exited
      clearTimeout(term)
      clearTimeout(kill)
      const status = await (await fetch(`${svc.base}/api/v1/hot-reload/status`)).json()
      const diffs = differing(ref, live)
      let outcome = '-'
      try {
        outcome = JSON.parse(stdout.trim()).outcome
      } catch {
        // killed: no JSON
      }
      const exit = end.code ?? end.signal
      const row = {rep, exit, ms: end.at - signalled, outcome, restored: diffs === 0, reported: status.version === v2}
      rows.push(row)
      const content = row.restored ? 'restored' : `differs at ${diffs} paths`
      const reports = row.reported ? 'the previous release' : status.version
      log(
        `rep ${rep}: exit ${exit} ${row.ms} ms after SIGINT; ${outcome}; content ${content}; service reports ${reports}`,
      )
      if (end.code === null) log(`stderr of the killed run:\n${stderr.slice(-3000)}`)
    }
    const ms = rows.map((r) => r.ms).sort((a, b) => a - b)
    const during = o.phase === 'smoke' ? `a ${o.smoke} s smoke command` : 'a slowed rsync'
    const machine = `node ${process.version}, ${os.cpus().length} CPUs`
    console.log(`\nhotctl interrupt benchmark — ${o.files} files, SIGINT during ${during}; ${machine}`)
    console.log('rep  exit  SIGINT→exit  outcome      content   service')
    const secs = (n) => `${(n / 1000).toFixed(2)} s`
    for (const r of rows) {
      const cells = [
        String(r.rep).padEnd(3),
        String(r.exit).padEnd(4),
        secs(r.ms).padStart(11),
        String(r.outcome).padEnd(11),
      ]
      console.log(
        `${cells.join('  ')}  ${r.restored ? 'restored' : 'DIFFERS '}  ${r.reported ? 'previous' : 'NOT previous'}`,
      )
    }
    console.log(
      `median ${secs(ms[ms.length >> 1])}, max ${secs(ms.at(-1))} (target: exit 130 within 5 s; GitHub Actions kills at 10 s)`,
    )
  } finally {
    svc?.proc.kill()
    if (o.keep) log(`--keep: left ${work}`)
    else fs.rmSync(work, {recursive: true, force: true})
  }
}

main().catch((err) => {
  console.error(`bench: FAILED: ${err.stack || err.message || err}`)
  process.exitCode = 1
})
