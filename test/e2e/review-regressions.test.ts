/**
 * Regression tests for the review fixes (commit "Review fixes: rsync runs in its own journaled
 * process group ..."). Each test names the behaviour it guards; each fails with that fix reverted.
 */
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {alive, makeWorkspace, MARKER, readMarker, removeWorkspaces, requireBuild, runCli, serviceConfig, startCli, startService, stopAllServices, treeContent, treeHash, waitFor, type Workspace} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms))

// Process groups this file started (hotctl) or that hotctl journaled (rsync): never leaked.
const groups: number[] = []
afterEach(() => {
  for (const pgid of groups.splice(0)) {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {
      /* already gone */
    }
  }
})

/** Live processes whose command line contains every one of `needles` (Linux /proc). */
function processesWith(...needles: string[]): {pid: number; cmdline: string}[] {
  const out: {pid: number; cmdline: string}[] = []
  for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8')
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
      if (state !== 'Z' && needles.every((n) => cmdline.includes(n))) out.push({pid: Number(p), cmdline})
    } catch {
      /* exited meanwhile */
    }
  }
  return out
}

function writeSrc(ws: Workspace, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(ws.src, rel)
    fs.mkdirSync(path.dirname(abs), {recursive: true})
    fs.writeFileSync(abs, content)
  }
}

// ---------------------------------------------------------------------------------------------
// Fix 1: rsync runs in its own process group, journaled as {"event":"child","pgid":..}; the next
// deploy/rollback kills that group (and waits) before restoring anything.

describe('an orphaned rsync of a SIGKILLed hotctl', {timeout: 60_000}, () => {
  /**
   * v2 deployed (release A) with 20 lib files; then a v3 source changing all 20. Returns what the
   * live tree looked like before A (what `rollback` must end with after recovering the kill).
   */
  async function setup(): Promise<{ws: Workspace; v2: string; hashBefore: string}> {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}}))
    const hashBefore = treeHash(ws.live)
    const lib = (v: string) => Object.fromEntries(Array.from({length: 20}, (_, i) => [`lib/m${i}.py`, `# ${v}\nVALUE_${i} = ${JSON.stringify(v.repeat(200))}\n`]))
    writeSrc(ws, lib('v2'))
    ws.setVersion('v2')
    const first = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)
    writeSrc(ws, lib('v3'))
    ws.setVersion('v3')
    return {ws, v2: first.json.release as string, hashBefore}
  }

  /**
   * Deploy v3 through `wrapper` (which holds rsync back ~3 s), SIGKILL only the hotctl process
   * once the journal names rsync's group, then `rollback` at once: the recovery must stop that
   * group before restoring, so nothing writes into the target after the rollback.
   */
  async function killMidSyncThenRollback(ws: Workspace, v2: string, wrapper: string, hashBefore: string): Promise<void> {
    const proc = startCli(['deploy', '--json'], {cwd: ws.src, env: {HOTCTL_RSYNC: wrapper}})
    groups.push(proc.pid!)
    const child = await waitFor('the journal to name the rsync process group', () => ws.journal().find((e) => e.event === 'child' && e.opId !== v2), 20_000)
    const pgid = child.pgid as number
    groups.push(pgid)
    expect(pgid).toBeGreaterThan(0)
    process.kill(proc.pid!, 'SIGKILL') // hotctl only: its rsync group lives on, as after an OOM kill
    await proc
    expect(alive(pgid)).toBe(true) // the wrapper (and so the coming rsync) is still there

    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(rb.json.recovery?.interrupted).toBe(child.opId)
    expect(treeHash(ws.live)).toBe(hashBefore)

    // The orphan's sleep would have ended by now: it must not have written anything.
    await sleep(5000)
    expect(processesWith('--files-from=-', ws.live)).toEqual([])
    const lib = fs.existsSync(path.join(ws.live, 'lib')) ? fs.readdirSync(path.join(ws.live, 'lib')) : []
    expect(lib, 'files written by the orphaned rsync after the rollback').toEqual([])
    expect(treeHash(ws.live)).toBe(hashBefore)
    expect(readMarker(ws.live)).toBeNull()
  }

  it('is stopped by the next rollback (wrapper: `sleep 3` then `exec rsync`, as in the review)', async () => {
    const {ws, v2, hashBefore} = await setup()
    const wrapper = path.join(ws.dir, 'late-rsync.sh')
    fs.writeFileSync(wrapper, '#!/bin/sh\ncase "$*" in *--files-from=-*) sleep 3 ;; esac\nexec rsync "$@"\n', {mode: 0o755})
    await killMidSyncThenRollback(ws, v2, wrapper, hashBefore)
  })

  it('is stopped by the next rollback (wrapper whose every process carries rsync\'s arguments)', async () => {
    const {ws, v2, hashBefore} = await setup()
    const wrapper = path.join(ws.dir, 'late-rsync.sh')
    // perl sleeps in-process, then execs rsync: no helper process without the rsync argv in the group.
    fs.writeFileSync(wrapper, '#!/bin/sh\ncase "$*" in *--files-from=-*) exec /usr/bin/perl -e \'sleep 3; exec {"rsync"} "rsync", @ARGV or die "exec rsync: $!"\' -- "$@" ;; esac\nexec rsync "$@"\n', {mode: 0o755})
    await killMidSyncThenRollback(ws, v2, wrapper, hashBefore)
  })
})

// ---------------------------------------------------------------------------------------------

describe('patterns, leftovers and special files', {timeout: 60_000}, () => {
  // Fix 2: rsync gets anchored patterns (and the no-directory form of `**/`) that agree with
  // hotctl's own matcher: a `config/**/secrets.env` protect covers `config/secrets.env`, and an
  // `exclude: config/local.py` no longer hides `lib/config/local.py`.
  it('protect with `**` keeps config/secrets.env through deploy and rollback; an inner-slash exclude is anchored', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}, protect: ['data/', '.env', 'config/**/secrets.env'], exclude: ['config/local.py']}))
    const LIVE_SECRETS = 'LIVE_SECRET=keep-me\n'
    fs.mkdirSync(path.join(ws.live, 'config', 'prod'), {recursive: true})
    fs.writeFileSync(path.join(ws.live, 'config', 'secrets.env'), LIVE_SECRETS)
    fs.writeFileSync(path.join(ws.live, 'config', 'prod', 'secrets.env'), LIVE_SECRETS)
    writeSrc(ws, {'config/secrets.env': 'FROM_SOURCE=1\n', 'config/prod/secrets.env': 'FROM_SOURCE=1\n', 'config/app.ini': '[app]\n', 'config/local.py': 'LOCAL = 1\n', 'lib/config/local.py': 'LIB = 1\n'})
    ws.setVersion('v2')
    const before = treeHash(ws.live)

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'secrets.env'), 'utf8')).toBe(LIVE_SECRETS)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'prod', 'secrets.env'), 'utf8')).toBe(LIVE_SECRETS)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'app.ini'), 'utf8')).toBe('[app]\n')
    expect(fs.existsSync(path.join(ws.live, 'config', 'local.py'))).toBe(false) // excluded, anchored at the root
    expect(fs.readFileSync(path.join(ws.live, 'lib', 'config', 'local.py'), 'utf8')).toBe('LIB = 1\n') // not excluded

    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'secrets.env'), 'utf8')).toBe(LIVE_SECRETS)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'prod', 'secrets.env'), 'utf8')).toBe(LIVE_SECRETS)
    expect(treeHash(ws.live)).toBe(before)
  })

  // Fix: a directory the deploy added that now holds only excluded leftovers (__pycache__) is
  // removed by the restore, so verify passes: exit 3 (restored), not 4 (needs attention).
  it('a failed deploy that added newmod/ is restored (exit 3) even after the smoke wrote newmod/__pycache__', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const smoke = [{name: 'imports', command: 'if [ -d newmod ]; then mkdir -p newmod/__pycache__ && echo x > newmod/__pycache__/x.cpython-311.pyc && echo "newmod is broken" && exit 1; fi'}]
    ws.writeConfig(serviceConfig(svc, {checks: {}, smoke}))
    writeSrc(ws, {'newmod/__init__.py': '', 'newmod/x.py': 'X = 1\n'})
    ws.setVersion('v2')
    const before = treeHash(ws.live)

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.outcome).toBe('restored')
    expect(r.json.restore.ok).toBe(true)
    expect(fs.existsSync(path.join(ws.live, 'newmod'))).toBe(false)
    expect(treeHash(ws.live)).toBe(before)
    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(0)
    expect(st.json.needsAttention).toBe(false)
  })

  // Fix: the plan only deletes what the walk manages: a FIFO (or socket) in the live tree is
  // neither deleted nor a reason to fail.
  it('a FIFO in the live tree survives a deploy of another change', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}}))
    const fifo = path.join(ws.live, 'app', 'control.fifo')
    const mk = await import('node:child_process').then((cp) => cp.spawnSync('mkfifo', [fifo]))
    expect(mk.status).toBe(0)
    ws.setVersion('v2')

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.changes.deleted).not.toContain('app/control.fifo')
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true)
    expect(await svc.hello()).toBe('hello v2')
  })

  // Fix: a backup records the protect list it was taken with; a restore leaves those paths alone
  // even after `protect` lost them.
  it('rollback after removing `data/` from protect leaves live data/ byte-identical', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}, protect: ['data/', '.env']}))
    const data = () => treeContent(path.join(ws.live, 'data'))
    const dataBefore = data()
    expect(Object.keys(dataBefore)).toContain('app.db')
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)

    ws.writeConfig(serviceConfig(svc, {checks: {}, protect: ['.env']}))
    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(fs.existsSync(path.join(ws.live, 'data'))).toBe(true)
    expect(data()).toEqual(dataBefore)
    expect(await svc.hello()).toBe('hello v1')
  })

  // Fix: a stateDir inside the source would be deployed into the target with every backup.
  it('a stateDir inside the source is refused with exit 2 naming stateDir', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}, stateDir: './.hotctl-state'}))
    ws.setVersion('v2')
    const before = treeHash(ws.live)
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.json.error.message).toContain('stateDir')
    expect(fs.existsSync(path.join(ws.src, '.hotctl-state'))).toBe(false)
    expect(treeHash(ws.live)).toBe(before)
  })
})

// ---------------------------------------------------------------------------------------------

describe('restart, env and secrets', {timeout: 60_000}, () => {
  // Fix: --no-restart is honoured by the restore too (the forward attempt already honoured it).
  it('--no-restart never runs reload.restart, neither forward nor while restoring', async () => {
    const ws = makeWorkspace()
    let svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}}))
    ws.setVersion('v2')
    const first = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)

    // Now a service that never reports any release: confirming v3 (and restoring v2) both time out.
    await svc.stop()
    svc = await startService(ws.live, {neverReport: true})
    const restarted = path.join(ws.dir, 'restarted')
    const cfg = serviceConfig(svc, {checks: {}})
    Object.assign(cfg.reload as Record<string, unknown>, {timeout: '1s', restart: {command: `touch ${restarted}`}})
    ws.writeConfig(cfg)
    ws.setVersion('v3')
    const r = await runCli(['deploy', '--no-restart', '--json'], {cwd: ws.src})
    expect([3, 4], why(r)).toContain(r.exitCode)
    expect(r.json.restore, why(r)).toBeDefined()
    expect(r.json.restore.proof.restarted).toBe(false)
    expect(fs.existsSync(restarted), 'reload.restart ran despite --no-restart').toBe(false)
  })

  // Fix: env values are never pasted into shell commands (the shell expands ${VAR} itself);
  // {argv} commands still get the value substituted.
  it('a ${VAR} holding shell syntax is not executed by a shell check; argv checks get the value', async () => {
    const ws = makeWorkspace()
    const pwned = path.join(ws.dir, 'pwned')
    const shellOut = path.join(ws.dir, 'shell-out.txt')
    const argvOut = path.join(ws.dir, 'argv-out.txt')
    const BRANCH = `x"; touch ${pwned}; echo "`
    ws.writeConfig({
      target: '../live',
      checks: {
        greet: `echo "branch is \${BRANCH}" > ${shellOut}`,
        viaArgv: {argv: ['node', '-e', 'require("fs").writeFileSync(process.argv[1], process.argv[2])', argvOut, '${BRANCH}']},
      },
    })
    const r = await runCli(['check', '--json'], {cwd: ws.src, env: {BRANCH}})
    expect(r.exitCode, why(r)).toBe(0)
    expect(fs.existsSync(pwned), 'the env value ran as shell code').toBe(false)
    expect(fs.readFileSync(shellOut, 'utf8')).toBe(`branch is ${BRANCH}\n`)
    expect(fs.readFileSync(argvOut, 'utf8')).toBe(BRANCH)
  })

  // Same guard, for a check whose *name* is "argv": the name must not make a shell string
  // count as an argv element (interpolate.ts decides by `path.includes('argv')`).
  it('a shell check named "argv" does not get env values pasted in either', async () => {
    const ws = makeWorkspace()
    const pwned = path.join(ws.dir, 'pwned')
    const BRANCH = `x"; touch ${pwned}; echo "`
    ws.writeConfig({target: '../live', checks: {argv: `echo "branch is \${BRANCH}" > /dev/null`}})
    const r = await runCli(['check', '--json'], {cwd: ws.src, env: {BRANCH}})
    expect(r.exitCode, why(r)).toBe(0)
    expect(fs.existsSync(pwned), 'the env value ran as shell code').toBe(false)
  })

  // Fixes: secrets masked in task output (the simple renderer under CI prints it); a long numeric
  // secret is masked even though it contains 14 digits (which look like an id); a secret equal to
  // one of hotctl's own words ("deploy") does not rewrite the journal's own fields.
  it('secrets stay out of task output, long numeric secrets are masked, and a secret "deploy" keeps the journal intact', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const env = {API_TOKEN: 's3cr3t-value-123', ACCOUNT_NO: '12345678901234567890', APPUSER: 'deploy', CI: '1'}
    const cfg = serviceConfig(svc, {checks: {}})
    ;(cfg.smoke as unknown[]).push({name: 'token', url: svc.url('/health?token=${API_TOKEN}&account=${ACCOUNT_NO}'), headers: {'X-User': '${APPUSER}'}, expect: {status: 404}, retries: 0})
    ws.writeConfig(cfg)
    const outputs: {stdout: string; stderr: string}[] = []

    ws.setVersion('v2')
    const d1 = await runCli(['deploy'], {cwd: ws.src, env})
    outputs.push(d1)
    expect(d1.exitCode, why(d1)).toBe(0)
    expect(d1.stderr + d1.stdout).toContain('token=***') // the smoke line was printed, masked
    ws.setVersion('v3')
    const d2 = await runCli(['deploy', '--json'], {cwd: ws.src, env})
    outputs.push(d2)
    expect(d2.exitCode, why(d2)).toBe(0)

    // A smoke failing for v4 puts its output into the error: the 20-digit number must be masked there too.
    ;(cfg.smoke as unknown[]).push({name: 'acct', command: 'if grep -q v4 app/handlers.py; then echo "account ${ACCOUNT_NO} rejected"; exit 1; fi'})
    ws.writeConfig(cfg)
    ws.setVersion('v4')
    const d3 = await runCli(['deploy', '--json'], {cwd: ws.src, env})
    outputs.push(d3)
    expect(d3.exitCode, why(d3)).toBe(3)
    expect(d3.stdout).toContain('account *** rejected') // the number did reach the output, masked
    const d3h = await runCli(['deploy'], {cwd: ws.src, env})
    outputs.push(d3h)
    expect(d3h.exitCode, why(d3h)).toBe(3)

    for (const o of outputs) {
      for (const text of [o.stdout, o.stderr]) {
        expect(text).not.toContain(env.API_TOKEN)
        expect(text).not.toContain(env.ACCOUNT_NO)
      }
    }
    const journal = fs.readFileSync(path.join(ws.stateDir, 'journal.jsonl'), 'utf8')
    expect(journal).toContain('"op":"deploy"')
    expect(journal).not.toContain(env.API_TOKEN)
    expect(journal).not.toContain(env.ACCOUNT_NO)
    const st = await runCli(['status', '--json'], {cwd: ws.src, env})
    expect(st.json.stats.deploys).toBe(4)
    expect(st.json.stats.succeeded).toBe(2)
    expect(st.json.recent[0].op).toBe('deploy')
    expect(readMarker(ws.live)?.id).toBe(d2.json.release)
    expect(fs.existsSync(path.join(ws.live, MARKER))).toBe(true)
  })
})
