/**
 * The fleet test bed itself (test/fleet/harness.ts): real sshd hosts reached with plain ssh and
 * rsync, each with its own /srv and service, and every fault hook proven to do what it says.
 */
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type Bed, startHosts} from './harness.js'

const MB = 1024 * 1024
const HERE = path.dirname(fileURLToPath(import.meta.url))

function sshArgs(bed: Bed, ...more: string[]): string[] {
  return ['-F', bed.sshConfig, ...more]
}

/** Starts `ssh host command` in the background; resolves `started` once it printed `started`. */
function session(bed: Bed, host: string, command: string, options: string[] = []) {
  const proc = execa('ssh', sshArgs(bed, ...options, host, `echo started; ${command}`), {reject: false})
  const started = new Promise<void>((resolve, reject) => {
    let out = ''
    proc.stdout!.on('data', (d) => {
      out += String(d)
      if (out.includes('started')) resolve()
    })
    proc.then((r) => reject(new Error(`the session ended before it started: ${r.stderr}`)))
  })
  let over = false
  void proc.finally(() => (over = true))
  return {proc, started, ended: () => over}
}

/** A process that exited (a zombie waiting for its reaper counts as exited). */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

/** Pids of processes in the mount namespace `ns`. */
function inNamespace(ns: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return fs.readlinkSync(`/proc/${n}/ns/mnt`) === ns
      } catch {
        return false
      }
    })
    .map(Number)
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = probe()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('a bed of three hosts', {timeout: 60_000}, () => {
  let bed: Bed
  let work: string
  beforeAll(async () => {
    bed = await startHosts({count: 3, service: true, diskSize: ['8m', undefined, undefined]})
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-bed-test-'))
  }, 60_000)
  afterAll(async () => {
    const namespaces = bed ? bed.hosts.map((h) => fs.readlinkSync(`/proc/${h.holder}/ns/mnt`)) : []
    await bed?.stop()
    fs.rmSync(work, {recursive: true, force: true})
    for (const ns of namespaces) expect(inNamespace(ns)).toEqual([])
  })

  it('answers plain ssh by name and by address, as root, each session inside its host', async () => {
    for (const h of bed.hosts) {
      const ns = fs.readlinkSync(`/proc/${h.holder}/ns/mnt`)
      expect(ns).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'))
      for (const dest of [h.name, h.address]) {
        const r = await execa('ssh', sshArgs(bed, dest, 'id -un; readlink /proc/self/ns/mnt'), {reject: false})
        expect(r.exitCode, r.stderr).toBe(0)
        expect(r.stdout.split('\n')).toEqual(['root', ns])
      }
    }
    // The config is what makes it work: the same ssh without it has neither key nor known host.
    const bare = await execa(
      'ssh',
      ['-o', 'BatchMode=yes', '-p', String(bed.port), `root@${bed.hosts[0].address}`, 'true'],
      {
        reject: false,
      },
    )
    expect(bare.exitCode).toBe(255)
  })

  it('gives every host its own /srv/app, and rsync over ssh reaches exactly one', async () => {
    const src = path.join(work, 'src')
    fs.mkdirSync(path.join(src, 'sub'), {recursive: true})
    fs.writeFileSync(path.join(src, 'sub', 'file.txt'), 'from rsync\n')
    const r = await execa('rsync', ['-a', '-e', `ssh -F ${bed.sshConfig}`, `${src}/`, 'h2:/srv/app/'], {reject: false})
    expect(r.exitCode, r.stderr).toBe(0)
    expect(fs.readFileSync(path.join(bed.hosts[1].app, 'sub', 'file.txt'), 'utf8')).toBe('from rsync\n')
    for (const i of [0, 2]) {
      const other = await bed.exec(i, ['ls', '/srv/app/sub'])
      expect(other.exitCode).not.toBe(0)
    }
    // Same path, different content, seen through each host's sshd.
    for (const h of bed.hosts) await bed.exec(h.name, ['sh', '-c', `echo ${h.name} > /srv/app/who`])
    for (const h of bed.hosts) expect((await bed.ssh(h.name, 'cat /srv/app/who')).stdout).toBe(h.name)
    expect(fs.readFileSync(path.join(bed.hosts[2].app, 'who'), 'utf8')).toBe('h3\n')
    // /tmp is the host's own too: the controller's workspace is not there.
    expect((await bed.ssh('h1', `ls ${src}`)).exitCode).not.toBe(0)
    await bed.ssh('h1', 'echo mine > /tmp/h1-only')
    expect((await bed.ssh('h1', 'cat /tmp/h1-only')).stdout).toBe('mine')
    expect((await bed.ssh('h2', 'cat /tmp/h1-only')).exitCode).not.toBe(0)
  })

  it('checks host keys: a known_hosts without the key, or with another host key, is refused', async () => {
    const lines = fs.readFileSync(bed.knownHosts, 'utf8').trim().split('\n')
    expect(lines).toHaveLength(3)
    expect(lines[0]).toMatch(
      new RegExp(`^\\[${bed.hosts[0].address.replace(/\./g, '\\.')}\\]:${bed.port} ssh-ed25519 `),
    )
    const wrong = path.join(work, 'wrong_known_hosts')
    // h1's address with h2's key: a changed host key.
    fs.writeFileSync(wrong, `[${bed.hosts[0].address}]:${bed.port} ${lines[1].split(' ').slice(1).join(' ')}\n`)
    const changed = await execa('ssh', sshArgs(bed, '-o', `UserKnownHostsFile=${wrong}`, 'h1', 'true'), {reject: false})
    expect(changed.exitCode).toBe(255)
    expect(changed.stderr).toMatch(/Host key verification failed|HOST IDENTIFICATION HAS CHANGED/)
    const empty = path.join(work, 'empty_known_hosts')
    fs.writeFileSync(empty, '')
    const unknown = await execa('ssh', sshArgs(bed, '-o', `UserKnownHostsFile=${empty}`, 'h1', 'true'), {reject: false})
    expect(unknown.exitCode).toBe(255)
    expect(unknown.stderr).toMatch(/Host key verification failed/)
  })

  it('runs the demo service on every host, on its address, serving its own release marker', async () => {
    expect(bed.serviceBase).toBe(`http://\${host}:${bed.servicePort}`)
    for (const h of bed.hosts) expect(h.serviceUrl).toBe(`http://${h.address}:${bed.servicePort}`)
    const status = async (i: number) => (await fetch(`${bed.hosts[i].serviceUrl}/api/v1/hot-reload/status`)).json()
    expect((await status(0)).version).toBe(null)
    fs.writeFileSync(path.join(bed.hosts[0].app, '.hotctl-release.json'), JSON.stringify({id: 'r-h1'}))
    const check = await fetch(`${bed.hosts[0].serviceUrl}/api/v1/hot-reload/check`, {
      method: 'POST',
      headers: {authorization: `Bearer ${bed.token}`},
    })
    expect(check.status).toBe(200)
    expect((await status(0)).version).toBe('r-h1')
    expect((await status(1)).version).toBe(null)
    const hello = await fetch(`${bed.hosts[2].serviceUrl}/api/v1/hello`)
    expect(await hello.text()).toMatch(/from v1/)
    // The config sections for hotctl reach every host once ${host} is its address.
    const cfg = bed.serviceConfig() as any
    const at = (url: string, i: number) => url.replace('${host}', bed.hosts[i].address)
    fs.writeFileSync(path.join(bed.hosts[2].app, '.hotctl-release.json'), JSON.stringify({id: 'r-h3'}))
    const trigger = await fetch(at(cfg.reload.trigger.url, 2), {
      method: cfg.reload.trigger.method,
      headers: {authorization: cfg.reload.trigger.headers.Authorization.replace('${HOTRELOAD_TOKEN}', bed.token)},
    })
    expect(((await trigger.json()) as any).version).toBe('r-h3')
    for (const i of [0, 1, 2]) expect((await fetch(at(cfg.smoke[0].url, i))).status).toBe(200)
  })

  it('stops and starts a service, from the harness and from inside the host over ssh', async () => {
    const health = (i: number) => fetch(`${bed.hosts[i].serviceUrl}/health`).then((r) => r.json() as Promise<any>)
    await bed.stopService(1)
    await expect(health(1)).rejects.toThrow()
    expect((await health(0)).status).toBe('ok') // the others keep running
    await bed.startService(1)
    const before = (await health(1)).pid
    const r = await bed.ssh('h2', '/run/hotctl-bed/service restart && /run/hotctl-bed/service status')
    expect(r.exitCode, r.stderr).toBe(0)
    const after = (await health(1)).pid
    expect(r.stdout).toBe(`running ${after}`)
    expect(after).not.toBe(before)
  })

  it('kills sshd with its sessions, and starts it again', async () => {
    const s = session(bed, 'h2', 'sleep 60')
    await s.started
    await bed.killSshd(1)
    try {
      expect((await s.proc).exitCode).toBe(255)
      const down = await bed.ssh(1, 'true', {options: ['-o', 'ConnectTimeout=5']})
      expect(down.exitCode).toBe(255)
      expect(down.stderr).toMatch(/Connection refused/)
      expect((await bed.ssh(0, 'true')).exitCode).toBe(0)
    } finally {
      await bed.startSshd(1)
    }
    expect((await bed.ssh(1, 'echo back')).stdout).toBe('back')
  })

  it('kills only the listener when asked: live sessions go on, new connections fail', async () => {
    const s = session(bed, 'h2', 'sleep 3; echo finished')
    await s.started
    await bed.killSshd('h2', {sessions: false})
    try {
      expect((await bed.ssh(1, 'true', {options: ['-o', 'ConnectTimeout=5']})).exitCode).toBe(255)
      const r = await s.proc
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.stdout).toContain('finished')
    } finally {
      await bed.startSshd('h2')
    }
    expect((await bed.exec('h2', ['pwd'], {cwd: '/srv/app'})).stdout).toBe('/srv/app')
  })

  it('freezes sshd and its sessions: connections time out; thaw lets everything continue', async () => {
    const s = session(bed, 'h3', 'sleep 1; echo finished')
    await s.started
    await bed.freeze(2)
    try {
      const frozen = await bed.ssh(2, 'true', {options: ['-o', 'ConnectTimeout=2']})
      expect(frozen.exitCode).toBe(255)
      expect(frozen.stderr).toMatch(/timed out/i)
      expect(s.ended()).toBe(false) // its `sleep 1` is frozen too
    } finally {
      await bed.thaw(2)
    }
    const r = await s.proc
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toContain('finished')
    expect((await bed.ssh(2, 'echo thawed')).stdout).toBe('thawed')
  })

  it('cuts a host: live sessions drop, new connections are refused until restore', async () => {
    const s = session(bed, 'h1', 'sleep 60')
    await s.started
    await bed.cut(0)
    try {
      const dropped = await s.proc
      expect(dropped.exitCode).toBe(255)
      const refused = await bed.ssh(0, 'true', {options: ['-o', 'ConnectTimeout=5']})
      expect(refused.exitCode).toBe(255)
      expect(refused.stderr).toMatch(/Connection refused/)
      expect((await bed.ssh(1, 'echo other')).stdout).toBe('other')
    } finally {
      await bed.restore(0)
    }
    expect((await bed.ssh(0, 'echo restored')).stdout).toBe('restored')
  })

  it('blackholes a host: a live session hangs until ServerAlive gives up; restore lets it flow', async () => {
    const alive = ['-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=2']
    const s = session(bed, 'h1', 'sleep 60', alive)
    await s.started
    const held = session(bed, 'h2', 'sleep 2; echo survived')
    await held.started
    await bed.cut(0, 'blackhole')
    await bed.cut(1, 'blackhole')
    try {
      const r = await s.proc
      expect(r.exitCode).toBe(255)
      expect(r.stderr).toMatch(/Timeout, server .* not responding/)
      const hung = await bed.ssh(0, 'true', {options: ['-o', 'ConnectTimeout=2']})
      expect(hung.exitCode).toBe(255)
      expect(hung.stderr).toMatch(/timed out/i)
      await bed.restore(1)
      const through = await held.proc
      expect(through.exitCode, through.stderr).toBe(0)
      expect(through.stdout).toContain('survived')
    } finally {
      await bed.restore(0)
      await bed.restore(1)
    }
    expect((await bed.ssh(0, 'echo restored')).stdout).toBe('restored')
  })

  it('fills a host disk: its tmpfs /srv gives ENOSPC, the other hosts are not affected', async () => {
    expect(bed.hosts[0].diskSize).toBe('8m')
    const big = await bed.ssh(0, 'head -c 16777216 /dev/zero > /srv/app/big')
    expect(big.exitCode).not.toBe(0)
    expect(big.stderr).toMatch(/No space left on device/)
    await bed.exec(0, ['rm', '-f', '/srv/app/big'])
    expect((await bed.ssh(0, 'head -c 1048576 /dev/zero > /srv/app/small && rm /srv/app/small')).exitCode).toBe(0)

    await bed.fillDisk(0)
    const full = await bed.ssh(0, 'echo x > /srv/app/one-more')
    expect(full.stderr).toMatch(/No space left on device/)
    expect((await bed.ssh(1, `head -c ${16 * MB} /dev/zero > /srv/app/big && rm /srv/app/big`)).exitCode).toBe(0)
    await bed.freeDisk(0)
    expect((await bed.ssh(0, 'echo x > /srv/app/one-more')).exitCode).toBe(0)
    await expect(bed.fillDisk(1)).rejects.toThrow(/not a tmpfs/)
  })
})

describe('lifecycle', {timeout: 60_000}, () => {
  it('starts six hosts at once, and stop() leaves no process, namespace or directory behind', async () => {
    const t0 = Date.now()
    const bed = await startHosts({count: 6, service: true})
    process.stderr.write(`fleet test bed: 6 hosts with services started in ${Date.now() - t0} ms\n`)
    const names = await Promise.all(bed.hosts.map((h) => bed.ssh(h.name, 'cat /run/hotctl-bed/host.json')))
    expect(names.map((r) => JSON.parse(r.stdout).name)).toEqual(['h1', 'h2', 'h3', 'h4', 'h5', 'h6'])
    expect(new Set(bed.hosts.map((h) => h.address)).size).toBe(6)
    const namespaces = bed.hosts.map((h) => fs.readlinkSync(`/proc/${h.holder}/ns/mnt`))
    const session = execa('ssh', sshArgs(bed, 'h4', 'sleep 60'), {reject: false})
    await waitFor('the session', () => inNamespace(namespaces[3]).length > 3)
    expect(namespaces.every((ns) => inNamespace(ns).length >= 3)).toBe(true) // holder, sshd, service
    await bed.stop()
    await bed.stop() // twice is fine
    expect((await session).exitCode).toBe(255)
    for (const ns of namespaces) expect(inNamespace(ns)).toEqual([])
    expect(fs.existsSync(bed.dir)).toBe(false)
    const sshd = await execa('pgrep', ['-a', 'sshd'], {reject: false})
    expect(sshd.stdout).not.toContain(bed.dir)
    await expect(bed.cut(0)).rejects.toThrow(/stopped/)
  }, 60_000)

  it('cleans up when the test process dies with SIGKILL', async () => {
    // A stand-in test process: starts a bed through the daemon exactly as the harness does.
    const daemon = path.join(HERE, 'bed-daemon.mjs')
    const script = `
      const {spawn} = require('node:child_process')
      const d = spawn(process.execPath, [${JSON.stringify(daemon)}], {stdio: ['pipe', 'pipe', 'inherit'], detached: true})
      d.stdin.write(JSON.stringify({count: 2, service: true, seed: ${JSON.stringify(path.resolve(HERE, '../../templates/python/demo_app'))}, proxy: true}) + '\\n')
      d.stdout.on('data', (b) => process.stdout.write(b))`
    const owner = spawn(process.execPath, ['-e', script], {stdio: ['ignore', 'pipe', 'inherit']})
    let out = ''
    owner.stdout.on('data', (d) => (out += String(d)))
    const ready = await waitFor('the bed', () => (out.includes('\n') ? JSON.parse(out.split('\n')[0]).ready : false))
    const namespaces = ready.hosts.map((h: {holder: number}) => fs.readlinkSync(`/proc/${h.holder}/ns/mnt`))
    expect(inNamespace(namespaces[0]).length).toBeGreaterThanOrEqual(3)
    owner.kill('SIGKILL')
    await waitFor('the bed to be gone', () => !fs.existsSync(ready.dir))
    for (const ns of namespaces) expect(inNamespace(ns)).toEqual([])
  }, 60_000)

  it('sweeps a bed whose supervisor was killed with -9', async () => {
    const bed = await startHosts({count: 1, service: true})
    const ns = fs.readlinkSync(`/proc/${bed.hosts[0].holder}/ns/mnt`)
    const {daemon} = JSON.parse(fs.readFileSync(path.join(bed.dir, 'bed.json'), 'utf8'))
    process.kill(daemon, 'SIGKILL')
    // The service is its own session (setsid): it outlives the supervisor, and holds the namespace.
    const servicePid = Number(fs.readFileSync(path.join(bed.hosts[0].run, 'service.pid'), 'utf8'))
    await waitFor('the supervisor to die', () => inNamespace(ns).length === 1)
    expect(inNamespace(ns)).toEqual([servicePid])
    const next = await startHosts({count: 1})
    try {
      expect(gone(servicePid)).toBe(true)
      expect(fs.existsSync(bed.dir)).toBe(false)
    } finally {
      await next.stop()
      await bed.stop()
    }
  }, 60_000)
})
