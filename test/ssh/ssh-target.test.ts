/**
 * The SSH target end to end: the built binary deploys to `root@host:/path` through a real sshd
 * (test/ssh/sshd-host.ts), real ssh and rsync over it; the single-target pipelines are unchanged.
 */
import {spawn, spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  freshCopy,
  inodes,
  makeWorkspace,
  MARKER,
  readMarker,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  slowRsync,
  startCli,
  waitFor,
  startService,
  stopAllServices,
  treeHash,
  type Workspace,
} from '../e2e/helpers.js'
import {type SshHost, startSshHost, stopSshHosts} from './sshd-host.mjs'

const why = (r: {stdout: string; stderr: string}) =>
  `stdout:\n${r.stdout.slice(0, 3000)}\nstderr:\n${r.stderr.slice(0, 3000)}`

let host: SshHost
beforeAll(async () => {
  requireBuild()
  host = await startSshHost()
})
afterEach(stopAllServices)
afterAll(async () => {
  await stopSshHosts()
  removeWorkspaces()
})

/** The workspace's config, aimed at the live dir through the ssh host. */
function remote(ws: Workspace, h: SshHost, cfg: Record<string, unknown>, ssh: Record<string, unknown> = {}) {
  ws.writeConfig({...cfg, target: `root@${h.alias}:${ws.live}`, ssh: {config: h.sshConfig, timeout: '20s', ...ssh}})
}

const managed = (ws: Workspace) => treeHash(ws.live)

/** Every entry under `root` by its bytes (names need not be UTF-8): path → type, mode, content or link. */
function byteTree(root: string): string {
  const out: string[] = []
  const visit = (dir: Buffer, rel: string) => {
    for (const name of fs.readdirSync(dir, {encoding: 'buffer'}).sort(Buffer.compare)) {
      const abs = Buffer.concat([dir, Buffer.from('/'), name])
      const r = `${rel}/${name.toString('latin1')}`
      const st = fs.lstatSync(abs)
      if (st.isSymbolicLink()) out.push(`${r} l ${fs.readlinkSync(abs, {encoding: 'buffer'}).toString('hex')}`)
      else if (st.isDirectory()) {
        out.push(`${r} d ${st.mode & 0o7777}`)
        visit(abs, r)
      } else
        out.push(`${r} f ${st.mode & 0o7777} ${crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`)
    }
  }
  visit(Buffer.from(root), '')
  return out.join('\n')
}
const controlDirs = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('hotctl-ssh-'))

describe('SSH target: one remote host', () => {
  it('planning reads the source after the checks: a file a check writes there is deployed', async () => {
    const ws = makeWorkspace()
    // The check ends well after the source could have been walked while connecting.
    remote(ws, host, {protect: ['data/', '.env'], checks: {generate: 'sleep 1; echo generated > generated.txt'}})
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.changes.added).toContain('generated.txt')
    expect(fs.readFileSync(path.join(ws.live, 'generated.txt'), 'utf8')).toBe('generated\n')
  })

  it('deploys, then a redeploy and a CI-style fresh copy write only what changed by content', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    remote(ws, host, serviceConfig(svc))
    ws.setVersion('v2')
    // A TMPDIR of its own: other tests' connections come and go in the shared one meanwhile.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ssh-tmp-'))
    const r = await runCli(['deploy', '--json'], {cwd: ws.src, env: {TMPDIR: tmp}})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.changes).toEqual({added: ['hotctl.config.yaml'], changed: ['app/handlers.py'], deleted: []})
    expect(await svc.hello()).toBe('hello v2')
    expect(readMarker(ws.live)?.id).toBe(r.json.release)
    // The master connection was closed and its private directory removed.
    expect(controlDirs(tmp)).toEqual([])
    fs.rmSync(tmp, {recursive: true, force: true})

    const before = inodes(ws.live)
    const again = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(again.exitCode, why(again)).toBe(0)
    expect(again.json.outcome).toBe('nothing-to-deploy')
    expect(inodes(ws.live)).toEqual(before)

    // A fresh copy: every mtime new, one file really changed.
    const clone = path.join(ws.dir, 'clone')
    freshCopy(ws.src, clone)
    fs.writeFileSync(path.join(clone, 'static/style.css'), 'body { color: red; }\n')
    const ci = await runCli(['deploy', '--json'], {cwd: clone})
    expect(ci.exitCode, why(ci)).toBe(0)
    expect(ci.json.changes).toEqual({added: [], changed: ['static/style.css'], deleted: []})
    const after = inodes(ws.live)
    const moved = Object.keys(after).filter(
      (k) => after[k] !== before[k] && k !== MARKER && fs.statSync(path.join(ws.live, k)).isFile(),
    )
    expect(moved).toEqual(['static/style.css'])
  }, 120_000)

  it('a deploy starts two ssh processes (the host shell every script runs in, and rsync), and still journals every line, in order', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    remote(ws, host, serviceConfig(svc))
    await runCli(['deploy', '--json'], {cwd: ws.src}) // the first backup holds the whole tree
    ws.setVersion('v2')
    // Every ssh the deploy starts, counted by a wrapper first on the PATH.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'ssh-count-'))
    const real = spawnSync('sh', ['-c', 'command -v ssh'], {encoding: 'utf8'}).stdout.trim()
    fs.writeFileSync(path.join(bin, 'ssh'), `#!/bin/sh\necho "$*" >> '${bin}/log'\nexec '${real}' "$@"\n`, {
      mode: 0o755,
    })
    const r = await runCli(['deploy', '--json'], {
      cwd: ws.src,
      env: {PATH: `${bin}:${process.env.PATH}`, HOTCTL_DEBUG_SSH: '1'},
    })
    expect(r.exitCode, why(r)).toBe(0)
    const sshs = fs.readFileSync(path.join(bin, 'log'), 'utf8').trim().split('\n')
    fs.rmSync(bin, {recursive: true, force: true})
    // One per script was ~40 per deploy. No `ssh -O exit` either: the master ended with its shell.
    expect(sshs.filter((a) => a.endsWith(' sh -s'))).toHaveLength(1)
    expect(sshs).toHaveLength(2)
    const scripts = r.stderr.split('\n').filter((l) => l.startsWith('hotctl: ssh '))
    // Scripts: over 40 before the journal, marker and backup list were read once under the lock.
    expect(scripts.length, scripts.join('\n')).toBeLessThanOrEqual(26)
    // The lines that rode in front of a later script are all there, in the order they were appended.
    const events = fs
      .readFileSync(path.join(ws.stateDir, 'journal.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as {event: string; opId: string; phase?: string})
      .filter((e) => e.opId === r.json.release)
      .map((e) => e.phase ?? e.event)
    expect(events).toEqual(['start', 'backup', 'sync', 'child', 'marker', 'reload', 'confirm', 'smoke', 'end'])
  }, 120_000)

  it('a failing smoke check restores byte-exact on the host (exit 3) and proves the old release; rollback and --to', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    remote(ws, host, serviceConfig(svc))
    ws.setVersion('v2')
    const v2 = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(v2.exitCode, why(v2)).toBe(0)
    const liveV2 = managed(ws)

    ws.setVersion('v3', {calcBroken: true})
    const bad = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(bad.exitCode, why(bad)).toBe(3)
    expect(bad.json.restore.ok).toBe(true)
    expect(managed(ws)).toBe(liveV2)
    expect((await svc.status()).version).toBe(v2.json.release)

    ws.setVersion('v4')
    const v4 = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(v4.exitCode, why(v4)).toBe(0)
    expect(await svc.hello()).toBe('hello v4')

    const back = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(back.exitCode, why(back)).toBe(0)
    expect(await svc.hello()).toBe('hello v2')
    expect(managed(ws)).toBe(liveV2)

    const to = await runCli(['rollback', '--to', v4.json.release, '--json'], {cwd: ws.src})
    expect(to.exitCode, why(to)).toBe(0)
    expect(await svc.hello()).toBe('hello v4')

    // backups: the ids on the host, complete ones only, with the releases they hold.
    const list = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(list.exitCode, why(list)).toBe(0)
    const onHost = fs
      .readdirSync(path.join(ws.stateDir, 'backups'))
      .filter((n) => /^\d{14}\.json$/.test(n))
      .map((n) => n.slice(0, 14))
      .sort()
    expect(list.json.backups.map((b: {id: string}) => b.id).sort()).toEqual(onHost)
    expect(onHost).toHaveLength(5) // deploy v2, v3 (failed), v4, rollback, rollback --to

    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(0)
    // Damage in a backup's tree on the host is found by content.
    const victim = path.join(ws.stateDir, 'backups', onHost[0]!, 'app/handlers.py')
    const text = fs.readFileSync(victim)
    fs.rmSync(victim)
    fs.writeFileSync(victim, Buffer.from(text.toString().replace('v', 'w')))
    const damaged = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(damaged.exitCode, why(damaged)).toBe(1)
    expect(JSON.stringify(damaged.json.damage)).toContain('app/handlers.py')
  }, 180_000)

  it('backups copy each change once: unchanged files are not copied again, never linked to live files; an in-place edit keeping size and mtime is recorded as it is', async () => {
    const ws = makeWorkspace()
    remote(ws, host, {target: 'x', protect: ['data/', '.env']})
    for (const v of ['v2', 'v3']) {
      ws.setVersion(v)
      const r = await runCli(['deploy', '--json'], {cwd: ws.src})
      expect(r.exitCode, why(r)).toBe(0)
    }
    const ids = fs
      .readdirSync(path.join(ws.stateDir, 'backups'))
      .filter((n) => /^\d{14}$/.test(n))
      .sort()
    const ino = (p: string) => fs.statSync(p).ino
    const b = (id: string, rel: string) => path.join(ws.stateDir, 'backups', id, rel)
    // The first backup holds the whole tree once; the second only what the deploy between changed.
    expect(fs.existsSync(b(ids[0]!, 'README.md'))).toBe(true)
    expect(fs.existsSync(b(ids[1]!, 'README.md'))).toBe(false)
    expect(fs.existsSync(b(ids[1]!, 'app/handlers.py'))).toBe(true)
    expect(ino(b(ids[0]!, 'README.md'))).not.toBe(ino(path.join(ws.live, 'README.md')))
    expect(fs.statSync(b(ids[0]!, 'README.md')).nlink).toBe(1)
    expect(fs.readFileSync(b(ids[1]!, 'app/handlers.py'))).not.toEqual(fs.readFileSync(b(ids[0]!, 'app/handlers.py')))

    // Someone edits a live file in place and puts its mtime back.
    // (touch -r keeps the nanoseconds, which rsync compares here; fs.utimes would not.)
    const readme = path.join(ws.live, 'README.md')
    const ref = path.join(ws.dir, 'mtime-ref')
    fs.writeFileSync(ref, '')
    expect(spawnSync('touch', ['-r', readme, ref]).status).toBe(0)
    const edited = Buffer.from(fs.readFileSync(readme).toString().replace('demo', 'DEMO'))
    fs.writeFileSync(readme, edited)
    expect(spawnSync('touch', ['-r', ref, readme]).status).toBe(0)
    expect(fs.statSync(readme, {bigint: true}).mtimeNs).toBe(fs.statSync(ref, {bigint: true}).mtimeNs)
    ws.setVersion('v4')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    const id = r.json.backup.id
    expect(fs.readFileSync(b(id, 'README.md'))).toEqual(edited)
    const back = await runCli(['rollback', '--to', r.json.previousRelease, '--json'], {cwd: ws.src})
    expect(back.exitCode, why(back)).toBe(0)
    expect(fs.readFileSync(readme)).toEqual(edited)
  }, 180_000)

  it('the host sends its hash record only when this controller has no copy of it (by sha256); a wrong copy is never used', async () => {
    const ws = makeWorkspace()
    remote(ws, host, {protect: ['data/', '.env']})
    const cache = path.join(ws.dir, 'cache')
    const env = {XDG_CACHE_HOME: cache, HOTCTL_DEBUG_SSH: '1'}
    ws.setVersion('v2')
    const v2 = await runCli(['deploy', '--json'], {cwd: ws.src, env})
    expect(v2.exitCode, why(v2)).toBe(0)
    const record = fs.readFileSync(path.join(ws.stateDir, 'target-hashes.json.gz'))
    const dir = path.join(cache, 'hotctl', 'ssh-records')
    const copies = () => fs.readdirSync(dir).map((n) => path.join(dir, n))
    // The copy: the sha256 of the host's gzip, the sha256 of its JSON, the JSON.
    const sha = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex')
    const text = zlib.gunzipSync(record).toString('utf8')
    const copy = `${sha(record)} ${sha(text)}\n${text}`
    expect(copies().map((f) => fs.readFileSync(f, 'utf8'))).toEqual([copy])
    // Planning (a dry run: nothing changes on the host), with the host's listing reply measured.
    const plan = async () => {
      const r = await runCli(['deploy', '--dry-run', '--json'], {cwd: ws.src, env})
      expect(r.exitCode, why(r)).toBe(0)
      const line = r.stderr.split('\n').find((l) => l.includes('if [ ! -f "$2" ]'))
      return {back: Number(/(\d+) B back/.exec(line ?? '')?.[1]), changes: r.json.changes}
    }
    ws.setVersion('v3')
    const withCopy = await plan()
    expect(withCopy.changes.changed).toContain('app/handlers.py')
    // A copy that is not what was written (its JSON changed): never used, the host's is sent.
    fs.writeFileSync(copies()[0]!, copy.replace(/"[0-9a-f]{64}"/, `"${'0'.repeat(64)}"`))
    const wrong = await plan()
    expect(wrong.back - withCopy.back).toBeGreaterThanOrEqual(record.length)
    expect(wrong.changes).toEqual(withCopy.changes)
    expect(copies().map((f) => fs.readFileSync(f, 'utf8'))).toEqual([copy]) // put right by that transfer
  }, 180_000)

  it('hostile file names deploy, restore and roll back byte-exact over ssh', async () => {
    const ws = makeWorkspace()
    remote(ws, host, {target: 'x', protect: ['data/', '.env'], smoke: []})
    const names = [
      '#x',
      ';x',
      "it's",
      'a b',
      ' lead',
      'trail ',
      '-rf',
      '$(id)',
      '`id`',
      'x\ny',
      'tab\tx',
      '\\#101',
      'ü',
      '*',
      '"q"',
    ]
    for (const n of names) fs.writeFileSync(path.join(ws.src, 'app', n), `content of ${JSON.stringify(n)}\n`)
    fs.writeFileSync(Buffer.concat([Buffer.from(`${ws.src}/app/bad-`), Buffer.from([0xff, 0xfe])]), 'latin1 name\n')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    const live = fs.readdirSync(path.join(ws.live, 'app'), {encoding: 'buffer'}).map((n) => n.toString('latin1'))
    for (const n of names) expect(live).toContain(Buffer.from(n).toString('latin1'))
    expect(live).toContain(Buffer.concat([Buffer.from('bad-'), Buffer.from([0xff, 0xfe])]).toString('latin1'))
    const withNames = byteTree(ws.live)
    // A change then a rollback: every name comes back.
    for (const n of names) fs.rmSync(path.join(ws.src, 'app', n))
    const r2 = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r2.exitCode, why(r2)).toBe(0)
    expect(r2.json.changes.deleted.length).toBe(names.length)
    const back = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(back.exitCode, why(back)).toBe(0)
    expect(byteTree(ws.live)).toBe(withNames)
  }, 120_000)

  it('a lock held by another controller machine is exit 5 naming owner, host, pid and command', async () => {
    const ws = makeWorkspace()
    remote(ws, host, {target: 'x', protect: ['data/', '.env']})
    fs.mkdirSync(ws.stateDir, {recursive: true})
    const owner = {
      pid: 4242,
      host: 'ci-runner-7',
      user: 'deploy',
      command: 'hotctl deploy',
      started: new Date().toISOString(),
    }
    fs.writeFileSync(path.join(ws.stateDir, 'lock'), JSON.stringify(owner))
    ws.setVersion('v2')
    const before = managed(ws)
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(5)
    expect(r.json.error.message).toContain('pid 4242 on ci-runner-7')
    expect(r.json.error.message).toContain('hotctl deploy')
    expect(managed(ws)).toBe(before)
    // And a lock of a gone process of this machine is stale: cleared.
    fs.writeFileSync(path.join(ws.stateDir, 'lock'), JSON.stringify({...owner, host: os.hostname(), pid: 999_999}))
    const ok = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(ok.exitCode, why(ok)).toBe(0)
    expect(fs.existsSync(path.join(ws.stateDir, 'lock'))).toBe(false)
  }, 60_000)

  it('secrets in env and commands on the host never land in the host journal or the output', async () => {
    const ws = makeWorkspace()
    const secret = `s3cret-${crypto.randomBytes(6).toString('hex')}`
    remote(ws, host, {
      target: 'x',
      protect: ['data/', '.env'],
      // Fails on the new release only (the restore's trigger passes): exit 3.
      reload: {
        trigger: {
          command: 'echo "token is ${HOTCTL_TEST_TOKEN}"; pwd > .trigger-ran; ! grep -q v2 app/handlers.py',
        },
      },
    })
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src, env: {HOTCTL_TEST_TOKEN: secret}})
    expect(r.exitCode, why(r)).toBe(3) // the trigger fails on the host: restored
    expect(fs.readFileSync(path.join(ws.live, '.trigger-ran'), 'utf8').trim()).toBe(ws.live) // ran in the target dir
    expect(r.stdout + r.stderr).not.toContain(secret)
    expect(r.stdout).toContain('token is ***')
    expect(fs.readFileSync(path.join(ws.stateDir, 'journal.jsonl'), 'utf8')).not.toContain(secret)
  }, 60_000)
})

describe('SSH target: commands on the host are bounded', () => {
  it('a smoke command past its timeout is stopped on the host, not only its ssh client here', async () => {
    const ws = makeWorkspace()
    const marker = String(30 + Math.floor(Math.random() * 1000))
    remote(ws, host, {
      target: 'x',
      protect: ['data/', '.env'],
      smoke: [{name: 'hangs', command: `grep -q v2 app/handlers.py && exec sleep ${marker}.5 || true`, timeout: '2s'}],
    })
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    const sleeping = () =>
      fs
        .readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${marker}.5\0`
          } catch {
            return false
          }
        })
    await waitFor('the command to be stopped', () => sleeping().length === 0, 10_000)
    expect(sleeping()).toEqual([])
  }, 60_000)
})

describe('SSH target: a controller killed mid-sync', () => {
  it('the next deploy stops the writers it left (here and on the host), restores the backup first, then deploys', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    remote(ws, host, serviceConfig(svc))
    ws.setVersion('v2')
    const first = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)
    const hashV2 = managed(ws)
    ws.setVersion('v3')
    fs.writeFileSync(path.join(ws.src, 'static', 'big.bin'), crypto.randomBytes(3 * 1024 * 1024))
    const proc = startCli(['deploy'], {cwd: ws.src, env: {HOTCTL_RSYNC: slowRsync(ws.dir, 300)}})
    const journal = path.join(ws.stateDir, 'journal.jsonl')
    const child = await waitFor(
      'the deploy to journal its writer',
      () =>
        /"event":"child"/.test(fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8') : '') &&
        fs.existsSync(path.join(ws.stateDir, 'writer.pid')),
      30_000,
    )
    expect(child).toBe(true)
    process.kill(proc.pid!, 'SIGKILL') // hotctl only: its rsync (own process group) and the one on the host go on
    await proc.catch(() => undefined)
    const remotePid = Number(fs.readFileSync(path.join(ws.stateDir, 'writer.pid'), 'utf8'))
    expect(fs.readFileSync(`/proc/${remotePid}/cmdline`, 'utf8')).toContain('rsync')

    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.json.interrupted?.lastPhase).toBe('sync')

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.recovery?.restored?.ok).toBe(true)
    expect(fs.existsSync(`/proc/${remotePid}`)).toBe(false)
    expect(await svc.hello()).toBe('hello v3')
    expect(managed(ws)).not.toBe(hashV2)
  }, 120_000)
})

describe('SSH target: a writer left running on the host', () => {
  it('is stopped before the interrupted operation is restored (only a process that runs rsync --server)', async () => {
    const ws = makeWorkspace()
    remote(ws, host, {target: 'x', protect: ['data/', '.env']})
    ws.setVersion('v2')
    const first = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)
    // What a controller that vanished mid-sync leaves: an open deploy in the journal and the
    // remote writer's pid (here a stand-in whose command line reads like rsync's server side).
    const writer = spawn('bash', ['-c', 'exec -a "rsync --server" sleep 120'], {stdio: 'ignore', detached: true})
    const bystander = spawn('sleep', ['120'], {stdio: 'ignore', detached: true})
    try {
      await waitFor('the stand-in to exec', () =>
        fs.readFileSync(`/proc/${writer.pid}/cmdline`, 'utf8').startsWith('rsync --server'),
      )
      const opId = '20000101000000'
      const t = new Date().toISOString()
      const start = {
        event: 'start',
        op: 'deploy',
        opId,
        t,
        backup: first.json.release,
        user: 'ci',
        host: 'gone-runner',
        pid: 4242,
        argv: [],
      }
      fs.appendFileSync(
        path.join(ws.stateDir, 'journal.jsonl'),
        `${JSON.stringify(start)}\n${JSON.stringify({event: 'phase', opId, t, phase: 'sync'})}\n`,
      )
      // A pid reused by something else is never killed.
      fs.writeFileSync(path.join(ws.stateDir, 'writer.pid'), String(bystander.pid))
      const r0 = await runCli(['deploy', '--json'], {cwd: ws.src})
      expect(r0.exitCode, why(r0)).toBe(0)
      expect(bystander.exitCode).toBeNull()
      expect(fs.existsSync(`/proc/${bystander.pid}`)).toBe(true)
      // Open again, now with the writer's pid.
      fs.appendFileSync(
        path.join(ws.stateDir, 'journal.jsonl'),
        `${JSON.stringify({...start, opId: '20000101000001'})}\n${JSON.stringify({event: 'phase', opId: '20000101000001', t, phase: 'sync'})}\n`,
      )
      fs.writeFileSync(path.join(ws.stateDir, 'writer.pid'), String(writer.pid))
      const r = await runCli(['deploy', '--json'], {cwd: ws.src})
      expect(r.exitCode, why(r)).toBe(0)
      expect(r.json.recovery?.interrupted).toBe('20000101000001')
      await waitFor('the writer to be gone', () => writer.exitCode !== null || writer.signalCode !== null, 10_000)
      expect(writer.signalCode).toBe('SIGKILL')
    } finally {
      writer.kill('SIGKILL')
      bystander.kill('SIGKILL')
    }
  }, 90_000)
})

describe('SSH target: preflight names what is wrong on the host', () => {
  it('rsync missing on the host', async () => {
    const bare = await startSshHost({address: '127.0.0.3', hideTools: ['rsync']})
    const ws = makeWorkspace()
    remote(ws, bare, {target: 'x'})
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.json.error.message).toMatch(/tools on testhost\d+: testhost\d+ lacks rsync/)
  }, 60_000)

  it('an unreachable host is named, with its ssh error and --limit', async () => {
    const ws = makeWorkspace()
    remote(ws, {...host, alias: 'nohost'}, {target: 'x'})
    fs.appendFileSync(host.sshConfig, `Host nohost\n  HostName 127.0.0.9\n  Port 9\n`)
    const r = await runCli(['check', '--json', '--skip-checks'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    const item = r.json.preflight.find((p: {name: string}) => p.name === 'ssh nohost')
    expect(item.detail).toMatch(/^nohost is unreachable: .*Connection refused/)
    expect(item.hint).toContain('--limit')
  }, 60_000)

  it('a host key that does not match known_hosts fails clearly, and is never accepted', async () => {
    const ws = makeWorkspace()
    const other = await startSshHost({address: '127.0.0.4'})
    // Same alias and known_hosts entry as `host`, but another sshd (another key) answers.
    const cfg = path.join(ws.dir, 'ssh_config')
    fs.writeFileSync(
      cfg,
      fs
        .readFileSync(host.sshConfig, 'utf8')
        .replace(`HostName ${host.address}`, `HostName ${other.address}`)
        .replace(`Port ${host.port}`, `Port ${other.port}`),
    )
    ws.writeConfig({target: `root@${host.alias}:${ws.live}`, ssh: {config: cfg}})
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.json.error.message).toContain(`the host key of ${host.alias} is not trusted`)
    expect(fs.readFileSync(host.knownHosts, 'utf8').split('\n').filter(Boolean)).toHaveLength(1)
  }, 60_000)
})
