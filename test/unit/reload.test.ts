import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {getEventListeners} from 'node:events'
import {afterEach, describe, expect, it} from 'vitest'
import {parseConfig} from '../../src/config/load.js'
import type {ServiceSpec} from '../../src/config/resolve.js'
import type {StatusSpec} from '../../src/config/schema.js'
import {
  confirmLive,
  judge,
  LiveConfirmation,
  oneLine,
  RetriggerClock,
  reportedVersion,
  worstOf,
  type StatusReading,
  type Verdict,
} from '../../src/service/reload.js'

/** A status spec with the config's defaults, pointing at `url`. */
function statusSpec(url = 'http://127.0.0.1:1/status', over: Record<string, unknown> = {}): StatusSpec {
  return parseConfig({target: '/opt/app', reload: {status: {url, ...over}}}, '/cfg/hotctl.config.yaml').services[0]!
    .status!
}

describe('status defaults', () => {
  it('state, fail and restart states, last error, settle 2s, grace 5s', () => {
    expect(statusSpec()).toMatchObject({
      version: 'version',
      state: 'state',
      failStates: ['rejected'],
      restartStates: ['restart_required'],
      lastError: 'last_error',
      settle: '2s',
      grace: '5s',
    })
  })
  it('retrigger defaults to 10s', () => {
    expect(statusSpec().retrigger).toBe('10s')
  })
  it('probes defaults to 4; anything but a whole number from 1 to 32 is a config error naming the field', () => {
    expect(statusSpec().probes).toBe(4)
    expect(statusSpec(undefined, {probes: 1}).probes).toBe(1)
    for (const bad of [0, 33, 2.5, '4'])
      expect(() => statusSpec(undefined, {probes: bad})).toThrow(/reload\.status\.probes/)
  })
  it('a bad settle, grace or retrigger is a config error naming the field', () => {
    expect(() => statusSpec(undefined, {retrigger: 'often'})).toThrow(/reload\.status\.retrigger/)
    expect(() => statusSpec(undefined, {settle: 'a while'})).toThrow(/reload\.status\.settle/)
    expect(() => statusSpec(undefined, {grace: -1})).toThrow(/reload\.status\.grace/)
  })
})

describe('oneLine', () => {
  it('strings: the first line; tracebacks: the last', () => {
    expect(oneLine('boom\nmore')).toBe('boom')
    expect(oneLine('Traceback (most recent call last):\n  File "x.py", line 1\nSyntaxError: invalid syntax\n')).toBe(
      'SyntaxError: invalid syntax',
    )
  })
  it("the agent's {type, message, traceback}: type and message, never the traceback", () => {
    expect(
      oneLine({
        type: 'SyntaxError',
        message: 'app/h.py: invalid syntax (h.py, line 3)',
        traceback: 'Traceback ...\nsecret frame',
      }),
    ).toBe('SyntaxError: app/h.py: invalid syntax (h.py, line 3)')
    expect(oneLine({type: 'RestartRequired', message: 'RestartRequired already'})).toBe('RestartRequired already')
  })
  it('nothing for null, undefined and ""; long lines are cut', () => {
    expect(oneLine(null)).toBeUndefined()
    expect(oneLine(undefined)).toBeUndefined()
    expect(oneLine('')).toBeUndefined()
    expect(oneLine('x'.repeat(1000))!.length).toBe(300)
  })
})

describe('judge', () => {
  const spec = statusSpec()
  const r = (over: Partial<StatusReading>): StatusReading => ({version: null, http: 200, ...over})
  it('the expected version matches whatever the state says (a restore of what kept running)', () => {
    expect(judge(r({version: 'R2', state: 'rejected'}), spec, 'R2')).toEqual({kind: 'match'})
  })
  it("a fail state fails, quoting the service's error", () => {
    expect(judge(r({version: 'R1', state: 'rejected', serviceError: 'SyntaxError: bad'}), spec, 'R2')).toEqual({
      kind: 'failed',
      why: 'the service reports state "rejected": SyntaxError: bad',
    })
  })
  it("a restart state names the files from the agent's message", () => {
    const v = judge(
      r({
        version: 'R1',
        state: 'restart_required',
        serviceError: 'RestartRequired: changes need a process restart: requirements.txt, x.so',
      }),
      spec,
      'R2',
    )
    expect(v).toEqual({kind: 'restart', why: 'the service says these changes need a restart: requirements.txt, x.so'})
    expect(judge(r({state: 'restart_required'}), spec, 'R2')).toEqual({
      kind: 'restart',
      why: 'the service says these changes need a restart: state "restart_required"',
    })
  })
  it('configured paths and states are used', () => {
    const custom = statusSpec(undefined, {state: 'reload.phase', failStates: ['error'], restartStates: []})
    expect(judge(r({state: 'error'}), custom, 'R2').kind).toBe('failed')
    expect(judge(r({state: 'restart_required'}), custom, 'R2').kind).toBe('waiting')
  })
  it('5xx and refused connections are "down"; 4xx, timeouts and old versions are waiting', () => {
    expect(judge(r({http: 502, error: 'status answered HTTP 502'}), spec, 'R2').kind).toBe('down')
    expect(judge({version: null, noAnswer: 'refused', error: 'connect ECONNREFUSED'}, spec, 'R2').kind).toBe('down')
    expect(judge(r({http: 404, error: 'status answered HTTP 404'}), spec, 'R2').kind).toBe('waiting')
    expect(judge({version: null, noAnswer: 'timeout', error: 'no answer within 10 ms'}, spec, 'R2')).toMatchObject({
      kind: 'waiting',
      noAnswer: true,
    })
    expect(judge(r({version: 'R1', state: 'live'}), spec, 'R2')).toEqual({
      kind: 'waiting',
      why: 'reports version "R1" (state "live")',
      other: true,
    })
    // Only an answer naming another release (or none) is "other": not a 4xx, not a timeout.
    expect(judge(r({version: null}), spec, 'R2')).toMatchObject({kind: 'waiting', other: true})
    expect(judge(r({http: 404, error: 'status answered HTTP 404'}), spec, 'R2')).not.toHaveProperty('other')
  })
})

describe('LiveConfirmation (clock passed in)', () => {
  const match: Verdict = {kind: 'match'}
  const old: Verdict = {kind: 'waiting', why: 'reports version "R1"'}
  const down: Verdict = {kind: 'down', why: 'status answered HTTP 500'}
  const slow: Verdict = {kind: 'waiting', why: 'no answer within 10 ms', noAnswer: true}

  it('settle 0: the first matching answer confirms (the old behaviour)', () => {
    expect(new LiveConfirmation({settleMs: 0, graceMs: 5000}, 0).step(match, 10).kind).toBe('confirmed')
  })

  it('confirmed only when matching answers in a row span the settle window, and at least 3 of them', () => {
    const c = new LiveConfirmation({settleMs: 2000, graceMs: 5000}, 0)
    expect(c.step(match, 100).kind).toBe('pending')
    expect(c.step(match, 1000).kind).toBe('pending')
    expect(c.step(match, 2099).kind).toBe('pending')
    expect(c.step(match, 2100).kind).toBe('confirmed')
    const two = new LiveConfirmation({settleMs: 2000, graceMs: 5000}, 0)
    two.step(match, 0)
    expect(two.step(match, 5000).kind).toBe('pending') // only 2 answers, however far apart
    expect(two.step(match, 5001).kind).toBe('confirmed')
  })

  it('an old worker answering in the window starts it again', () => {
    const c = new LiveConfirmation({settleMs: 1000, graceMs: 5000}, 0)
    c.step(match, 0)
    c.step(match, 500)
    expect(c.step(old, 900).kind).toBe('pending')
    expect(c.last).toBe('reports version "R1" after reporting the release 2 time(s)')
    c.step(match, 1000)
    c.step(match, 1500)
    expect(c.step(match, 1999).kind).toBe('pending')
    expect(c.step(match, 2000).kind).toBe('confirmed')
  })

  it('a fail or restart state fails at once, even inside a settle window', () => {
    const c = new LiveConfirmation({settleMs: 1000, graceMs: 5000}, 0)
    c.step(match, 0)
    expect(c.step({kind: 'failed', why: 'the service reports state "rejected"'}, 100)).toEqual({
      kind: 'failed',
      message: 'the service reports state "rejected" after reporting the release 1 time(s)',
    })
    expect(new LiveConfirmation({settleMs: 0, graceMs: 0}, 0).step({kind: 'restart', why: 'x'}, 0)).toEqual({
      kind: 'restart',
      message: 'x',
    })
  })

  it('5xx/refused for the grace period fails; timeouts neither start nor end it', () => {
    const c = new LiveConfirmation({settleMs: 0, graceMs: 3000}, 0)
    expect(c.step(down, 100).kind).toBe('pending')
    expect(c.step(slow, 2000).kind).toBe('pending')
    expect(c.step(down, 3099).kind).toBe('pending')
    expect(c.step(down, 3100)).toEqual({
      kind: 'down',
      message: 'status answered HTTP 500 for 3s (reload.status.grace 3s)',
    })
  })

  it('any answer ends a down period: old workers still answering mean the server is still swapping them', () => {
    const c = new LiveConfirmation({settleMs: 0, graceMs: 3000}, 0)
    c.step(down, 0)
    c.step(old, 2000)
    expect(c.step(down, 3500).kind).toBe('pending')
    expect(c.step(down, 6499).kind).toBe('pending')
    expect(c.step(down, 6500).kind).toBe('down')
  })

  it('times out after reload.timeout, or after timeout + settle once a window is under way', () => {
    const c = new LiveConfirmation({settleMs: 2000, graceMs: 5000}, 1000)
    c.step(old, 5999)
    expect(c.expired(5999, 5000)).toBe(false)
    expect(c.expired(6000, 5000)).toBe(true)
    c.step(match, 6000)
    expect(c.expired(7999, 5000)).toBe(false)
    expect(c.expired(8000, 5000)).toBe(true)
  })
})

describe('RetriggerClock (clock passed in)', () => {
  const old: Verdict = {kind: 'waiting', why: 'reports version "R1"', other: true}
  const match: Verdict = {kind: 'match'}
  const down: Verdict = {kind: 'down', why: 'status answered HTTP 500'}
  const slow: Verdict = {kind: 'waiting', why: 'no answer within 10 ms', noAnswer: true}

  it('only other releases for the interval: fire again, then wait twice as long', () => {
    const c = new RetriggerClock(1000, 0)
    expect(c.due(old, 999)).toBe(false)
    expect(c.due(old, 1000)).toBe(true)
    expect(c.due(old, 2999)).toBe(false)
    expect(c.due(old, 3000)).toBe(true)
    expect(c.due(old, 6999)).toBe(false)
    expect(c.due(old, 7000)).toBe(true)
    expect(c.fired).toBe(3)
  })

  it('5xx and unanswered polls (workers restarting) start the wait again', () => {
    for (const sign of [down, slow]) {
      const c = new RetriggerClock(1000, 0)
      c.due(old, 900)
      c.due(sign, 950)
      expect(c.due(old, 1900), sign.kind).toBe(false)
      expect(c.due(old, 1950), sign.kind).toBe(true)
    }
  })

  it('the release answering fires nothing, but a mix of old and new (a worker that kept the old code) does', () => {
    const c = new RetriggerClock(1000, 0)
    expect(c.due(match, 1500)).toBe(false)
    expect(c.due(old, 1600)).toBe(true)
  })

  it('0 never fires', () => {
    const c = new RetriggerClock(0, 0)
    expect(c.due(old, 1e9)).toBe(false)
    expect(c.fired).toBe(0)
  })
})

describe('worstOf (a burst of polls counts as its worst answer)', () => {
  const match: Verdict = {kind: 'match'}
  const old: Verdict = {kind: 'waiting', why: 'reports version "R1"', other: true}
  const silent: Verdict = {kind: 'waiting', why: 'timed out', noAnswer: true}
  const down: Verdict = {kind: 'down', why: 'status answered HTTP 502'}
  const failed: Verdict = {kind: 'failed', why: 'rejected'}
  it('a match only when every answer matched', () => {
    expect(worstOf([match, match, match])).toBe(match)
    expect(worstOf([match, old, match])).toBe(old)
    expect(worstOf([match, silent])).toBe(silent)
  })
  it('a failed state over everything; another release over 5xx (a worker still up); 5xx over silence', () => {
    expect(worstOf([old, down, failed, match])).toBe(failed)
    expect(worstOf([down, old, silent])).toBe(old)
    expect(worstOf([silent, down, match])).toBe(down)
  })
})

// ---------------------------------------------------------------------------------------------
// confirmLive against a real local HTTP server whose answers the test scripts.

interface Scripted {
  url: string
  /** Connections accepted so far. */
  connections(): number
  requests(): number
  close(): Promise<void>
}

const servers: Scripted[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

/** Answers /status with `answer(n)` for the n-th request (0-based): [status code, JSON body]. */
async function scripted(answer: (n: number) => [number, unknown]): Promise<Scripted> {
  let n = 0
  let conns = 0
  const server = http.createServer((_req, res) => {
    const [code, body] = answer(n++)
    res.statusCode = code
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(body))
  })
  server.on('connection', () => conns++)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const s: Scripted = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`,
    connections: () => conns,
    requests: () => n,
    close: async () => {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
  servers.push(s)
  return s
}

const svc = (name: string, url: string, over: Record<string, unknown> = {}): ServiceSpec => ({
  name,
  status: statusSpec(url, over),
})

describe('confirmLive (real HTTP)', {timeout: 30_000}, () => {
  it('keeps polling through the settle window; one old answer in it restarts the window', async () => {
    // 2 old answers, 3 new, 1 old (an old worker still up), then new for good.
    const s = await scripted((n) => [200, {version: n < 2 || n === 5 ? 'R1' : 'R2', state: 'live'}])
    const t = Date.now()
    expect(await confirmLive([svc('web', s.url, {settle: '600ms'})], 'R2', {timeoutMs: 10_000})).toEqual([])
    expect(s.requests()).toBeGreaterThanOrEqual(9) // 6 scripted + at least 3 in the last window
    expect(Date.now() - t).toBeGreaterThanOrEqual(600)
  })

  it("sees a worker left on the old release behind one that takes every lone connection (uWSGI's idle worker)", async () => {
    // Two "workers": the new one answers every request that arrives while it is idle (as the
    // idle uWSGI worker wins each accept); the old one only what overlaps a request in flight.
    let busy = 0
    const seen = {new: 0, old: 0}
    const server = http.createServer((_req, res) => {
      const version = busy === 0 ? 'R2' : 'R1'
      seen[version === 'R2' ? 'new' : 'old']++
      busy++
      setTimeout(() => {
        busy--
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({version}))
      }, 20)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    servers.push({
      url: '',
      connections: () => 0,
      requests: () => 0,
      close: async () => {
        server.closeAllConnections()
        await new Promise((r) => server.close(r))
      },
    })
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`
    const failures = await confirmLive([svc('web', url, {settle: '500ms'})], 'R2', {timeoutMs: 1500})
    expect(seen.old).toBeGreaterThan(0)
    expect(failures).toEqual([
      {
        name: 'web',
        kind: 'timeout',
        message: expect.stringMatching(/^reports version "R1" after reporting the release/),
      },
    ])
    // One at a time (probes: 1, the old behaviour) the old worker never answers and the lie is
    // confirmed: the case the bursts exist for.
    seen.old = 0
    expect(await confirmLive([svc('web', url, {settle: '500ms', probes: 1})], 'R2', {timeoutMs: 1500})).toEqual([])
    expect(seen.old).toBe(0)
  })

  it('opens a new connection for every poll (a kept-alive one would stay with one worker)', async () => {
    const s = await scripted(() => [200, {version: 'R2'}])
    expect(await confirmLive([svc('web', s.url, {settle: '500ms'})], 'R2', {timeoutMs: 10_000})).toEqual([])
    expect(s.requests()).toBeGreaterThanOrEqual(3)
    expect(s.connections()).toBe(s.requests())
  })

  it('a rejected reload fails at the first answer saying so, quoting last_error, long before the timeout', async () => {
    const s = await scripted(() => [
      200,
      {
        version: 'R1',
        state: 'rejected',
        last_error: {type: 'SyntaxError', message: 'app/h.py: invalid syntax', traceback: 'Traceback...'},
      },
    ])
    const t = Date.now()
    const failures = await confirmLive([svc('web', s.url)], 'R2', {timeoutMs: 20_000})
    expect(failures).toEqual([
      {
        name: 'web',
        kind: 'failed',
        message: 'the service reports state "rejected": SyntaxError: app/h.py: invalid syntax',
      },
    ])
    expect(s.requests()).toBe(1)
    expect(Date.now() - t).toBeLessThan(5000)
  })

  it('one service failing ends the wait for the others', async () => {
    const bad = await scripted(() => [
      200,
      {version: 'R1', state: 'restart_required', last_error: 'changes need a process restart: requirements.txt'},
    ])
    const slow = await scripted(() => [200, {version: 'R1', state: 'live'}])
    const t = Date.now()
    const failures = await confirmLive([svc('api', slow.url), svc('worker', bad.url)], 'R2', {timeoutMs: 20_000})
    expect(failures).toEqual([
      {name: 'worker', kind: 'restart', message: 'the service says these changes need a restart: requirements.txt'},
    ])
    expect(Date.now() - t).toBeLessThan(5000)
  })

  it('persistent 5xx fails after the grace period, and retries nothing itself', async () => {
    const s = await scripted(() => [500, {error: 'boom'}])
    const t = Date.now()
    const failures = await confirmLive([svc('web', s.url, {grace: '1s', retries: 5})], 'R2', {timeoutMs: 20_000})
    expect(failures).toHaveLength(1)
    expect(failures[0]).toMatchObject({name: 'web', kind: 'down'})
    expect(failures[0]!.message).toMatch(/^status answered HTTP 500 for 1(\.\d)?s \(reload\.status\.grace 1s\)$/)
    expect(Date.now() - t).toBeLessThan(10_000)
    expect(s.requests()).toBeLessThan(15) // one request per 250 ms poll, no inner retries
  })

  it('refused connections fail after the grace period', async () => {
    const s = await scripted(() => [200, {}])
    await s.close()
    const failures = await confirmLive([svc('web', s.url, {grace: '700ms'})], 'R2', {timeoutMs: 20_000})
    expect(failures).toHaveLength(1)
    expect(failures[0]!.kind).toBe('down')
    expect(failures[0]!.message).toMatch(/^status refused the connection .*ECONNREFUSED.* for \d+ms/)
  })

  it('not live within the timeout: every pending service with what it last said', async () => {
    const a = await scripted(() => [200, {version: 'R1', state: 'live'}])
    const b = await scripted(() => [404, {}])
    const failures = await confirmLive([svc('a', a.url), svc('b', b.url)], 'R2', {timeoutMs: 600})
    expect(failures.sort((x, y) => x.name.localeCompare(y.name))).toEqual([
      {name: 'a', kind: 'timeout', message: 'reports version "R1" (state "live")'},
      {name: 'b', kind: 'timeout', message: 'status answered HTTP 404'},
    ])
  })

  it('a service failing after another timed out is the failure reported first', async () => {
    const stale = await scripted(() => [200, {version: 'R1'}])
    const t0 = Date.now()
    // Reports the release (a settle window under way, so no timeout yet), then says it rejected it.
    const flaky = await scripted(() =>
      Date.now() - t0 < 1000 ? [200, {version: 'R2'}] : [200, {version: 'R1', state: 'rejected'}],
    )
    const failures = await confirmLive([svc('stale', stale.url), svc('flaky', flaky.url, {settle: '5s'})], 'R2', {
      timeoutMs: 500,
    })
    expect(failures.map((f) => `${f.name} ${f.kind}`)).toEqual(['flaky failed', 'stale timeout'])
  })

  it('a service that drops the trigger (uWSGI mid-chain) gets it again, and the release goes live', async () => {
    // The "service": reports R1 until its trigger has been fired twice (the first one is dropped).
    let triggers = 1
    const s = await scripted(() => [200, {version: triggers >= 2 ? 'R2' : 'R1'}])
    const web: ServiceSpec = {...svc('web', s.url, {retrigger: '400ms', settle: 0}), trigger: {command: 'x'}}
    const fired: string[] = []
    const failures = await confirmLive([web], 'R2', {
      timeoutMs: 10_000,
      retrigger: async (x) => {
        fired.push(x.name)
        triggers++
        return 'ran'
      },
    })
    expect(failures).toEqual([])
    expect(fired).toEqual(['web'])
  })

  it('no retrigger without a trigger, with retrigger 0, or without the callback; the timeout says how often', async () => {
    const s = await scripted(() => [200, {version: 'R1'}])
    let n = 0
    const retrigger = async () => String(++n)
    const withTrigger = (over: Record<string, unknown>): ServiceSpec => ({
      ...svc('web', s.url, over),
      trigger: {command: 'x'},
    })
    await confirmLive([svc('web', s.url, {retrigger: '100ms'})], 'R2', {timeoutMs: 700, retrigger})
    await confirmLive([withTrigger({retrigger: 0})], 'R2', {timeoutMs: 700, retrigger})
    await confirmLive([withTrigger({retrigger: '100ms'})], 'R2', {timeoutMs: 700})
    expect(n).toBe(0)
    // Fired at the first polls past 100 ms, 200 ms and 400 ms more (polls are 250 ms apart): 2 or 3 times.
    const failures = await confirmLive([withTrigger({retrigger: '100ms'})], 'R2', {timeoutMs: 1200, retrigger})
    expect(n).toBeGreaterThanOrEqual(2)
    expect(failures[0]!.message).toBe(
      `reports version "R1" (no sign of a reload, so the trigger was fired again ${n} time(s); last ran)`,
    )
  })

  it('a retrigger that fails does not fail the confirm: the status still decides', async () => {
    let t0 = 0
    const s = await scripted(() => [200, {version: t0 && Date.now() - t0 > 300 ? 'R2' : 'R1'}])
    const web: ServiceSpec = {...svc('web', s.url, {retrigger: '200ms', settle: 0}), trigger: {command: 'x'}}
    const failures = await confirmLive([web], 'R2', {
      timeoutMs: 10_000,
      retrigger: async () => {
        t0 ||= Date.now()
        throw new Error('reload already in progress\nmore')
      },
    })
    expect(failures).toEqual([])
  })

  it('an interrupt ends it', async () => {
    const s = await scripted(() => [500, {}])
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 3000)
    const failures = await confirmLive([svc('web', s.url, {grace: '1h'})], 'R2', {timeoutMs: 60_000, signal: ac.signal})
    expect(failures).toEqual([{name: 'web', kind: 'interrupted', message: 'interrupted'}])
    expect(s.requests()).toBeGreaterThan(11)
  })

  it('many failing polls leave no abort listener behind: no MaxListenersExceededWarning', async () => {
    const s = await scripted((n) => (n < 14 ? [500, {}] : [200, {version: 'R2'}]))
    const ac = new AbortController()
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`)
    process.on('warning', onWarning)
    try {
      expect(
        await confirmLive([svc('web', s.url, {settle: 0, grace: '1h'})], 'R2', {timeoutMs: 60_000, signal: ac.signal}),
      ).toEqual([])
      await new Promise((r) => setTimeout(r, 50)) // warnings are emitted on a later tick
    } finally {
      process.off('warning', onWarning)
    }
    expect(s.requests()).toBe(15)
    expect(warnings).toEqual([])
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0)
  })
})

describe('reportedVersion', () => {
  it('reads version, state and the last error at the configured paths', async () => {
    const s = await scripted(() => [200, {data: {v: 'R2', phase: 'live', err: 'x\ny'}}])
    const r = await reportedVersion(statusSpec(s.url, {version: 'data.v', state: 'data.phase', lastError: 'data.err'}))
    expect(r).toMatchObject({version: 'R2', http: 200, state: 'live', serviceError: 'x'})
    await s.close()
  })
})
