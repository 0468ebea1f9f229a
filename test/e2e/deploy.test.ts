import fs from 'node:fs'
import path from 'node:path'
import {spawnSync} from 'node:child_process'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  inodes,
  LIVE_DB,
  LIVE_ENV,
  makeWorkspace,
  MARKER,
  readMarker,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startService,
  stopAllServices,
  treeContent,
  treeHash,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

describe('deploy', {timeout: 60_000}, () => {
  it('deploys new code that the running service answers with, and records the release and its backup', async () => {
    const ws = makeWorkspace({git: true})
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    ws.gitCommit('v2')
    expect(await svc.hello()).toBe('hello v1')
    expect((await svc.status()).version).toBeNull()

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json, why(r)).toBeDefined()
    expect(r.json.ok).toBe(true)
    expect(r.json.outcome).toBe('deployed')
    const release = r.json.release as string
    expect(release).toMatch(/^\d{14}$/)
    expect(r.json.changes.changed).toEqual(['app/handlers.py'])
    expect(r.json.changes.added).toContain('hotctl.config.yaml')
    expect(r.json.changes.deleted).toEqual([])

    // The marker names the release and the git commit.
    const marker = readMarker(ws.live)
    expect(marker?.id).toBe(release)
    const head = spawnSync('git', ['-C', ws.src, 'rev-parse', 'HEAD'], {encoding: 'utf8'}).stdout.trim()
    expect(marker?.gitSha).toBe(head)

    // The running service (same pid) answers with the new code and reports the release.
    expect(await svc.hello()).toBe('hello v2')
    expect((await svc.status()).version).toBe(release)
    expect((await svc.calc(20, 22)).body).toEqual({success: true, result: 42})

    // The live tree is the source (minus .git) plus the marker and the protected live-only files.
    const live = treeContent(ws.live, (p) => p === MARKER || p === '.env' || p === 'data' || p.startsWith('data/'))
    const src = treeContent(ws.src, (p) => p === '.git' || p.startsWith('.git/'))
    expect(live).toEqual(src)

    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(0)
    expect(st.json.release.id).toBe(release)
    expect(st.json.services).toHaveLength(1)
    expect(st.json.services[0].version).toBe(release)
    expect(st.json.services[0].live).toBe(true)
    expect(st.json.lock).toBeNull()
    expect(st.json.interrupted).toBeNull()

    const b = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(b.exitCode, why(b)).toBe(0)
    expect(b.json.backups.map((x: {id: string}) => x.id)).toEqual([release])
    expect(b.json.backups[0].release).toBeNull() // the tree before the first hotctl deploy
    expect(fs.existsSync(path.join(ws.stateDir, 'backups', `${release}.json`))).toBe(true)
    expect(fs.existsSync(path.join(ws.stateDir, 'lock'))).toBe(false)
  })

  it('a fresh clone of what is live deploys nothing and rewrites no file (same inodes and mtimes)', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    ws.gitCommit('v2')
    const first = await runCli(['deploy'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)

    const clone = path.join(ws.dir, 'clone')
    const c = spawnSync('git', ['clone', '-q', '--no-hardlinks', ws.src, clone], {encoding: 'utf8'})
    expect(c.status, c.stderr).toBe(0)
    // Every file of the clone is newer than the live one: only content can say they are equal.
    expect(fs.statSync(path.join(clone, 'app/handlers.py')).mtimeMs).not.toBe(
      fs.statSync(path.join(ws.live, 'app/handlers.py')).mtimeMs,
    )

    const before = inodes(ws.live)
    const hashBefore = treeHash(ws.live)
    const dry = await runCli(['deploy', '--dry-run', '--json'], {cwd: clone})
    expect(dry.exitCode, why(dry)).toBe(0)
    expect(dry.json.changes).toEqual({added: [], changed: [], deleted: []})

    const r = await runCli(['deploy', '--json'], {cwd: clone})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.outcome).toBe('nothing-to-deploy')
    expect(inodes(ws.live)).toEqual(before)
    expect(treeHash(ws.live)).toBe(hashBefore)
    expect(ws.backupFiles()).toHaveLength(1)

    // And via --config from elsewhere, pointing at the same live dir.
    const r2 = await runCli(['deploy', '--json', '--config', path.join(clone, 'hotctl.config.yaml')], {cwd: ws.dir})
    expect(r2.exitCode, why(r2)).toBe(0)
    expect(r2.json.outcome).toBe('nothing-to-deploy')
    expect(inodes(ws.live)).toEqual(before)
  })

  it('a failing check exits 1 and leaves the target untouched, with no backup', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2', {syntaxError: true})
    const before = treeHash(ws.live)
    const beforeInodes = inodes(ws.live)

    const r = await runCli(['deploy'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain('syntax')
    expect(treeHash(ws.live)).toBe(before)
    expect(inodes(ws.live)).toEqual(beforeInodes)
    expect(ws.backupFiles()).toEqual([])
    const b = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(b.json.backups).toEqual([])
    expect(await svc.hello()).toBe('hello v1')
    expect((await svc.status()).reloads).toBe(1) // only the initial load: never triggered

    const j = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(j.exitCode).toBe(1)
    expect(j.json.ok).toBe(false)
    expect(j.json.exitCode).toBe(1)
    expect(j.json.error.message).toContain('syntax')
  })

  it('a smoke failure exits 3, restores the target byte-identical and the previous release is live again', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const ok = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(ok.exitCode, why(ok)).toBe(0)
    const v2 = ok.json.release as string
    const before = treeHash(ws.live)

    // v3: broken calc, plus every other kind of change the restore must undo.
    ws.setVersion('v3', {calcBroken: true})
    fs.rmSync(path.join(ws.src, 'README.md'))
    fs.rmSync(path.join(ws.src, 'static'), {recursive: true})
    fs.mkdirSync(path.join(ws.src, 'app', 'sub'))
    fs.writeFileSync(path.join(ws.src, 'app', 'sub', 'new.py'), 'NEW = 1\n')
    fs.symlinkSync('handlers.py', path.join(ws.src, 'app', 'alias.py'))
    fs.chmodSync(path.join(ws.src, 'bin', 'serve.sh'), 0o700)
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.changes.deleted).toEqual(expect.arrayContaining(['README.md', 'static', 'static/style.css']))
    expect(r.json.changes.added).toEqual(expect.arrayContaining(['app/alias.py', 'app/sub', 'app/sub/new.py']))
    expect(r.json.changes.changed).toEqual(expect.arrayContaining(['app/handlers.py', 'bin/serve.sh']))
    expect(r.json.ok).toBe(false)
    expect(r.json.outcome).toBe('restored')
    expect(r.json.release).not.toBe(v2)
    expect(r.json.error).toMatch(/smoke/)
    expect(r.json.restore.ok).toBe(true)
    expect(r.json.restore.release).toBe(v2)

    expect(treeHash(ws.live)).toBe(before)
    expect(readMarker(ws.live)?.id).toBe(v2)
    expect((await svc.status()).version).toBe(v2)
    expect(await svc.hello()).toBe('hello v2')
    expect((await svc.calc(1, 2)).body).toEqual({success: true, result: 3})

    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.json.recent[0].result).toBe('restored')
    expect(st.json.release.id).toBe(v2)
  })

  it('a reload that never reports the new id exits 3 and restores', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live, {neverReport: true})
    const cfg = serviceConfig(svc)
    ;(cfg.reload as Record<string, unknown>).timeout = '2s'
    ws.writeConfig(cfg)
    ws.setVersion('v2')
    const before = treeHash(ws.live)

    const started = Date.now()
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.outcome).toBe('restored')
    expect(r.json.error).toMatch(/not live/)
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000)
    expect(treeHash(ws.live)).toBe(before)
    expect(fs.existsSync(path.join(ws.live, MARKER))).toBe(false)
    expect(await svc.hello()).toBe('hello v1') // restore reloaded the old code
  })

  it('a same-size change made within the same second as the live file is still synced', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    // v1 -> v2: same size; give the source file the live file's mtime second (different ns).
    ws.setVersion('v2')
    const liveFile = path.join(ws.live, 'app/handlers.py')
    const srcFile = path.join(ws.src, 'app/handlers.py')
    expect(fs.statSync(srcFile).size).toBe(fs.statSync(liveFile).size)
    const t = Math.floor(fs.statSync(liveFile).mtimeMs / 1000) * 1000
    fs.utimesSync(liveFile, new Date(t + 100), new Date(t + 100))
    fs.utimesSync(srcFile, new Date(t + 700), new Date(t + 700))

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.changes.changed).toEqual(['app/handlers.py'])
    expect(fs.readFileSync(liveFile, 'utf8')).toBe(fs.readFileSync(srcFile, 'utf8'))
    expect(await svc.hello()).toBe('hello v2')
  })

  it('--no-restart refuses a change that needs a restart (exit 6), naming the file; target untouched', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    fs.writeFileSync(path.join(ws.src, 'requirements.txt'), 'requests==2.32.0\n')
    const before = treeHash(ws.live)

    const r = await runCli(['deploy', '--no-restart'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(6)
    const refusal = r.stderr.split('\n').find((l) => l.includes('need a restart'))
    expect(refusal, r.stderr).toBeDefined()
    expect(refusal).toContain('requirements.txt')
    expect(refusal).not.toContain('app/handlers.py') // only what needs the restart is named
    expect(treeHash(ws.live)).toBe(before)
    expect(ws.backupFiles()).toEqual([])

    const j = await runCli(['deploy', '--no-restart', '--json'], {cwd: ws.src})
    expect(j.exitCode).toBe(6)
    expect(j.json.error.message).toContain('requirements.txt')
    expect(treeHash(ws.live)).toBe(before)
    // Protected live-only files are as they were.
    expect(fs.readFileSync(path.join(ws.live, 'data/app.db'))).toEqual(LIVE_DB)
    expect(fs.readFileSync(path.join(ws.live, '.env'), 'utf8')).toBe(LIVE_ENV)
  })

  // --no-restart is honoured by the restore too, not only by the forward attempt.
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
})
