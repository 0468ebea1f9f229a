import http from 'node:http'
import type {AddressInfo} from 'node:net'

const servers: http.Server[] = []

export function stopFakeAgents(): void {
  for (const s of servers.splice(0)) s.close()
}

/**
 * A fake reference agent on loopback: `/check {"canary": p}` loads a canary, `/metrics` serves
 * figures that grow by 100 calls per read (the canary failing `failRate` of them), `/abort` and
 * `/promote` end it. `calls` records what hotctl asked, in order, named by host.
 */
export async function fakeAgent(
  name: string,
  calls: string[],
  opts: {
    failRate?: number
    noCanary?: boolean
    slowMs?: number
    /** The release the canary reports (default R1). */
    version?: () => string | null
  } = {},
) {
  let canary: number | null = null
  let reads = 0
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += String(d)))
    req.on('end', () => {
      const path = req.url!.replace('/api/v1/hot-reload', '')
      const send = (status: number, json: unknown) =>
        res.writeHead(status, {'content-type': 'application/json'}).end(JSON.stringify(json))
      if (path === '/metrics' && opts.slowMs && !req.headers['x-slowed']) {
        req.headers['x-slowed'] = '1'
        return void setTimeout(() => req.emit('end'), opts.slowMs)
      }
      if (path === '/metrics') {
        reads++
        const n = reads * 100
        return send(200, {
          generations: [
            {generation: 1, role: 'current', calls: n, errors: 0, p95_ms: 1},
            ...(canary === null
              ? []
              : [{generation: 2, role: 'canary', calls: n, errors: Math.round(n * (opts.failRate ?? 0)), p95_ms: 1}]),
          ],
        })
      }
      calls.push(`${name} ${path}${body ? ` ${body}` : ''}`)
      if (path === '/check') {
        // A plain check (a reload, e.g. a restore's) drops the canary, as the agent does for another tree.
        const share = body ? (JSON.parse(body) as {canary?: number}).canary : undefined
        canary = opts.noCanary || share === undefined ? null : share
        return send(200, {
          state: opts.noCanary ? 'rejected' : canary === null ? 'live' : 'canary',
          canary: canary === null ? null : {generation: 2, version: opts.version?.() ?? 'R1', percent: canary},
          last_error: opts.noCanary ? {message: 'SyntaxError in handlers.py'} : null,
        })
      }
      if (canary === null) return send(409, {error: 'no canary'})
      canary = null
      return send(200, {state: 'live'})
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const {port} = server.address() as AddressInfo
  servers.push(server)
  return `http://127.0.0.1:${port}/api/v1/hot-reload/check`
}
