/**
 * What a run prints, through the built binary: the colour policy in every combination, the CI log
 * (each step once, with its duration; progress while a step waits; timestamps), --json's progress
 * on stderr, --events NDJSON, bounded check output with the full log in the state dir, units,
 * and --help.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {execa} from 'execa'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  BIN,
  makeWorkspace,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  slowRsync,
  startService,
  stopAllServices,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`
/** An SGR escape (colour, bold, dim): what "no colour" must never print. */
// eslint-disable-next-line no-control-regex -- an escape code is what it looks for
const SGR = /\x1b\[[0-9;]*m/
/** A duration as hotctl prints one: 55ms, 1.3s, 2m 5s. */
const DURATION = String.raw`(\d+ms|\d+(\.\d)?s|\d+m( \d+s)?)`

/** The environment without anything that decides colour or CI, plus `extra`. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const drop = /^(HOTCTL_|NO_COLOR$|FORCE_COLOR$|CI$|GITHUB_ACTIONS$|GITLAB_CI$|BUILDKITE$|CIRCLECI$|COLORTERM$|TERM$)/
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !drop.test(k)) env[k] = v
  return {...env, TERM: 'xterm', ...extra}
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

type Mode = 'pipes' | 'stderr-tty' | 'both-tty'

/**
 * Runs the CLI with stdout and stderr as pipes, or under `script` (a pseudo-terminal): with
 * stdout redirected to a file (stderr is the terminal), or both on the terminal.
 */
async function runIn(mode: Mode, args: string[], cwd: string, env: Record<string, string>) {
  if (mode === 'pipes') {
    const r = await execa('node', [BIN, ...args], {cwd, env, extendEnv: false, reject: false, stdin: 'ignore'})
    return {stdout: String(r.stdout), stderr: String(r.stderr), tty: '', exitCode: r.exitCode}
  }
  const out = path.join(cwd, `.stdout-${process.hrtime.bigint()}`)
  // A terminal of a real size: with 0 columns listr2 would wrap after every character.
  const cmd =
    'stty cols 150 rows 40; ' +
    ['node', BIN, ...args].map(shq).join(' ') +
    (mode === 'stderr-tty' ? ` > ${shq(out)}` : '')
  const r = await execa('script', ['-qec', cmd, '/dev/null'], {
    cwd,
    env,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  })
  const stdout = mode === 'stderr-tty' ? fs.readFileSync(out, 'utf8') : ''
  fs.rmSync(out, {force: true})
  return {stdout, stderr: '', tty: String(r.stdout), exitCode: r.exitCode}
}

describe('colour: one decision that chalk, listr2 and oclif follow', {timeout: 600_000}, () => {
  it('every combination of NO_COLOR, FORCE_COLOR=0..3, --no-color, CI, a terminal or not', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', checks: {ok: 'true', bad: 'echo nope; exit 1'}})
    const envs: Record<string, string>[] = [
      {},
      {NO_COLOR: '1'},
      {FORCE_COLOR: '0'},
      {FORCE_COLOR: '1'},
      {FORCE_COLOR: '2'},
      {FORCE_COLOR: '3'},
      {NO_COLOR: '1', FORCE_COLOR: '1'},
      {CI: '1'},
      {CI: 'true', GITHUB_ACTIONS: 'true'},
    ]
    const cases = envs.flatMap((env) =>
      [false, true].flatMap((noColor) =>
        (['pipes', 'stderr-tty', 'both-tty'] as Mode[]).map((mode) => ({env, noColor, mode})),
      ),
    )
    // The policy, spelled out: off by --no-color, NO_COLOR or FORCE_COLOR=0; forced by FORCE_COLOR=1..3;
    // else on for a terminal, and in a CI whose log renders colour (GitHub Actions).
    const expected = ({env, noColor}: (typeof cases)[number], isTTY: boolean) => {
      if (noColor || env.NO_COLOR || env.FORCE_COLOR === '0') return false
      if (env.FORCE_COLOR) return true
      return isTTY || (!!env.CI && !!env.GITHUB_ACTIONS)
    }
    const failures: string[] = []
    for (let i = 0; i < cases.length; i += 6) {
      await Promise.all(
        cases.slice(i, i + 6).map(async (c) => {
          const args = ['check', ...(c.noColor ? ['--no-color'] : [])]
          const r = await runIn(c.mode, args, ws.src, cleanEnv(c.env))
          const label = `${JSON.stringify(c.env)}${c.noColor ? ' --no-color' : ''} ${c.mode}`
          if (r.exitCode !== 1) failures.push(`${label}: exit ${r.exitCode}\n${r.stdout}${r.stderr}${r.tty}`)
          const streams =
            c.mode === 'pipes'
              ? {stdout: [r.stdout, expected(c, false)], stderr: [r.stderr, expected(c, false)]}
              : c.mode === 'stderr-tty'
                ? {stdout: [r.stdout, expected(c, false)], 'stderr (terminal)': [r.tty, expected(c, true)]}
                : {'stdout+stderr (terminal)': [r.tty, expected(c, true)]}
          for (const [name, [text, colour]] of Object.entries(streams) as [string, [string, boolean]][]) {
            if (!text.includes('bad')) failures.push(`${label}: ${name} lacks the failed check:\n${text}`)
            if (SGR.test(text) !== colour) failures.push(`${label}: ${name} ${colour ? 'has no' : 'has'} colour`)
          }
        }),
      )
    }
    expect(failures).toEqual([])
  })

  it('--help follows it too (oclif)', async () => {
    const ws = makeWorkspace()
    const on = await runIn('both-tty', ['--help'], ws.src, cleanEnv({}))
    const off = await runIn('both-tty', ['--help'], ws.src, cleanEnv({FORCE_COLOR: '0'}))
    expect(on.tty).toMatch(SGR)
    expect(off.tty).toContain('COMMANDS')
    expect(off.tty).not.toMatch(SGR)
  })
})

describe('a CI log you can read', {timeout: 120_000}, () => {
  it('without a terminal each step is printed once, when it ends, with its duration; CI adds timestamps', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const r = await runCli(['deploy'], {cwd: ws.src}) // CI=1, no terminal
    expect(r.exitCode, why(r)).toBe(0)
    const lines = r.stderr.trimEnd().split('\n')
    expect(r.stderr).not.toContain('❯')
    for (const l of lines) expect(l, r.stderr).toMatch(/^\d\d:\d\d:\d\d /)
    const steps = lines.map((l) => l.slice(9)).filter((l) => /^\s*[✔✖↓]/.test(l))
    expect(new Set(steps).size, r.stderr).toBe(steps.length) // none twice
    const step = (title: string) => steps.filter((l) => l.trimStart().startsWith(`✔ ${title}`))
    for (const title of [
      'Preflight',
      'Checks',
      'syntax',
      'Lock the target',
      'Plan release',
      'Backup',
      'Sync',
      'Verify',
    ])
      expect(step(title), `${title}\n${r.stderr}`).toHaveLength(1)
    for (const title of ['Trigger hot reload', 'Confirm release', 'Smoke tests (2)'])
      expect(step(title), `${title}\n${r.stderr}`).toHaveLength(1)
    expect(step('Sync')[0]).toMatch(
      new RegExp(`^✔ Sync 1 added, 1 changed, 0 deleted: \\d+(\\.\\d)? (B|KiB) in 2 files written \\(${DURATION}\\)$`),
    )
    // A check is shown under its group, indented.
    expect(step('Checks')[0]).toMatch(new RegExp(`^✔ Checks \\(${DURATION}\\)$`))
    expect(steps[steps.indexOf(step('Checks')[0]!) + 1]).toMatch(/^ {2}✔ syntax: /)

    ws.setVersion('v3')
    const plain = await runCli(['deploy', '--no-timestamps'], {cwd: ws.src})
    expect(plain.exitCode, why(plain)).toBe(0)
    expect(plain.stderr).toMatch(/^✔ Preflight \(/m)
    expect(plain.stderr).not.toMatch(/^\d\d:\d\d:\d\d /m)
  })

  it('a step still running says so at intervals, with what it waits for; a failed check fails the group', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live, {neverReport: true})
    const cfg = serviceConfig(svc)
    ws.writeConfig({...cfg, reload: {...(cfg.reload as object), timeout: '2s'}})
    ws.setVersion('v2')
    const r = await runCli(['deploy'], {cwd: ws.src, env: {HOTCTL_PROGRESS_INTERVAL: '500'}})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.stderr).toMatch(
      new RegExp(
        `… Confirm release \\d+ is live: waiting for release \\d+: .* \\(${DURATION} of 2s\\) \\(still running, ${DURATION}\\)`,
      ),
    )
    expect(r.stderr).toMatch(/✖ Confirm release \d+ is live \[failed: release \d+ is not live after 2s/)

    ws.writeConfig({...cfg, checks: {ghost: {argv: ['no-such-binary-hotctl']}, fine: 'true'}})
    const c = await runCli(['deploy'], {cwd: ws.src})
    expect(c.exitCode, why(c)).toBe(1)
    expect(c.stderr).toMatch(/✖ Checks \(/)
    expect(c.stderr).not.toMatch(/✔ Checks/)
    expect(c.stderr).toMatch(/ {2}✔ fine: true/)
  })
})

describe('a big sync shows its progress', {timeout: 120_000}, () => {
  it('on a terminal: bytes and files done of those planned, and the rate; in a log at intervals; the end says the bytes', async () => {
    const ws = makeWorkspace()
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(ws.src, `blob${i}.bin`), crypto.randomBytes(100_000))
    ws.writeConfig({target: '../live'})
    const env = {HOTCTL_RSYNC: slowRsync(ws.dir, 1500)}
    const tty = await runIn('both-tty', ['deploy'], ws.src, cleanEnv(env))
    expect(tty.exitCode, tty.tty).toBe(0)
    const plain = stripVTControlCharacters(tty.tty)
    expect(plain).toMatch(/\d+(\.\d)? (B|KiB|MiB) of 3\.8 MiB, \d+ of 41 files, \d+(\.\d)? (B|KiB|MiB)\/s/)
    expect(plain).toMatch(/✔ Sync 41 added, 0 changed, \d+ deleted: 3\.8 MiB in 41 files written/)

    ws.setVersion('v2')
    for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(ws.src, `blob${i}.bin`), crypto.randomBytes(100_000))
    const log = await runCli(['deploy'], {cwd: ws.src, env: {...env, HOTCTL_PROGRESS_INTERVAL: '500'}})
    expect(log.exitCode, why(log)).toBe(0)
    expect(log.stderr).toMatch(
      /… Sync 0 added, 41 changed, 0 deleted: .* of 3\.8 MiB, \d+ of 41 files, .*\/s \(still running/,
    )
    expect(log.stderr).toMatch(/✔ Sync 0 added, 41 changed, 0 deleted: 3\.8 MiB in 41 files written/)
  })
})

describe('the first backup of a big tree shows its progress', {timeout: 180_000}, () => {
  /** 3,000 distinct files (24 MiB) in source and target alike: the first deploy's backup stores them all. */
  function bigWorkspace() {
    const ws = makeWorkspace()
    for (let d = 0; d < 30; d++)
      for (let i = 0; i < 100; i++) {
        const content = crypto.randomBytes(8192)
        for (const root of [ws.src, ws.live]) {
          fs.mkdirSync(path.join(root, `data/d${d}`), {recursive: true})
          fs.writeFileSync(path.join(root, `data/d${d}/f${i}.bin`), content)
        }
      }
    ws.writeConfig({target: '../live'})
    return ws
  }
  const LINE = String.raw`\d+ of \d+ files, \d+(\.\d)? (B|KiB|MiB) of \d+(\.\d)? MiB, \d+(\.\d)? (B|KiB|MiB) stored, \d+(\.\d)? (B|KiB|MiB)\/s`

  it('in a log: files and bytes recorded and stored, the rate and the time left, at intervals', async () => {
    const ws = bigWorkspace()
    const log = await runCli(['deploy'], {cwd: ws.src, env: {HOTCTL_PROGRESS_INTERVAL: '20'}})
    expect(log.exitCode, why(log)).toBe(0)
    expect(log.stderr).toMatch(new RegExp(`… Backup: ${LINE}(, ${DURATION} left)? \\(still running`))
    expect(log.stderr).toMatch(/✔ Backup \d+: 30\d\d files/)
  })

  it('on a terminal: the same line, live', async () => {
    const ws = bigWorkspace()
    const tty = await runIn('both-tty', ['deploy'], ws.src, cleanEnv({}))
    expect(tty.exitCode, tty.tty).toBe(0)
    expect(stripVTControlCharacters(tty.tty)).toMatch(new RegExp(LINE))
  })
})

describe('--json and --events', {timeout: 120_000}, () => {
  it('--json: stdout holds only the JSON, the progress goes to stderr', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json, why(r)).toMatchObject({ok: true, outcome: 'deployed'})
    expect(r.stderr).toMatch(/✔ Sync \d+ added, 1 changed, 0 deleted/)
    expect(r.stderr).toMatch(/✔ Confirm release \d+ is live/)
  })

  it('--events: NDJSON on stderr, a start and an end per step (paired by id) with times and durations', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--events', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.outcome).toBe('deployed')
    const events = r.stderr
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, any>)
    for (const e of events) expect(Date.parse(e.time), JSON.stringify(e)).not.toBeNaN()
    expect(events[0]).toMatchObject({type: 'run-start', command: 'deploy'})
    expect(events.at(-1)).toMatchObject({type: 'run-end', command: 'deploy', exitCode: 0, ok: true})
    const ends = events.filter((e) => e.type === 'step-end')
    const starts = new Map(events.filter((e) => e.type === 'step-start').map((e) => [e.id, e]))
    for (const e of ends) {
      expect(starts.get(e.id), JSON.stringify(e)).toBeDefined()
      expect(typeof e.durationMs).toBe('number')
      expect(Date.parse(e.time)).toBeGreaterThanOrEqual(Date.parse(starts.get(e.id)!.time))
    }
    const sync = ends.find((e) => String(e.step).startsWith('Sync'))
    expect(sync).toMatchObject({result: 'ok', step: expect.stringMatching(/^Sync \d+ added, 1 changed, 0 deleted/)})
    expect(starts.get(sync!.id)!.step).toBe('Sync')
    expect(ends.find((e) => String(e.step).startsWith('syntax'))).toMatchObject({group: ['Checks'], result: 'ok'})
    expect(ends.map((e) => e.result)).not.toContain('failed')
  })
})

describe('check and command output is bounded', {timeout: 120_000}, () => {
  it('a check printing 5 MB: the last lines once, the full output in a log file whose path is printed', async () => {
    const ws = makeWorkspace()
    const big =
      `python3 -c "import sys; sys.stdout.write('x' * 5000000 + '\\n'); ` +
      `sys.stdout.write(''.join('line %d\\n' % i for i in range(50000))); print('LAST-' + 'LINE-MARK'); sys.exit(3)"`
    ws.writeConfig({target: '../live', checks: {big}})
    const r = await runCli(['deploy'], {cwd: ws.src})
    expect(r.exitCode, why(r.stdout.length + r.stderr.length < 100_000 ? r : {stdout: '', stderr: 'huge'})).toBe(1)
    expect(r.stdout.length + r.stderr.length).toBeLessThan(16_384)
    expect(r.stderr.split('LAST-LINE-MARK').length - 1).toBe(1)
    expect(r.stderr).toContain('line 49999')
    expect(r.stderr).not.toContain('line 49970') // only the last 20 lines
    const log = /Full output: big: (\S+\.log)/.exec(r.stderr)?.[1]
    expect(log, r.stderr).toBeDefined()
    expect(path.dirname(log!)).toBe(path.join(ws.stateDir, 'logs'))
    const full = fs.readFileSync(log!, 'utf8')
    expect(full.length).toBeGreaterThan(5_000_000)
    expect(full).toContain('line 0\n')
    expect(full).toContain('LAST-LINE-MARK')

    // Logs do not pile up: the newest 50 are kept.
    const logs = path.join(ws.stateDir, 'logs')
    for (let i = 0; i < 60; i++)
      fs.writeFileSync(path.join(logs, `20000101-0000${String(i).padStart(2, '0')}-1-check-old.log`), 'old')
    const j = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(fs.readdirSync(logs)).toHaveLength(51)
    expect(fs.existsSync(path.join(logs, '20000101-000010-1-check-old.log'))).toBe(false)
    expect(fs.existsSync(path.join(logs, '20000101-000011-1-check-old.log'))).toBe(true)
    expect(j.exitCode).toBe(1)
    expect(j.stdout.length).toBeLessThan(8192)
    expect(j.stderr.length).toBeLessThan(8192)
    expect(j.stdout.split('LAST-LINE-MARK').length - 1).toBe(1)
    expect(j.stderr.split('LAST-LINE-MARK').length - 1).toBe(1)
    expect(j.json.error.checks).toEqual([expect.objectContaining({name: 'big', ok: false, log: expect.any(String)})])

    // `check` changes nothing: its logs go to the temp dir, not the state dir.
    fs.rmSync(path.join(ws.stateDir, 'logs'), {recursive: true, force: true})
    const c = await runCli(['check'], {cwd: ws.src})
    expect(c.exitCode).toBe(1)
    const checkLog = /full output: (\S+\.log)\)/.exec(c.stderr)?.[1]
    expect(checkLog, c.stderr).toMatch(new RegExp(`^${os.tmpdir()}/hotctl-logs/`))
    expect(fs.readFileSync(checkLog!, 'utf8')).toContain('LAST-LINE-MARK')
    fs.rmSync(checkLog!)
    expect(fs.existsSync(path.join(ws.stateDir, 'logs'))).toBe(false)
  })
})

describe('units and numbers agree', {timeout: 120_000}, () => {
  it('status shows the duration the operation printed, and the release a rollback restored; prune frees KiB', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const a = await runCli(['deploy', '--json'], {cwd: ws.src})
    ws.setVersion('v3')
    const b = await runCli(['deploy', '--json'], {cwd: ws.src})
    const back = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect([a.exitCode, b.exitCode, back.exitCode], why(back)).toEqual([0, 0, 0])
    const s = await runCli(['status', '--json'], {cwd: ws.src})
    const recent = s.json.recent as {op: string; id: string; durationMs: number; release?: string}[]
    expect(recent.find((o) => o.id === a.json.release)!.durationMs).toBe(a.json.durationMs)
    expect(recent.find((o) => o.id === b.json.release)!.durationMs).toBe(b.json.durationMs)
    expect(recent[0]).toMatchObject({op: 'rollback', release: a.json.release, durationMs: back.json.durationMs})
    const text = await runCli(['status'], {cwd: ws.src})
    expect(text.stdout).toMatch(
      new RegExp(`rollback +ok +${DURATION}  to release ${a.json.release} \\(snapshot \\d+\\)`),
    )
    const prune = await runCli(['backups', 'prune', '--keep', '1'], {cwd: ws.src})
    expect(prune.exitCode, why(prune)).toBe(0)
    expect(prune.stdout).toMatch(/freed \d+(\.\d)? (B|KiB|MiB)/)
    expect(prune.stdout).not.toContain('bytes')
  })
})

describe('--help', () => {
  it('lists backups once, as a command (not also as a topic)', async () => {
    const ws = makeWorkspace()
    const r = await runCli(['--help'], {cwd: ws.src})
    expect(r.stdout.match(/^ {2}backups\b/gm)).toHaveLength(1)
    expect(r.stdout).not.toContain('TOPICS')
    const sub = await runCli(['backups', '--help'], {cwd: ws.src})
    expect(sub.stdout).toMatch(/backups prune/)
    expect(sub.stdout).toMatch(/backups verify/)
  })
})
