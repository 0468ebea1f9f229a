#!/usr/bin/env node
// `npm test`: typecheck + build, lint, the vitest suites (unit and end-to-end against the built
// binary) and the Python agent's unittest suite. Ends with one summary line: "N passed, N failed".
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const only = process.argv.slice(2) // optional vitest filters, e.g. `npm test -- test/unit`
let passed = 0
let failed = 0
let skipped = 0
const problems = []

function step(name, cmd, args, opts = {}) {
  process.stderr.write(`\n== ${name}: ${cmd} ${args.join(' ')}\n`)
  const r = spawnSync(cmd, args, {
    cwd: root,
    stdio: opts.capture ? ['ignore', 'inherit', 'pipe'] : 'inherit',
    encoding: 'utf8',
    env: {...process.env, ...opts.env},
  })
  if (opts.capture) process.stderr.write(r.stderr ?? '')
  if (r.status !== 0) problems.push(`${name} (exit ${r.status ?? r.signal})`)
  return r
}

const build = step('typecheck + build', 'npm', ['run', '--silent', 'build'])
if (build.status !== 0) finish()
step('lint (eslint + prettier)', 'npm', ['run', '--silent', 'lint'])

const report = path.join(os.tmpdir(), `hotctl-vitest-${process.pid}.json`)
step('vitest (unit + end-to-end)', 'npx', [
  'vitest',
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...only,
])
try {
  const r = JSON.parse(fs.readFileSync(report, 'utf8'))
  passed += r.numPassedTests
  failed += r.numFailedTests
  skipped += r.numPendingTests + (r.numTodoTests ?? 0)
  fs.rmSync(report, {force: true})
} catch {
  problems.push('vitest produced no report')
}

if (only.length === 0) {
  const py = step(
    'python agent (unittest)',
    'python3',
    ['-m', 'unittest', 'discover', '-s', 'templates/python/tests', '-t', 'templates/python'],
    {capture: true},
  )
  const ran = /Ran (\d+) tests?/.exec(py.stderr ?? '')
  const bad = /FAILED \(([^)]*)\)/.exec(py.stderr ?? '')
  const n = ran ? Number(ran[1]) : 0
  const nFailed = bad ? [...bad[1].matchAll(/(?:failures|errors)=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0) : 0
  const nSkipped =
    bad || /OK \(skipped=(\d+)\)/.test(py.stderr ?? '') ? Number(/skipped=(\d+)/.exec(py.stderr ?? '')?.[1] ?? 0) : 0
  passed += n - nFailed - nSkipped
  failed += nFailed
  skipped += nSkipped
  if (!ran) problems.push('python unittest ran no test')
}
finish()

function finish() {
  if (problems.length) process.stdout.write(`\nproblems: ${problems.join('; ')}\n`)
  process.stdout.write(`\nsummary: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`)
  process.exit(problems.length || failed ? 1 : 0)
}
