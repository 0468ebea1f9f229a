import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {getEventListeners} from 'node:events'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {atPath, isSubset, NoAnswerError, request, sleep} from '../../src/service/http.js'

describe('atPath', () => {
  const doc = {version: '1', data: {release: {id: 'r1'}, list: [{n: 1}, {n: 2}]}, nil: null, zero: 0}
  it('reads nested values by dot path', () => {
    expect(atPath(doc, 'version')).toBe('1')
    expect(atPath(doc, 'data.release.id')).toBe('r1')
    expect(atPath(doc, 'data.list.1.n')).toBe(2)
    expect(atPath(doc, 'zero')).toBe(0)
    expect(atPath(doc, 'nil')).toBeNull()
  })
  it('missing paths and paths through non-objects are undefined', () => {
    expect(atPath(doc, 'nope')).toBeUndefined()
    expect(atPath(doc, 'version.length')).toBeUndefined()
    expect(atPath(doc, 'nil.x')).toBeUndefined()
    expect(atPath('text', 'a')).toBeUndefined()
    expect(atPath(undefined, 'a')).toBeUndefined()
  })
  it('an empty path is the document itself', () => {
    expect(atPath(doc, '')).toBe(doc)
  })
})

describe('isSubset', () => {
  it('leaves compare by strict equality', () => {
    expect(isSubset(1, 1)).toBe(true)
    expect(isSubset('1', 1)).toBe(false)
    expect(isSubset(null, null)).toBe(true)
    expect(isSubset(null, undefined)).toBe(false)
    expect(isSubset(true, 'true')).toBe(false)
  })
  it('objects: every expected key must match, extra actual keys are fine', () => {
    expect(isSubset({a: 1}, {a: 1, b: 2})).toBe(true)
    expect(isSubset({a: 1, b: 2}, {a: 1})).toBe(false)
    expect(isSubset({a: {b: {c: 'x'}}}, {a: {b: {c: 'x', d: 1}, e: 2}})).toBe(true)
    expect(isSubset({a: {b: {c: 'x'}}}, {a: {b: {c: 'y'}}})).toBe(false)
    expect(isSubset({}, {anything: 1})).toBe(true)
  })
  it('an object is not a subset of a non-object', () => {
    expect(isSubset({a: 1}, null)).toBe(false)
    expect(isSubset({a: 1}, 'a')).toBe(false)
    expect(isSubset({}, null)).toBe(false)
    expect(isSubset({a: undefined}, {})).toBe(true)
  })
  it('arrays element-wise', () => {
    expect(isSubset([1, 2], [1, 2])).toBe(true)
    expect(isSubset([1, 2], [1, 3])).toBe(false)
    expect(isSubset([{id: 1}], [{id: 1, x: 2}])).toBe(true)
    expect(isSubset([1], {0: 1})).toBe(false)
    expect(isSubset([1, 2, 3], [1, 2])).toBe(false)
  })
  it('an object expected against an array actual compares by index keys', () => {
    expect(isSubset({a: [1]}, {a: 'x'})).toBe(false)
  })
})

describe('request (local server)', () => {
  let server: http.Server
  let base = ''
  let hits = 0
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits++
      if (req.url === '/json') {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({version: 'r7', method: req.method, auth: req.headers.authorization ?? null}))
      } else if (req.url === '/flaky') {
        res.statusCode = hits % 2 === 1 ? 503 : 200
        res.end(res.statusCode === 200 ? 'ok' : 'busy')
      } else if (req.url === '/down') {
        res.statusCode = 500
        res.end('down')
      } else if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 2000)
      } else {
        res.statusCode = 404
        res.end('not found')
      }
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })

  it('returns status, text and parsed JSON; sends method and headers', async () => {
    const r = await request({
      url: `${base}/json`,
      method: 'POST',
      headers: {authorization: 'Bearer t'},
      timeoutMs: 2000,
      retries: 0,
    })
    expect(r.status).toBe(200)
    expect(r.json).toEqual({version: 'r7', method: 'POST', auth: 'Bearer t'})
  })

  it('4xx is returned without retry; non-JSON leaves json undefined', async () => {
    hits = 0
    const r = await request({url: `${base}/missing`, method: 'GET', headers: {}, timeoutMs: 2000, retries: 3})
    expect(r).toEqual({status: 404, text: 'not found', json: undefined})
    expect(hits).toBe(1)
  })

  it('5xx is retried, and the last answer returned', async () => {
    hits = 0
    const ok = await request({url: `${base}/flaky`, method: 'GET', headers: {}, timeoutMs: 2000, retries: 2})
    expect(ok.status).toBe(200)
    expect(hits).toBe(2)
    hits = 0
    const down = await request({url: `${base}/down`, method: 'GET', headers: {}, timeoutMs: 2000, retries: 1})
    expect(down.status).toBe(500)
    expect(hits).toBe(2)
  })

  it('retryOn retries the named statuses too', async () => {
    hits = 0
    await request({url: `${base}/missing`, method: 'GET', headers: {}, timeoutMs: 2000, retries: 1}, {retryOn: [404]})
    expect(hits).toBe(2)
  })

  it('throws naming method, URL and timeout when no answer came', async () => {
    await expect(
      request({url: `${base}/slow`, method: 'GET', headers: {}, timeoutMs: 100, retries: 0}),
    ).rejects.toThrow(/GET .*\/slow: no answer within 100ms/)
  })

  it("retries leave no abort listener on the caller's signal (issue 11 item 13: 11 listeners warned)", async () => {
    const ac = new AbortController()
    for (let i = 0; i < 6; i++) {
      const down = await request(
        {url: `${base}/down`, method: 'GET', headers: {}, timeoutMs: 2000, retries: 2},
        {signal: ac.signal},
      )
      expect(down.status).toBe(500)
    }
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0)
  })

  it('an aborted signal cuts a retry wait short, and says it was interrupted', async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 100)
    const t = Date.now()
    const err = await request(
      {url: `${base}/slow`, method: 'GET', headers: {}, timeoutMs: 50, retries: 5},
      {signal: ac.signal},
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(NoAnswerError)
    expect((err as NoAnswerError).reason).toBe('interrupted')
    expect(Date.now() - t).toBeLessThan(1500) // not 250+500+1000+2000+2000 ms of backoff
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0)
  })

  it('sleep: resolves at once on an aborted signal, and removes its listener either way', async () => {
    const ac = new AbortController()
    await sleep(10, ac.signal)
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0)
    ac.abort()
    const t = Date.now()
    await sleep(5000, ac.signal)
    expect(Date.now() - t).toBeLessThan(1000)
  })

  it('says why no answer came: timeout or refused', async () => {
    const slow = await request({url: `${base}/slow`, method: 'GET', headers: {}, timeoutMs: 100, retries: 0}).catch(
      (e: unknown) => e,
    )
    expect((slow as NoAnswerError).reason).toBe('timeout')
    const s = http.createServer()
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    const port = (s.address() as AddressInfo).port
    await new Promise((r) => s.close(r))
    const refused = await request({
      url: `http://127.0.0.1:${port}/`,
      method: 'GET',
      headers: {},
      timeoutMs: 1000,
      retries: 0,
    }).catch((e: unknown) => e)
    expect((refused as NoAnswerError).reason).toBe('refused')
  })

  it('throws on connection refused', async () => {
    const s = http.createServer()
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    const port = (s.address() as AddressInfo).port
    await new Promise((r) => s.close(r))
    await expect(
      request({url: `http://127.0.0.1:${port}/`, method: 'GET', headers: {}, timeoutMs: 1000, retries: 0}),
    ).rejects.toThrow(/GET http:\/\/127\.0\.0\.1/)
  })
})
