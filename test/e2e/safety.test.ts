import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  alive,
  deadPid,
  makeWorkspace,
  MARKER,
  readMarker,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  slowRsync,
  startCli,
  startService,
  stopAllServices,
  treeContent,
  treeHash,
  waitFor,
  writeFiles,
  type Workspace,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

const running: {pid?: number}[] = []
afterEach(() => {
  // Never leak a hotctl (or its rsync) started in the background: kill its process group.
  for (const p of running.splice(0)) {
    if (p.pid && alive(p.pid)) {
      try {
        process.kill(-p.pid, 'SIGKILL')
      } catch {
        /* already gone */
      }
    }
  }
})

function writeLock(ws: Workspace, owner: {pid: number; host?: string; command?: string}): string {
  fs.mkdirSync(ws.stateDir, {recursive: true})
  const file = path.join(ws.stateDir, 'lock')
  const host = owner.host ?? os.hostname()
  const command = owner.command ?? 'deploy (e2e test)'
  fs.writeFileSync(
    file,
    JSON.stringify({pid: owner.pid, host, user: os.userInfo().username, command, started: new Date().toISOString()}),
  )
  return file
}

/** The deploy op (by journal) other than `not`, once its sync phase has started. */
function syncingOp(ws: Workspace, not: string[]): string | undefined {
  const events = ws.journal()
  const start = events.find((e) => e.event === 'start' && e.op === 'deploy' && !not.includes(e.opId as string))
  if (!start) return undefined
  return events.some((e) => e.event === 'phase' && e.opId === start.opId && e.phase === 'sync')
    ? (start.opId as string)
    : undefined
}

/** v2 deployed and live; then a v3 source with a big new file, for a sync that takes a while. */
async function deployedV2WithBigV3(): Promise<{
  ws: Workspace
  svc: Awaited<ReturnType<typeof startService>>
  v2: string
  hashV2: string
  wrapper: string
}> {
  const ws = makeWorkspace()
  const svc = await startService(ws.live)
  ws.writeConfig(serviceConfig(svc, {checks: {}}))
  ws.setVersion('v2')
  const first = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(first.exitCode, why(first)).toBe(0)
  const v2 = first.json.release as string
  ws.setVersion('v3')
  fs.writeFileSync(path.join(ws.src, 'static', 'big.bin'), crypto.randomBytes(3 * 1024 * 1024))
  return {ws, svc, v2, hashV2: treeHash(ws.live), wrapper: slowRsync(ws.dir, 200)}
}

describe('locking', {timeout: 60_000}, () => {
  it('a lock held by a live process exits 5 naming the owner pid; the target is untouched', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const lock = writeLock(ws, {pid: process.pid, command: 'deploy --held-by-test'})
    const lockText = fs.readFileSync(lock, 'utf8')
    const before = treeHash(ws.live)

    const r = await runCli(['deploy'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(5)
    expect(r.stderr).toContain(`pid ${process.pid}`)
    expect(treeHash(ws.live)).toBe(before)
    expect(fs.readFileSync(lock, 'utf8')).toBe(lockText) // not taken over, not removed
    expect(ws.backupFiles()).toEqual([])

    const j = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(j.exitCode).toBe(5)
    expect(j.json.ok).toBe(false)
    expect(j.json.exitCode).toBe(5)
    expect(j.json.error.message).toContain(`pid ${process.pid}`)

    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(5)

    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.json.lock.pid).toBe(process.pid)
    expect(st.json.lock.stale).toBe(false)
    expect(treeHash(ws.live)).toBe(before)
  })

  it('a lock left by a dead process is cleared with a message and the deploy succeeds', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const dead = await deadPid()
    expect(alive(dead)).toBe(false)
    const lock = writeLock(ws, {pid: dead})

    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.json.lock.pid).toBe(dead)
    expect(st.json.lock.stale).toBe(true)

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.outcome).toBe('deployed')
    expect(r.stderr).toMatch(/stale lock/)
    expect(r.stderr).toContain(`pid ${dead}`)
    expect(fs.existsSync(lock)).toBe(false)
    expect(await svc.hello()).toBe('hello v2')
  })
})

describe('interrupts', {timeout: 90_000}, () => {
  it('SIGTERM while the checks run exits 130 before touching anything', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    // The check says when it runs: a fixed delay raced hotctl's start on a loaded machine.
    const started = path.join(ws.dir, 'check-started')
    ws.writeConfig(serviceConfig(svc, {checks: {slow: `touch '${started}'; echo checking; sleep 12`}}))
    ws.setVersion('v2')
    const before = treeHash(ws.live)
    const proc = startCli(['deploy', '--json'], {cwd: ws.src})
    running.push(proc)
    await waitFor('the check to start', () => fs.existsSync(started) || undefined, 30_000)
    expect(proc.exitCode ?? null).toBeNull()
    const t = Date.now()
    process.kill(proc.pid!, 'SIGTERM')
    const r = await proc
    expect(Date.now() - t).toBeLessThan(8_000) // the check was stopped, not waited for
    expect(r.exitCode, `${String(r.stdout)}\n${String(r.stderr)}`).toBe(130)
    expect(JSON.parse(String(r.stdout).trim()).exitCode).toBe(130)
    expect(treeHash(ws.live)).toBe(before)
    expect(ws.backupFiles()).toEqual([])
    expect(fs.existsSync(path.join(ws.stateDir, 'lock'))).toBe(false)
    expect(await svc.hello()).toBe('hello v1')
  })

  it('SIGINT mid-sync exits 130 and restores the target; a concurrent deploy meanwhile gets exit 5', async () => {
    const {ws, svc, v2, hashV2, wrapper} = await deployedV2WithBigV3()
    const proc = startCli(['deploy', '--json'], {cwd: ws.src, env: {HOTCTL_RSYNC: wrapper}})
    running.push(proc)
    const opId = await waitFor('the deploy to reach the sync phase', () => syncingOp(ws, [v2]), 20_000)

    // While it holds the lock: a second deploy is refused, naming the holder.
    const other = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(other.exitCode, why(other)).toBe(5)
    expect(other.json.error.message).toContain(`pid ${proc.pid}`)
    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.json.lock.pid).toBe(proc.pid)
    expect(st.json.interrupted).toBeNull() // running, not interrupted
    expect(proc.exitCode ?? null).toBeNull() // still syncing

    process.kill(proc.pid!, 'SIGINT')
    const r = await proc
    const stdout = String(r.stdout)
    expect(r.exitCode, `${stdout}\n${String(r.stderr)}`).toBe(130)
    const out = JSON.parse(stdout.trim())
    expect(out.outcome).toBe('interrupted')
    expect(out.restore?.ok).toBe(true)

    expect(treeHash(ws.live)).toBe(hashV2)
    expect(readMarker(ws.live)?.id).toBe(v2)
    expect((await svc.status()).version).toBe(v2)
    expect(await svc.hello()).toBe('hello v2')
    expect(fs.existsSync(path.join(ws.stateDir, 'lock'))).toBe(false)

    const end = ws.journal().find((e) => e.event === 'end' && e.opId === opId)
    expect(end, JSON.stringify(ws.journal())).toBeDefined()
    expect(end!.result).toBe('interrupted')
    expect(end!.exitCode).toBe(130)
    const after = await runCli(['status', '--json'], {cwd: ws.src})
    expect(after.json.interrupted).toBeNull()
    expect(after.json.lock).toBeNull()
    // Nothing keeps writing after hotctl exited (no orphaned rsync).
    await new Promise((res) => setTimeout(res, 1000))
    expect(treeHash(ws.live)).toBe(hashV2)
  })

  it('after SIGKILL mid-sync, the next deploy restores the interrupted backup first, then deploys consistently', async () => {
    const {ws, svc, v2, wrapper} = await deployedV2WithBigV3()
    const proc = startCli(['deploy'], {cwd: ws.src, env: {HOTCTL_RSYNC: wrapper}})
    running.push(proc)
    const opId = await waitFor('the deploy to reach the sync phase', () => syncingOp(ws, [v2]), 20_000)
    await new Promise((res) => setTimeout(res, 300)) // let rsync write part of the file
    process.kill(-proc.pid!, 'SIGKILL') // hotctl and its rsync, as a lost machine would
    const killed = await proc
    expect(killed.signal).toBe('SIGKILL')
    expect(fs.existsSync(path.join(ws.stateDir, 'lock'))).toBe(true) // left behind by the dead process

    // Half-synced until the next deploy/rollback: status says the target needs attention.
    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(4)
    expect(st.json.needsAttention).toBe(true)
    expect(st.json.interrupted?.id).toBe(opId)
    expect(st.json.interrupted?.lastPhase).toBe('sync')

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.stderr).toMatch(/stale lock/)
    expect(r.stderr).toContain(`restored backup ${opId} of the interrupted deploy`)
    expect(r.json.recovery?.interrupted).toBe(opId)
    expect(r.json.outcome).toBe('deployed')
    const release = r.json.release as string
    expect(release > opId).toBe(true)

    // Consistent: exactly the source plus the marker and the protected live-only files.
    const live = treeContent(ws.live, (p) => p === MARKER || p === '.env' || p === 'data' || p.startsWith('data/'))
    expect(live).toEqual(treeContent(ws.src))
    expect(readMarker(ws.live)?.id).toBe(release)
    expect((await svc.status()).version).toBe(release)
    expect(await svc.hello()).toBe('hello v3')

    const after = await runCli(['status', '--json'], {cwd: ws.src})
    expect(after.json.interrupted).toBeNull()
    expect(after.json.lock).toBeNull()
    const killedOp = after.json.recent.find((o: {id: string}) => o.id === opId)
    expect(killedOp?.result).toBe('interrupted')
    expect(after.json.recent[0].id).toBe(release)
    expect(after.json.recent[0].result).toBe('ok')
  })

  it('after SIGKILL while confirming (target fully synced), the next deploy of the same source still recovers first', async () => {
    const ws = makeWorkspace()
    // Config outside the source, so changing service ports does not change what is deployed.
    const cfgFile = path.join(ws.dir, 'hotctl.yaml')
    const config = (svc: Awaited<ReturnType<typeof startService>>, timeout: string) => {
      const c = serviceConfig(svc, {source: './src', target: './live', checks: {}})
      ;(c.reload as Record<string, unknown>).timeout = timeout
      ws.writeConfig(c, cfgFile)
    }
    const args = (...a: string[]) => [...a, '--config', cfgFile]
    let svc = await startService(ws.live)
    config(svc, '5s')
    ws.setVersion('v2')
    const first = await runCli(args('deploy', '--json'), {cwd: ws.dir})
    expect(first.exitCode, why(first)).toBe(0)
    const v2 = first.json.release as string
    const hashV2 = treeHash(ws.live)

    // A service that never confirms: the deploy of v3 sits in its confirm step; kill it there.
    await svc.stop()
    svc = await startService(ws.live, {neverReport: true})
    config(svc, '30s')
    ws.setVersion('v3')
    const proc = startCli(args('deploy'), {cwd: ws.dir})
    running.push(proc)
    const opId = await waitFor('the deploy to reach the reload phase', () => {
      const ev = ws.journal()
      const start = ev.find((e) => e.event === 'start' && e.op === 'deploy' && e.opId !== v2)
      const reloading = start && ev.some((e) => e.event === 'phase' && e.opId === start.opId && e.phase === 'reload')
      return reloading ? (start.opId as string) : undefined
    })
    await new Promise((res) => setTimeout(res, 500))
    process.kill(-proc.pid!, 'SIGKILL')
    await proc
    expect(readMarker(ws.live)?.id).toBe(opId) // v3 is in place, never proven live
    expect(treeHash(ws.live)).not.toBe(hashV2)

    await svc.stop()
    svc = await startService(ws.live)
    config(svc, '5s')
    const st = await runCli(args('status', '--json'), {cwd: ws.dir})
    expect(st.json.interrupted?.id).toBe(opId)

    const r = await runCli(args('deploy', '--json'), {cwd: ws.dir})
    expect(r.exitCode, why(r)).toBe(0)
    // Expected: the interrupted deploy is recovered (its backup restored), then v3 deployed and proven.
    expect(r.stderr).toContain(`restored backup ${opId} of the interrupted deploy`)
    expect(r.json.outcome).toBe('deployed')
    expect(r.json.release).not.toBe(opId)
    expect((await svc.status()).version).toBe(r.json.release)
    const after = await runCli(args('status', '--json'), {cwd: ws.dir})
    expect(after.json.interrupted).toBeNull()
  })
})

// rsync runs in its own process group, journaled as {"event":"child","pgid":..}; the next deploy or
// rollback kills that group (and waits) before restoring anything.

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms))

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

describe('an orphaned rsync of a SIGKILLed hotctl', {timeout: 60_000}, () => {
  // Process groups these tests started (hotctl) or that hotctl journaled (rsync): never leaked.
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

  /**
   * v2 deployed (release A) with 20 lib files; then a v3 source changing all 20. Returns what the
   * live tree looked like before A (what `rollback` must end with after recovering the kill).
   */
  async function setup(): Promise<{ws: Workspace; v2: string; hashBefore: string}> {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}}))
    const hashBefore = treeHash(ws.live)
    const lib = (v: string) =>
      Object.fromEntries(
        Array.from({length: 20}, (_, i) => [`lib/m${i}.py`, `# ${v}\nVALUE_${i} = ${JSON.stringify(v.repeat(200))}\n`]),
      )
    writeFiles(ws.src, lib('v2'))
    ws.setVersion('v2')
    const first = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)
    writeFiles(ws.src, lib('v3'))
    ws.setVersion('v3')
    return {ws, v2: first.json.release as string, hashBefore}
  }

  /**
   * Deploy v3 through `wrapper` (which holds rsync back ~3 s), SIGKILL only the hotctl process
   * once the journal names rsync's group, then `rollback` at once: the recovery must stop that
   * group before restoring, so nothing writes into the target after the rollback.
   */
  async function killMidSyncThenRollback(
    ws: Workspace,
    v2: string,
    wrapper: string,
    hashBefore: string,
  ): Promise<void> {
    const proc = startCli(['deploy', '--json'], {cwd: ws.src, env: {HOTCTL_RSYNC: wrapper}})
    groups.push(proc.pid!)
    const rsyncGroup = () => ws.journal().find((e) => e.event === 'child' && e.opId !== v2)
    const child = await waitFor('the journal to name the rsync process group', rsyncGroup, 20_000)
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

  it('is stopped by the next rollback (wrapper: `sleep 3` then `exec rsync`)', async () => {
    const {ws, v2, hashBefore} = await setup()
    const wrapper = path.join(ws.dir, 'late-rsync.sh')
    fs.writeFileSync(wrapper, '#!/bin/sh\ncase "$*" in *--files-from=-*) sleep 3 ;; esac\nexec rsync "$@"\n', {
      mode: 0o755,
    })
    await killMidSyncThenRollback(ws, v2, wrapper, hashBefore)
  })

  it("is stopped by the next rollback (wrapper whose every process carries rsync's arguments)", async () => {
    const {ws, v2, hashBefore} = await setup()
    const wrapper = path.join(ws.dir, 'late-rsync.sh')
    // perl sleeps in-process, then execs rsync: no helper process without the rsync argv in the group.
    const perl = '/usr/bin/perl -e \'sleep 3; exec {"rsync"} "rsync", @ARGV or die "exec rsync: $!"\' -- "$@"'
    fs.writeFileSync(wrapper, `#!/bin/sh\ncase "$*" in *--files-from=-*) exec ${perl} ;; esac\nexec rsync "$@"\n`, {
      mode: 0o755,
    })
    await killMidSyncThenRollback(ws, v2, wrapper, hashBefore)
  })
})
