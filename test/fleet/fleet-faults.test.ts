/**
 * Fleet faults end to end, on real sshd hosts: two controllers at once, Ctrl-C and kill -9 of the
 * controller mid-wave, a connection cut and a frozen host mid-deploy, a full disk, and Ansible
 * inventories with --limit. Each test starts from every host on one proven release (`baseline`).
 */
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {requireBuild, runCli, startCli, waitFor} from '../e2e/helpers.js'
import {type Controller, controller, endsOf, journalOf, markerOf, removeControllers, servedBy} from './fleet-helpers.js'
import {type Bed, startHosts} from './harness.js'

requireBuild()

const HOSTS = ['h1', 'h2', 'h3']

describe('fleet faults, three hosts', {timeout: 400_000}, () => {
  let bed: Bed
  beforeAll(async () => {
    bed = await startHosts({count: 3, service: true, diskSize: [undefined, undefined, '16m']})
  }, 120_000)
  afterAll(async () => {
    await bed?.stop()
    removeControllers()
  })

  const run = (c: Controller, ...args: string[]) =>
    runCli([...args, '--json', '--config', c.config], {cwd: c.dir, env: c.env, timeoutMs: 170_000})
  const markers = () => Object.fromEntries(HOSTS.map((h) => [h, markerOf(bed, h)]))
  const served = async () =>
    Object.fromEntries(await Promise.all(HOSTS.map(async (h) => [h, (await servedBy(bed, h)).version])))
  const phases = (h: string) =>
    journalOf(bed, h)
      .filter((e) => e.event === 'phase')
      .map((e) => e.phase)
  let version = 1
  /** Every host on one fresh proven release; returns it. */
  async function baseline(): Promise<string> {
    const c = controller(bed, {}, `v${++version}`)
    const r = await run(c, 'deploy')
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    return r.json.release
  }
  const everyHostOn = async (id: string) => {
    expect(markers()).toEqual(Object.fromEntries(HOSTS.map((h) => [h, id])))
    expect(await served()).toEqual(markers())
  }

  it('two controllers: the second exits 5 naming the host and the owner; Ctrl-C restores the touched host (exit 130)', async () => {
    const x = await baseline()
    const a = controller(bed, {waves: [1, '100%'], pause: '120s'}, `v${++version}`)
    const phasesBefore = phases('h1').length
    const first = startCli(['deploy', '--config', a.config], {cwd: a.dir, env: {...a.env, CI: '1'}})
    // h1 (the canary) is live on the new release; the first controller pauses, holding every lock.
    await waitFor('the canary proven', () => phases('h1').slice(phasesBefore).includes('smoke'), 120_000, 200)
    const b = controller(bed, {}, `v${++version}`)
    const second = await run(b, 'deploy')
    expect(second.exitCode, second.stdout).toBe(5)
    expect(second.json.error.message).toMatch(/^host h1: target .* is locked by .*hotctl deploy/)
    expect(markers()).toEqual({...Object.fromEntries(HOSTS.map((h) => [h, x])), h1: markerOf(bed, 'h1')})
    expect(markerOf(bed, 'h1')).not.toBe(x)
    process.kill(first.pid!, 'SIGINT')
    const r = await first
    expect(r.exitCode, String(r.stderr)).toBe(130)
    await everyHostOn(x)
    expect(endsOf(bed, 'h1').at(-1)).toBe('deploy interrupted')
    // Every lock was released: the second controller goes through now.
    const again = await run(b, 'deploy')
    expect(again.exitCode, again.stdout + again.stderr).toBe(0)
    await everyHostOn(again.json.release)
  })

  it('controller killed with -9 mid-wave: a second, state-free checkout sees it in status and restores it first', async () => {
    const x = await baseline()
    const a = controller(bed, {waves: [1, '100%'], pause: '120s'}, `v${++version}`)
    const phasesBefore = phases('h1').length
    const first = startCli(['deploy', '--config', a.config], {cwd: a.dir, env: {...a.env, CI: '1'}})
    await waitFor('the canary proven', () => phases('h1').slice(phasesBefore).includes('smoke'), 120_000, 200)
    process.kill(-first.pid!, 'SIGKILL') // the controller and its ssh connections, as a lost machine
    await first
    const y = markerOf(bed, 'h1')
    expect(y).not.toBe(x)
    // Another checkout (no state of its own: everything is on the hosts).
    const other = controller(bed, {}, `v${++version}`)
    const st = await run(other, 'status')
    expect(st.exitCode, st.stdout).toBe(4)
    const h1 = st.json.hosts.find((h: {name: string}) => h.name === 'h1').status
    expect(h1.interrupted).toMatchObject({op: 'deploy', id: y})
    expect(h1.needsAttention).toBe(true)
    expect(st.json.consistent).toBe(false)
    const r = await run(other, 'deploy')
    expect(r.exitCode, r.stdout + r.stderr).toBe(0)
    const report = r.json.hosts.find((h: {name: string}) => h.name === 'h1')
    expect(report.recovery).toMatchObject({interrupted: y, op: 'deploy', restored: {ok: true, release: x}})
    await everyHostOn(r.json.release)
    expect(endsOf(bed, 'h1').slice(-3)).toEqual(['recover recovered', 'deploy interrupted', 'deploy ok'])
  })

  it('a connection cut mid-sync: the host cannot be restored while cut: exit 4 names it, status shows it; the next run restores it', async () => {
    const x = await baseline()
    const c = controller(
      bed,
      {ssh: {config: bed.sshConfig, connectTimeout: '3s', serverAliveInterval: '1s', timeout: '5s'}},
      `v${++version}`,
    )
    // A large file so that the sync takes a moment.
    fs.writeFileSync(path.join(c.src, 'app', 'blob.bin'), Buffer.alloc(8 * 1024 * 1024, 7))
    const before = phases('h2').length
    const p = startCli(['deploy', '--json', '--config', c.config], {cwd: c.dir, env: {...c.env, CI: '1'}})
    await waitFor('h2 syncing', () => phases('h2').slice(before).includes('sync'), 120_000, 20)
    await bed.cut('h2', 'blackhole')
    try {
      await cutRun(p)
    } finally {
      await bed.restore('h2')
    }
    const r2 = await run(c, 'rollback', '--to', x)
    expect(r2.exitCode, r2.stdout + r2.stderr).toBe(0)
    expect(r2.json.hosts.find((h: {name: string}) => h.name === 'h2').recovery).toMatchObject({restored: {ok: true}})
    await everyHostOn(x)

    async function cutRun(p: ReturnType<typeof startCli>) {
      const r = await p
      const json = JSON.parse(String(r.stdout))
      expect(r.exitCode, String(r.stdout)).toBe(4)
      expect(json.error).toMatch(/NEEDS ATTENTION on h2$/)
      expect(json.hosts.find((h: {name: string}) => h.name === 'h2')).toMatchObject({attention: true, live: null})
      for (const h of ['h1', 'h3']) expect(markerOf(bed, h), h).toBe(x)
      const st = await run(c, 'status')
      expect(st.exitCode).toBe(4)
      expect(st.json.hosts.find((h: {name: string}) => h.name === 'h2').error).toBeTruthy()
    }
  })

  it('a frozen host (sshd and its sessions stopped) is bounded by timeouts: exit 4 names it, the others are restored', async () => {
    const x = await baseline()
    const c = controller(
      bed,
      {ssh: {config: bed.sshConfig, connectTimeout: '3s', serverAliveInterval: '1s', timeout: '5s'}},
      `v${++version}`,
    )
    const before = phases('h3').length
    const started = Date.now()
    const p = startCli(['deploy', '--json', '--config', c.config], {cwd: c.dir, env: {...c.env, CI: '1'}})
    await waitFor('h3 backing up', () => phases('h3').slice(before).includes('backup'), 120_000, 20)
    await bed.freeze('h3')
    try {
      const r = await p
      const json = JSON.parse(String(r.stdout))
      expect(r.exitCode, String(r.stdout)).toBe(4)
      expect(json.error).toMatch(/NEEDS ATTENTION on h3$/)
      expect(Date.now() - started).toBeLessThan(150_000) // bounded (startCli's own limit is 120 s)
      for (const h of ['h1', 'h2']) expect(markerOf(bed, h), h).toBe(x)
    } finally {
      await bed.thaw('h3')
    }
    const r2 = await run(c, 'rollback', '--to', x)
    expect(r2.exitCode, r2.stdout + r2.stderr).toBe(0)
    await everyHostOn(x)
  })

  it('disk full on one host: that host fails, every host ends on the release it had', async () => {
    const x = await baseline()
    const c = controller(bed, {}, `v${++version}`)
    fs.writeFileSync(path.join(c.src, 'app', 'blob.bin'), Buffer.alloc(6 * 1024 * 1024, 9))
    await bed.fillDisk('h3', 256 * 1024)
    try {
      const r = await run(c, 'deploy')
      expect([1, 3], r.stdout + r.stderr).toContain(r.exitCode)
      expect(r.json.failedHost ?? r.json.error.message).toMatch(/h3/)
      await everyHostOn(x)
    } finally {
      await bed.freeDisk('h3')
    }
  })

  it('Ansible inventories, INI and YAML, with --limit', async () => {
    const x = await baseline()
    const c = controller(bed, {}, `v${++version}`)
    const entries = bed.hostEntries()
    const ini = [
      '[web]',
      ...entries.map((e) => `${e.name} ansible_host=${e.host} ansible_port=${e.port} ansible_user=${e.user}`),
      '',
    ].join('\n')
    fs.writeFileSync(path.join(c.dir, 'hosts.ini'), ini)
    c.write({hosts: undefined, inventory: 'hosts.ini', group: 'web'})
    const one = await run(c, 'deploy', '--limit', 'h2')
    expect(one.exitCode, one.stdout + one.stderr).toBe(0)
    expect(one.json.hosts.map((h: {name: string}) => h.name)).toEqual(['h2'])
    expect(markers()).toEqual({h1: x, h2: one.json.release, h3: x})
    const typo = await run(c, 'deploy', '--limit', 'h2,hx')
    expect(typo.exitCode).toBe(2)
    expect(typo.json.error.message).toBe('--limit: hx matches no host')

    const yaml = [
      'all:',
      '  children:',
      '    app:',
      '      vars:',
      '        ansible_user: root',
      '      hosts:',
      ...entries.flatMap((e) => [
        `        ${e.name}:`,
        `          ansible_host: ${e.host}`,
        `          ansible_port: ${e.port}`,
      ]),
      '',
    ].join('\n')
    fs.writeFileSync(path.join(c.dir, 'inventory.yml'), yaml)
    c.write({hosts: undefined, inventory: 'inventory.yml', group: 'app'})
    const rest = await run(c, 'deploy', '--limit', 'h*,!h2')
    expect(rest.exitCode, rest.stdout + rest.stderr).toBe(0)
    expect(rest.json.hosts.map((h: {name: string}) => h.name)).toEqual(['h1', 'h3'])
    // One release id for this deploy; h2 keeps the one it got alone.
    expect(markers()).toEqual({h1: rest.json.release, h2: one.json.release, h3: rest.json.release})
  })
})
