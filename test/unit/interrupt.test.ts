import fs from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SmokeSpec} from '../../src/config/schema.js'
import {INTERRUPT_BUDGET_MS, Interrupt, InterruptReason} from '../../src/interrupt.js'
import {runCommand, type ServiceRunner} from '../../src/service/run-command.js'
import {runSmoke} from '../../src/service/smoke.js'
import {tmpDir} from './helpers.js'

const interruptAt = (at: number) => {
  const c = new AbortController()
  c.abort(new InterruptReason('SIGINT', at))
  return new Interrupt(c.signal)
}

describe('Interrupt', () => {
  it('before the signal: no deadline, limits unchanged', () => {
    const i = new Interrupt(new AbortController().signal)
    expect(i.fired).toBe(false)
    expect(i.deadline).toBe(Number.POSITIVE_INFINITY)
    expect(i.shortHttp({timeoutMs: 10_000, retries: 2})).toEqual({timeoutMs: 10_000, retries: 2})
    expect(i.shortCommandMs(300_000)).toBe(300_000)
    expect(i.shortCommandMs()).toBeUndefined()
  })

  it('the deadline runs from the signal (the abort reason), not from when the restore looks', () => {
    const at = Date.now() - 1000
    expect(interruptAt(at).deadline).toBe(at + INTERRUPT_BUDGET_MS)
  })

  it('right after the signal: HTTP ≤ 2 s with at most one retry, commands ≤ 3 s', () => {
    const i = interruptAt(Date.now())
    expect(i.shortHttp({timeoutMs: 10_000, retries: 2})).toEqual({timeoutMs: 2000, retries: 1})
    expect(i.shortHttp({timeoutMs: 800, retries: 0})).toEqual({timeoutMs: 800, retries: 0})
    expect(i.shortCommandMs(300_000)).toBe(3000)
    expect(i.shortCommandMs()).toBe(3000)
  })

  it('near and past the deadline: what is left, no retry, but never less than one short try', () => {
    const near = interruptAt(Date.now() - INTERRUPT_BUDGET_MS + 1200).shortHttp({timeoutMs: 10_000, retries: 2})
    expect(near.retries).toBe(0)
    expect(near.timeoutMs).toBeLessThanOrEqual(1200)
    expect(near.timeoutMs).toBeGreaterThan(900)
    expect(interruptAt(Date.now() - 60_000).shortHttp({timeoutMs: 10_000, retries: 2})).toEqual({
      timeoutMs: 500,
      retries: 0,
    })
    expect(interruptAt(Date.now() - 60_000).shortCommandMs(300_000)).toBe(500)
  })

  it('an abort without an InterruptReason counts from when it was seen', () => {
    const c = new AbortController()
    const i = new Interrupt(c.signal)
    const before = Date.now()
    c.abort()
    expect(i.deadline).toBeGreaterThanOrEqual(before + INTERRUPT_BUDGET_MS)
    expect(i.deadline).toBeLessThanOrEqual(Date.now() + INTERRUPT_BUDGET_MS)
  })
})

describe('runSmoke in a restore (with the operator interrupt)', () => {
  let server: http.Server
  let base = ''
  beforeAll(async () => {
    // /delay/<ms>: answers 200 after that long.
    server = http.createServer((req, res) => setTimeout(() => res.end('ok'), Number(req.url?.split('/')[2] ?? 0)))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => new Promise((r) => server.close(r)))

  const httpCheck = (delayMs: number): SmokeSpec => ({
    name: 'page',
    url: `${base}/delay/${delayMs}`,
    method: 'GET',
    headers: {},
    expect: {status: 200},
    timeout: '10s',
    retries: 2,
  })
  const commandCheck = (command: string): SmokeSpec => ({name: 'suite', command, timeout: '5m', retries: 0})
  const opts = (interrupt: Interrupt) => {
    const cwd = tmpDir()
    const run: ServiceRunner = (cmd, o) => runCommand(cmd, {...o, cwd})
    return {run, env: {}, interrupt}
  }

  it('after the interrupt an HTTP check gets 2 s, not its configured 10 s × 3 tries', async () => {
    const t = Date.now()
    const r = await runSmoke(httpCheck(5000), opts(interruptAt(Date.now())))
    expect(r.ok).toBe(false)
    expect(r.detail).toMatch(/no answer within 2s/)
    expect(Date.now() - t).toBeLessThan(9000) // 2 s + pause + one 2 s retry; the configured limits alone would pass at 5 s
  })

  it('an HTTP check under way when the interrupt comes is run again in the short form, and passes', async () => {
    const c = new AbortController()
    setTimeout(() => c.abort(new InterruptReason('SIGINT')), 200)
    const r = await runSmoke(httpCheck(1000), opts(new Interrupt(c.signal)))
    expect(r).toMatchObject({ok: true})
  })

  it('after the interrupt a command check is skipped without running', async () => {
    const dir = tmpDir()
    const ran = path.join(dir, 'ran')
    const r = await runSmoke(commandCheck(`touch ${ran}`), opts(interruptAt(Date.now())))
    expect(r).toMatchObject({name: 'suite', ok: false, skipped: true})
    expect(r.detail).toMatch(/skipped/)
    expect(fs.existsSync(ran)).toBe(false)
  })

  it('a command check running when the interrupt comes is stopped at once and reported skipped', async () => {
    const c = new AbortController()
    setTimeout(() => c.abort(new InterruptReason('SIGTERM')), 300)
    const t = Date.now()
    const r = await runSmoke(commandCheck('sleep 30'), opts(new Interrupt(c.signal)))
    expect(r).toMatchObject({ok: false, skipped: true})
    expect(Date.now() - t).toBeLessThan(10_000)
  })

  it('without the interrupt firing, a failing command check is a failure, not skipped', async () => {
    const r = await runSmoke(commandCheck('exit 3'), opts(new Interrupt(new AbortController().signal)))
    expect(r.ok).toBe(false)
    expect(r.skipped).toBeUndefined()
    expect(r.detail).toMatch(/exited 3/)
  })
})

describe('runCommand on an interrupt', () => {
  it('a command ignoring SIGTERM is killed after 1 s, not 3: the restore waits for it inside the CI grace period', async () => {
    const c = new AbortController()
    setTimeout(() => c.abort(new InterruptReason('SIGINT')), 200)
    const t = Date.now()
    const r = await runCommand(`trap '' TERM; sleep 30`, {cwd: tmpDir(), signal: c.signal})
    expect(r.canceled).toBe(true)
    // 200 ms + 1 s grace; the former 3 s grace cannot come in under 3.2 s.
    expect(Date.now() - t).toBeLessThan(3000)
  })
})
