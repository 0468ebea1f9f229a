import fs from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {spawnSync} from 'node:child_process'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  BIN,
  makeWorkspace,
  readMarker,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startService,
  stopAllServices,
  treeHash,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

/** A status endpoint that answers whatever the test says (HTML, JSON without the version field). */
async function fakeStatus(body: string, contentType: string): Promise<{url: string; close: () => void}> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, {'content-type': contentType})
    res.end(body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const {port} = server.address() as AddressInfo
  return {url: `http://127.0.0.1:${port}/status`, close: () => server.close()}
}

/** Everything a refused deploy must leave alone: the live tree, and no backup or journal entry. */
function untouched(ws: ReturnType<typeof makeWorkspace>, before: string): void {
  expect(treeHash(ws.live)).toBe(before)
  expect(ws.backupFiles()).toEqual([])
  expect(ws.journal()).toEqual([])
}

describe('deploy and rollback run the preflight first', {timeout: 60_000}, () => {
  it('a missing target is refused (exit 1, nothing created) unless --create-target is given', async () => {
    const ws = makeWorkspace()
    const missing = path.join(ws.dir, 'new', 'app')
    ws.writeConfig({target: '../new/app'})
    const r = await runCli(['deploy'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toMatch(/preflight failed: target: .*new\/app does not exist/)
    expect(r.stderr).toContain('--create-target')
    expect(fs.existsSync(missing)).toBe(false)
    expect(fs.existsSync(path.join(ws.dir, 'new'))).toBe(false)

    const ok = await runCli(['deploy', '--create-target', '--json'], {cwd: ws.src})
    expect(ok.exitCode, why(ok)).toBe(0)
    expect(fs.readFileSync(path.join(missing, 'app/handlers.py'), 'utf8')).toBe(
      fs.readFileSync(path.join(ws.src, 'app/handlers.py'), 'utf8'),
    )
    expect(readMarker(missing)?.id).toBe(ok.json.release)
  })

  it('a state dir on another filesystem is refused before anything is touched', async () => {
    const ws = makeWorkspace()
    const other = fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/hotctl-state-') : ''
    if (!other || fs.statSync(other).dev === fs.statSync(ws.live).dev)
      return void console.warn('skipped: /dev/shm is not another filesystem here')
    try {
      ws.writeConfig({target: '../live', stateDir: path.join(other, 'state')})
      const before = treeHash(ws.live)
      const r = await runCli(['deploy'], {cwd: ws.src})
      expect(r.exitCode, why(r)).toBe(1)
      expect(r.stderr).toMatch(/same filesystem: .* is on another filesystem than/)
      expect(r.stderr).toContain('stateDir')
      expect(treeHash(ws.live)).toBe(before)
      expect(fs.existsSync(path.join(other, 'state'))).toBe(false)
    } finally {
      fs.rmSync(other, {recursive: true, force: true})
    }
  })

  it('a read-only target is refused by the preflight, not found by a failing rsync', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    ws.setVersion('v2')
    const before = treeHash(ws.live)
    let r
    if (process.getuid?.() === 0) {
      // root writes through permission bits: make the target a read-only mount in a private mount namespace.
      const script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && cd "$2" && exec node "$3" deploy'
      const p = spawnSync('unshare', ['-m', '--', 'sh', '-c', script, 'sh', ws.live, ws.src, BIN], {
        encoding: 'utf8',
        env: {...process.env, CI: '1', NO_COLOR: '1'},
      })
      if (p.error || /unshare: /.test(p.stderr))
        return void console.warn(`skipped: no private mount namespace here (${p.stderr})`)
      r = {exitCode: p.status ?? undefined, stdout: p.stdout, stderr: p.stderr}
    } else {
      fs.chmodSync(ws.live, 0o555)
      try {
        r = await runCli(['deploy'], {cwd: ws.src})
      } finally {
        fs.chmodSync(ws.live, 0o755)
      }
    }
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toMatch(/preflight failed: target: .*(read-only filesystem|is not writable)/)
    untouched(ws, before)
  })

  it('a missing rsync is named (also by check, which honours HOTCTL_RSYNC)', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    ws.setVersion('v2')
    const before = treeHash(ws.live)
    const env = {HOTCTL_RSYNC: path.join(ws.dir, 'no-such-rsync')}
    const r = await runCli(['deploy'], {cwd: ws.src, env})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain('no-such-rsync (from HOTCTL_RSYNC) cannot be run')
    expect(r.stderr).not.toContain('exit undefined')
    untouched(ws, before)

    const c = await runCli(['check', '--json'], {cwd: ws.src, env})
    expect(c.exitCode, why(c)).toBe(1)
    const rsync = c.json.preflight.find((p: {name: string}) => p.name === 'rsync')
    expect(rsync.ok).toBe(false)
    expect(rsync.detail).toContain('no-such-rsync')

    // An rsync older than 3.1 is refused too.
    const old = path.join(ws.dir, 'old-rsync')
    fs.writeFileSync(old, '#!/bin/sh\necho "rsync  version 2.6.9  protocol version 29"\n', {mode: 0o755})
    const o = await runCli(['deploy'], {cwd: ws.src, env: {HOTCTL_RSYNC: old}})
    expect(o.exitCode, why(o)).toBe(1)
    expect(o.stderr).toContain('is version 2.6.9; hotctl needs 3.1 or newer')
  })

  it('rollback runs the same preflight (a missing rsync: exit 1, nothing restored)', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    ws.setVersion('v2')
    expect((await runCli(['deploy'], {cwd: ws.src})).exitCode).toBe(0)
    const before = treeHash(ws.live)
    const journal = ws.journal().length
    const r = await runCli(['rollback'], {cwd: ws.src, env: {HOTCTL_RSYNC: '/nonexistent/rsync'}})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain('preflight failed: rsync')
    expect(treeHash(ws.live)).toBe(before)
    expect(ws.journal().length).toBe(journal)
  })
})

describe('the status URL is asked once before anything is touched', {timeout: 60_000}, () => {
  it('HTML instead of JSON: exit 1 saying so', async () => {
    const ws = makeWorkspace()
    const fake = await fakeStatus(
      '<!doctype html><html><head><title>Login</title></head><body>sign in</body></html>',
      'text/html',
    )
    try {
      ws.writeConfig({target: '../live', reload: {status: {url: fake.url}, timeout: '3s'}})
      ws.setVersion('v2')
      const before = treeHash(ws.live)
      const r = await runCli(['deploy'], {cwd: ws.src})
      expect(r.exitCode, why(r)).toBe(1)
      expect(r.stderr).toContain('answered HTML, not JSON')
      expect(r.stderr).toContain('reload.status.url')
      untouched(ws, before)
    } finally {
      fake.close()
    }
  })

  it('JSON without the configured version field: exit 1 naming the field and what came back', async () => {
    const ws = makeWorkspace()
    const fake = await fakeStatus(JSON.stringify({status: 'ok', build: {rev: 'abc'}}), 'application/json')
    try {
      ws.writeConfig({target: '../live', reload: {status: {url: fake.url, version: 'data.release'}, timeout: '3s'}})
      ws.setVersion('v2')
      const before = treeHash(ws.live)
      const r = await runCli(['deploy', '--json'], {cwd: ws.src})
      expect(r.exitCode, why(r)).toBe(1)
      expect(r.json.error.message).toContain('no field `data.release` in {"status":"ok","build":{"rev":"abc"}}')
      untouched(ws, before)
      const dry = await runCli(['deploy', '--dry-run'], {cwd: ws.src})
      expect(dry.exitCode, why(dry)).toBe(1)
    } finally {
      fake.close()
    }
  })

  it('a real service reporting no release yet (version null) passes', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    const c = await runCli(['check', '--json'], {cwd: ws.src})
    expect(c.exitCode, why(c)).toBe(0)
    const probe = c.json.preflight.find((p: {name: string}) => p.name.startsWith('status of'))
    expect(probe.detail).toContain('no release yet')
  })
})

describe('state files of any shape', {timeout: 60_000}, () => {
  it('journal lines holding null, arrays or garbage are skipped with a warning naming the line', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    ws.setVersion('v2')
    expect((await runCli(['deploy'], {cwd: ws.src})).exitCode).toBe(0)
    const journal = path.join(ws.stateDir, 'journal.jsonl')
    const lines = fs.readFileSync(journal, 'utf8').trimEnd().split('\n').length
    fs.appendFileSync(journal, 'null\n[1,2]\n{"event":"child","opId":"x","t":"t","pgid":0}\n{"event":"start"\n')
    for (const file of ['cache/target-hashes.json']) fs.writeFileSync(path.join(ws.stateDir, file), 'null')

    const s = await runCli(['status'], {cwd: ws.src})
    expect(s.exitCode, why(s)).toBe(0)
    expect(s.stderr).toContain(`journal.jsonl line ${lines + 1} skipped (not an event object: null)`)
    expect(s.stderr).toContain(`line ${lines + 2} skipped`)
    expect(s.stderr).toContain(`line ${lines + 3} skipped (pgid is not a process group id)`)
    expect(s.stderr).toContain(`line ${lines + 4} skipped (not JSON)`)
    expect(s.stderr).not.toContain('Cannot read properties')

    ws.setVersion('v3')
    const d = await runCli(['deploy'], {cwd: ws.src})
    expect(d.exitCode, why(d)).toBe(0)
    expect(fs.readFileSync(path.join(ws.live, 'app/handlers.py'), 'utf8')).toContain('v3')
    const rb = await runCli(['rollback'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(fs.readFileSync(path.join(ws.live, 'app/handlers.py'), 'utf8')).toContain('v2')
  })

  it('a lock file holding null is an unreadable lock, not a crash', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    fs.mkdirSync(ws.stateDir, {recursive: true})
    fs.writeFileSync(path.join(ws.stateDir, 'lock'), 'null')
    const s = await runCli(['status'], {cwd: ws.src})
    expect(s.exitCode, why(s)).toBe(0)
    // Fresh and unreadable: someone may be writing it right now.
    const d = await runCli(['deploy'], {cwd: ws.src})
    expect(d.exitCode, why(d)).toBe(5)
    // Old and unreadable: stale, cleared with a message.
    const old = new Date(Date.now() - 60_000)
    fs.utimesSync(path.join(ws.stateDir, 'lock'), old, old)
    const d2 = await runCli(['deploy'], {cwd: ws.src})
    expect(d2.exitCode, why(d2)).toBe(0)
    expect(d2.stderr).toContain('cleared a stale lock')
  })
})
