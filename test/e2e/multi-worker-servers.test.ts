/**
 * "Live" under real multi-worker servers: gunicorn (3 workers, HUP) and uWSGI (master + 3 workers,
 * lazy apps, chain reload through the master FIFO) serve test/fixtures/release_app.py from the
 * live directory; every worker reports the release id it loaded at import. Right after
 * `hotctl deploy` exits 0, every request must answer the new id (issue 11, item 8); a release that
 * answers 500 is restored after the grace period, not after the whole reload.timeout (item 9).
 */
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, readMarker, removeWorkspaces, requireBuild, ROOT, runCli, type Workspace} from './helpers.js'

const APP = path.join(ROOT, 'test', 'fixtures', 'release_app.py')
const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

const has = (cmd: string, args: string[]) => spawnSync(cmd, args, {stdio: 'ignore'}).status === 0
const hasGunicorn = has('gunicorn', ['--version'])
// The Debian uwsgi binary needs uwsgi-plugin-python3 for Python apps.
const hasUwsgi = has('uwsgi', ['--plugin', 'python3', '--version'])

interface Server {
  kind: string
  base: string
  /** Shell command that makes the server reload its workers (the config's reload.trigger). */
  trigger: string
  /**
   * reload.status as the README advises for this server: uWSGI ignores a chain reload asked for
   * while one runs, and its chain ends ~2 s after the last old worker stops answering, so back-to-
   * back deploys need settle 3s there; gunicorn runs with the defaults.
   */
  status: Record<string, unknown>
  stop(): Promise<void>
  /** The master FIFO (uWSGI only): a test writes `c` to ask for a chain reload itself. */
  fifo?: string
  /** What the server printed so far. */
  log(): string
}

const servers = new Set<ChildProcess>()

/** Starts gunicorn or uWSGI (own process group) on a free port; resolves once /status answers. */
async function startServer(
  kind: 'gunicorn' | 'uwsgi',
  ws: Workspace,
  env: Record<string, string> = {},
): Promise<Server> {
  const fifo = path.join(ws.dir, 'uwsgi.fifo')
  const [cmd, args] =
    kind === 'gunicorn'
      ? [
          'gunicorn',
          ['--chdir', ws.live, '--workers', '3', '--bind', '127.0.0.1:0', '--graceful-timeout', '5', 'release_app:app'],
        ]
      : [
          'uwsgi',
          [
            '--plugin',
            'python3',
            '--http-socket',
            '127.0.0.1:0',
            '--master',
            '--processes',
            '3',
            '--lazy-apps',
            '--chdir',
            ws.live,
            '--module',
            'release_app:app',
            '--master-fifo',
            fifo,
            '--die-on-term',
            '--disable-logging',
          ],
        ]
  const proc = spawn(cmd, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {...process.env, PYTHONDONTWRITEBYTECODE: '1', ...env},
  })
  servers.add(proc)
  let log = ''
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} printed no port within 15s:\n${log}`)), 15_000)
    const onData = (d: Buffer) => {
      log += String(d)
      const m = /(?:Listening at: http:\/\/|bound to TCP address )127\.0\.0\.1:(\d+)/.exec(log)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${kind} exited (${code}) before listening:\n${log}`))
    })
  })
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 15_000
  for (;;) {
    const ok = await fetch(`${base}/status`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (Date.now() > deadline) throw new Error(`${kind} never answered /status:\n${log}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  const trigger = kind === 'gunicorn' ? `kill -HUP ${proc.pid}` : `printf c > '${fifo}'`
  return {
    kind,
    base,
    trigger,
    status: kind === 'uwsgi' ? {settle: '3s'} : {},
    stop: () => stopServer(proc),
    fifo: kind === 'uwsgi' ? fifo : undefined,
    log: () => log,
  }
}

async function stopServer(proc: ChildProcess): Promise<void> {
  servers.delete(proc)
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const gone = new Promise<void>((r) => proc.once('exit', () => r()))
  try {
    process.kill(-proc.pid!, 'SIGTERM')
  } catch {
    return
  }
  const t = setTimeout(() => {
    try {
      process.kill(-proc.pid!, 'SIGKILL')
    } catch {
      /* gone */
    }
  }, 5000)
  await gone
  clearTimeout(t)
}

/** The app tree: the fixture app plus its mode file, in source and live alike. */
function workspace(): Workspace {
  const ws = makeWorkspace()
  for (const root of [ws.src, ws.live]) {
    fs.copyFileSync(APP, path.join(root, 'release_app.py'))
    fs.writeFileSync(path.join(root, 'mode.txt'), 'ok\n')
  }
  return ws
}

function config(server: Server, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    target: '../live',
    protect: ['data/', '.env'],
    reload: {
      trigger: {command: server.trigger},
      status: {url: `${server.base}/status`, version: 'version', ...server.status, ...over},
      timeout: '60s',
    },
  }
}

/** Fires `n` requests (in concurrent bursts of 10) and returns the release each one answered. */
async function answers(base: string, n = 30): Promise<(string | null)[]> {
  const out: (string | null)[] = []
  for (let i = 0; i < n; i += 10) {
    const burst = await Promise.all(
      Array.from({length: Math.min(10, n - i)}, async () => {
        const r = await fetch(`${base}/`, {headers: {connection: 'close'}}) // a new client each time
        return r.ok ? ((await r.json()) as {release: string | null}).release : `HTTP ${r.status}`
      }),
    )
    out.push(...burst)
  }
  return out
}

beforeAll(requireBuild)
afterEach(async () => {
  await Promise.all([...servers].map((p) => stopServer(p)))
})
afterAll(removeWorkspaces)

const kinds = [
  {kind: 'gunicorn' as const, available: hasGunicorn, missing: 'gunicorn is not installed (apt-get install gunicorn)'},
  {
    kind: 'uwsgi' as const,
    available: hasUwsgi,
    missing: 'uwsgi with its python3 plugin is not installed (apt-get install uwsgi uwsgi-plugin-python3)',
  },
]

for (const {kind, available, missing} of kinds) {
  describe(`${kind}: 3 workers replaced one by one`, {timeout: 180_000}, () => {
    it.skipIf(!available)(
      `right after deploy exits 0, every request answers the new release${available ? '' : ` (skipped: ${missing})`}`,
      async () => {
        const ws = workspace()
        const server = await startServer(kind, ws)
        ws.writeConfig(config(server))
        for (const v of ['v2', 'v3', 'v4']) {
          ws.setVersion(v)
          const r = await runCli(['deploy', '--json'], {cwd: ws.src, timeoutMs: 120_000})
          const seen = await answers(server.base)
          expect(r.exitCode, why(r)).toBe(0)
          const release = r.json.release as string
          expect(readMarker(ws.live)?.id).toBe(release)
          const old = seen.filter((s) => s !== release)
          expect(old, `${old.length} of ${seen.length} requests did not answer ${release} after deploy exited`).toEqual(
            [],
          )
        }
      },
    )

    it.skipIf(!available)(
      `a release answering 500 is restored after the grace period, and the old release answers every request${available ? '' : ` (skipped: ${missing})`}`,
      async () => {
        const ws = workspace()
        const server = await startServer(kind, ws)
        ws.writeConfig(config(server))
        ws.setVersion('v2')
        const good = await runCli(['deploy', '--json'], {cwd: ws.src, timeoutMs: 120_000})
        expect(good.exitCode, why(good)).toBe(0)
        const release = good.json.release as string

        fs.writeFileSync(path.join(ws.src, 'mode.txt'), 'broken\n')
        const r = await runCli(['deploy', '--json'], {cwd: ws.src, timeoutMs: 120_000})
        const seen = await answers(server.base)
        expect(r.exitCode, why(r)).toBe(3)
        expect(r.json.error).toMatch(/HTTP 500/)
        expect(r.json.error).toMatch(/reload\.status\.grace/)
        expect(r.json.restore.ok).toBe(true)
        // Not the whole reload.timeout (60s): the grace period, the restore and the settle window.
        expect(r.json.durationMs).toBeLessThan(45_000)
        expect(readMarker(ws.live)?.id).toBe(release)
        expect(seen.filter((s) => s !== release)).toEqual([])
      },
    )
  })
}

describe("uwsgi: a chain reload already running drops hotctl's trigger", {timeout: 180_000}, () => {
  it.skipIf(!hasUwsgi)(
    'the trigger is fired again when no sign of the reload shows, and every request answers the new release',
    async () => {
      const ws = workspace()
      // Each worker takes 2 s to import, so the chain asked for below still has two workers to
      // replace (at least 4 s) when hotctl, started once the first has respawned, fires its trigger.
      const server = await startServer('uwsgi', ws, {RELEASE_APP_IMPORT_DELAY: '2'})
      ws.writeConfig(config(server, {settle: '4s'}))
      ws.setVersion('v2')
      const first = await runCli(['deploy', '--json'], {cwd: ws.src, timeoutMs: 120_000})
      expect(first.exitCode, why(first)).toBe(0)
      // Someone else asks for a chain reload; once its first worker has respawned (with the code
      // still live), hotctl deploys: uWSGI drops hotctl's trigger while that chain runs, and the
      // worker already replaced keeps the old code while the next ones load the new. On a loaded
      // machine that chain can be over before hotctl's trigger comes (seen in CI): uWSGI's log
      // tells, and the scenario is then set up again (at most 3 times; never produced: a failure).
      for (let attempt = 1; ; attempt++) {
        await new Promise((r) => setTimeout(r, 6000)) // the last deploy's own chain is over
        const logged = server.log().length
        fs.writeFileSync(server.fifo!, 'c')
        const deadline = Date.now() + 20_000
        let pid: number | undefined
        for (;;) {
          pid ??=
            Number(/Respawned uWSGI worker 1 \(new pid: (\d+)\)/.exec(server.log().slice(logged))?.[1]) || undefined
          if (pid) {
            const r = await fetch(`${server.base}/`, {headers: {connection: 'close'}})
            if (r.ok && ((await r.json()) as {pid: number}).pid === pid) break
          }
          if (Date.now() > deadline)
            throw new Error(`uWSGI's respawned worker 1 did not answer within 20s:\n${server.log()}`)
          await new Promise((r) => setTimeout(r, 50))
        }
        const before = server.log().length
        ws.setVersion(`v${2 + attempt}`)
        const r = await runCli(['deploy', '--json'], {cwd: ws.src, timeoutMs: 120_000})
        const seen = await answers(server.base)
        expect(r.exitCode, why(r)).toBe(0)
        const release = r.json.release as string
        expect(seen.filter((x) => x !== release)).toEqual([])
        const dropped = server.log().slice(before).includes('chain reload already running')
        if (!dropped) {
          if (attempt < 3) continue
          throw new Error(`uWSGI never dropped hotctl's trigger in 3 attempts:\n${server.log()}`)
        }
        expect(r.stderr, why(r)).toMatch(/no sign of the reload, firing its trigger again/)
        break
      }
    },
  )
})
